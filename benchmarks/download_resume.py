"""Must show: bytes fetched again after a SIGKILL at ~50 % and a restart (400 MB, 20 MB/s per connection).

Each engine downloads, is killed with SIGKILL once the server has sent half the file, and is started
again. Re-fetched = bytes the server sent in total minus the file size (bytes in flight at the kill
count too: they were sent and must be sent again). Bound for toolkit: one segment per connection.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time

from download_common import (
    ROOT,
    TOOLKIT_CMD,
    aria2c_command,
    bench_dir,
    fresh_dir,
    hf_command,
    make_file,
    remove,
    server,
    toolkit_env,
    write_manifest,
)

from toolkit.download.config import DownloadConfig
from toolkit.download.plan import segment_size


def sent(stats) -> int:
    return sum(stats()["bytes_sent"].values())


def kill_at_half_and_restart(cmd: list[str], env: dict[str, str], stats, size: int) -> tuple[int, int, float]:
    """Run, SIGKILL at half, run again; return (sent before kill, sent in total, restart seconds)."""
    before = sent(stats)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while sent(stats) - before < size // 2:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:3]} ended before half the file")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = sent(stats) - before
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[:3]} restart failed: {out.stderr[-1500:]}")
    return at_kill, sent(stats) - before, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--rate-mb", type=float, default=20.0)
    ap.add_argument("--engines", default="toolkit,hf_hub_download,aria2c", help="comma-separated subset")
    args = ap.parse_args()
    size = args.size_mb * 1000 * 1000
    src = make_file(bench_dir() / f"resume-{args.size_mb}MB.bin", size)
    manifest = write_manifest(bench_dir() / "manifests")
    cfg = DownloadConfig()
    bound = cfg.connections * segment_size(
        size, cfg.connections, cfg.min_segment, cfg.max_segment, cfg.segments_per_connection
    )
    results = {}
    with server([src], args.rate_mb * 1e6) as (url, stats):
        for engine in ("toolkit", "hf_hub_download", "aria2c -x8 -s8 -c"):
            if engine.split()[0] not in args.engines.split(","):
                continue
            out = fresh_dir("resume-")
            env = toolkit_env(url, out, manifest, HF_HUB_DISABLE_TELEMETRY="1")
            if engine == "toolkit":
                cmd = TOOLKIT_CMD
            elif engine == "hf_hub_download":
                cmd = hf_command(src.name, out / "hf")
            else:
                cmd = aria2c_command(url, src.name, out, "-c")
            at_kill, total, restart_s = kill_at_half_and_restart(cmd, env, stats, size)
            remove(out)
            results[engine] = {
                "sent_before_kill": at_kill,
                "sent_total": total,
                "refetched": total - size,
                "restart_seconds": round(restart_s, 2),
            }
            print(
                f"{engine:20} killed at {at_kill / 1e6:6.1f} MB; re-fetched {(total - size) / 1e6:7.1f} MB; "
                f"restart took {restart_s:.2f} s",
                flush=True,
            )
    src.unlink()
    remove(bench_dir() / "manifests")
    print(
        f"toolkit bound (one segment per connection): {bound / 1e6:.1f} MB "
        f"({cfg.connections} x {bound // cfg.connections / 1e6:.2f} MB); "
        f"met: {results['toolkit']['refetched'] <= bound}"
    )
    print(json.dumps({"size_bytes": size, "bound_bytes": bound, "results": results}))


if __name__ == "__main__":
    main()
