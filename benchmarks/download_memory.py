"""Must show: peak RSS while downloading a 2 GB file stays under 200 MB (toolkit), next to
hf_hub_download and aria2c on the same file from the same local server (no rate cap)."""

from __future__ import annotations

import argparse
import json
import os
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


def run_peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, exit status, peak RSS in bytes) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, status, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=2000)
    args = ap.parse_args()
    size = args.size_mb * 1000 * 1000
    src = make_file(bench_dir() / f"big-{args.size_mb}MB.bin", size)
    manifest = write_manifest(bench_dir() / "manifests")
    results = {}
    with server([src], None) as (url, _stats):
        for engine in ("toolkit", "hf_hub_download", "aria2c -x8 -s8"):
            out = fresh_dir("rss-")
            env = toolkit_env(url, out, manifest, HF_HUB_DISABLE_TELEMETRY="1")
            if engine == "toolkit":
                cmd = TOOLKIT_CMD
            elif engine == "hf_hub_download":
                cmd = hf_command(src.name, out / "hf")
            else:
                cmd = aria2c_command(url, src.name, out)
            seconds, status, rss = run_peak_rss(cmd, env)
            remove(out)
            results[engine] = {"seconds": round(seconds, 2), "exit_status": status, "peak_rss_bytes": rss}
            print(
                f"{engine:16} peak RSS {rss / 1e6:7.1f} MB  {seconds:6.2f} s  "
                f"{size / seconds / 1e6:6.1f} MB/s  "
                f"status {status}",
                flush=True,
            )
    src.unlink()
    remove(bench_dir() / "manifests")
    print(f"toolkit under 200 MB: {results['toolkit']['peak_rss_bytes'] < 200e6}")
    print(json.dumps({"size_bytes": size, "results": results}))


if __name__ == "__main__":
    main()
