"""Against a misbehaving server: one flipped byte in the first response, and one 503 with Retry-After.

For each engine: did it finish, and are the bytes it kept the right ones? (100 MB, 20 MB/s per connection.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from download_common import (
    TOOLKIT_CMD,
    aria2c_command,
    bench_dir,
    fresh_dir,
    hf_command,
    make_file,
    remove,
    server,
    sha256,
    timed,
    toolkit_env,
    write_manifest,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=100)
    args = ap.parse_args()
    size = args.size_mb * 1000 * 1000
    src = make_file(bench_dir() / f"faults-{args.size_mb}MB.bin", size)
    expected = sha256(src)
    manifest = write_manifest(bench_dir() / "manifests")
    rows = []
    for scenario, option in (
        ("one flipped byte", "--flip-first"),
        ("one 503 + Retry-After: 1", "--busy-first"),
    ):
        for engine in ("toolkit", "hf_hub_download", "aria2c -x8 -s8"):
            out = fresh_dir("faults-")
            with server([src], 20e6, option) as (url, _stats):
                env = toolkit_env(url, out, manifest, HF_HUB_DISABLE_TELEMETRY="1")
                if engine == "toolkit":
                    t, r = timed(TOOLKIT_CMD, env)
                    kept = Path(json.loads(r.stdout)["path"]) / src.name if r.returncode == 0 else None
                elif engine == "hf_hub_download":
                    t, r = timed(hf_command(src.name, out / "hf"), env)
                    kept = Path(r.stdout.strip()) if r.returncode == 0 else None
                else:
                    t, r = timed(
                        aria2c_command(url, src.name, out),
                        env,
                    )
                    kept = out / src.name if r.returncode == 0 else None
            right = kept is not None and sha256(kept) == expected
            remove(out)
            outcome = "finished" if r.returncode == 0 else f"failed (exit {r.returncode})"
            verdict = "right bytes" if right else ("WRONG BYTES KEPT" if kept else "nothing kept")
            rows.append(
                {
                    "scenario": scenario,
                    "engine": engine,
                    "exit": r.returncode,
                    "right_bytes": right,
                    "kept_file": kept is not None,
                    "seconds": round(t, 2),
                }
            )
            print(f"{scenario:26} {engine:16} {outcome:18} {verdict:18} {t:6.2f} s", flush=True)
    src.unlink()
    remove(bench_dir() / "manifests")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
