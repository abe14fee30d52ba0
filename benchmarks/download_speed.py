"""Must show: a 400 MB variant from a server capping each connection at 20 MB/s.

`toolkit download` vs `huggingface_hub.hf_hub_download` (HF_ENDPOINT at the same server) vs
`aria2c -x8 -s8`, interleaved, 1 warm-up + N timed runs each, median/min/max and ratios, plus whether
each result's sha256 matched. Run with `nice -n 10 .venv/bin/python benchmarks/download_speed.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from download_common import (
    PY,
    TOOLKIT_CMD,
    aria2c_command,
    bench_dir,
    fresh_dir,
    hf_command,
    make_file,
    remove,
    server,
    sha256,
    summary,
    timed,
    toolkit_env,
    write_manifest,
)

API_CODE = (
    "import json, time; from catalog import Catalog; from toolkit.download.api import download_variant; "
    "m = Catalog.load().get('bench'); t = time.perf_counter(); snap, _ = download_variant(m, m.variants[0]); "
    "print(json.dumps({'seconds': time.perf_counter() - t, 'path': str(snap)}))"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--rate-mb", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fsync-ab", action="store_true",
                    help="also time `toolkit download` with TOOLKIT_DL_FSYNC=0 (what durability costs)")
    ap.add_argument("--no-hf", action="store_true", help="leave out hf_hub_download (20 s a run at 20 MB/s)")
    args = ap.parse_args()
    size = args.size_mb * 1000 * 1000
    src = make_file(bench_dir() / f"model-{args.size_mb}MB.bin", size)
    expected = sha256(src)
    manifest = write_manifest(bench_dir() / "manifests")
    # "toolkit API": ensure_variant timed inside a warm process (as `toolkit run` calls it): no
    # interpreter start or imports. The headline comparison is the `toolkit download` process.
    engines = ["toolkit", *(["toolkit, no fsync"] if args.fsync_ab else []), "toolkit API",
               *([] if args.no_hf else ["hf_hub_download"]), "aria2c -x8 -s8"]
    times: dict[str, list[float]] = {engine: [] for engine in engines}
    verified: dict[str, list[bool]] = {k: [] for k in times}
    home = fresh_dir("toolkit-home-")  # the API's store: warm, as in a running `toolkit run`
    with server([src], args.rate_mb * 1e6) as (url, _stats):
        for rep in range(args.runs + 1):
            for engine in times:
                out_dir = fresh_dir(f"{engine.split()[0].rstrip(',')}-")
                if engine.startswith("toolkit,") or engine == "toolkit":  # a new, empty store every time
                    extra = {"TOOLKIT_DL_FSYNC": "0"} if "no fsync" in engine else {}
                    t, r = timed(TOOLKIT_CMD, toolkit_env(url, out_dir, manifest, **extra))
                    result = Path(json.loads(r.stdout)["path"]) / src.name if r.returncode == 0 else None
                elif engine == "toolkit API":
                    _, r = timed([PY, "-c", API_CODE], toolkit_env(url, home, manifest))
                    out = json.loads(r.stdout) if r.returncode == 0 else {}
                    t, result = out.get("seconds", 0.0), Path(out.get("path", ".")) / src.name
                elif engine == "hf_hub_download":
                    env = toolkit_env(
                        url,
                        out_dir,
                        manifest,
                        HF_HUB_DISABLE_TELEMETRY="1",
                        HF_HUB_ENABLE_HF_TRANSFER="0",
                        HF_XET_HIGH_PERFORMANCE="0",
                    )
                    t, r = timed(hf_command(src.name, out_dir), env)
                    result = Path(r.stdout.strip()) if r.returncode == 0 else None
                else:
                    cmd = aria2c_command(url, src.name, out_dir, "--summary-interval=0")
                    t, r = timed(cmd, toolkit_env(url, out_dir, manifest))
                    result = out_dir / src.name if r.returncode == 0 else None
                if r.returncode != 0:
                    raise SystemExit(f"{engine} failed: {r.stderr[-2000:]}")
                ok = sha256(result) == expected
                remove(out_dir)
                for sub in ("blobs", "snapshots", "partial"):
                    remove(home / sub)
                label = "warm-up" if rep == 0 else f"run {rep}"
                print(
                    f"{label:8} {engine:18} {t:6.2f} s  {size / t / 1e6:6.1f} MB/s  sha256 ok: {ok}",
                    flush=True,
                )
                if rep > 0:
                    times[engine].append(t)
                    verified[engine].append(ok)
    src.unlink()
    remove(bench_dir() / "manifests")
    remove(home)
    stats = {k: summary(v) for k, v in times.items()}
    tk = stats["toolkit"]["median"]
    print(f"\n{args.size_mb} MB, {args.rate_mb:.0f} MB/s per connection, {args.runs} runs (median, min-max):")
    for k, s in stats.items():
        print(
            f"  {k:16} {s['median']:6.2f} s ({s['min']:.2f}-{s['max']:.2f})  "
            f"{size / s['median'] / 1e6:6.1f} MB/s  time vs toolkit x{s['median'] / tk:.2f}  "
            f"verified {all(verified[k])}"
        )
    print(
        json.dumps(
            {
                "size_bytes": size,
                "rate_per_connection": args.rate_mb * 1e6,
                "seconds": times,
                "summary": stats,
                "verified": verified,
            }
        )
    )


if __name__ == "__main__":
    main()
