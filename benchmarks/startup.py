"""Start-up time of `toolkit list --json` (the issue's bar: median under 0.3 s), warm device cache.

Usage: python benchmarks/startup.py [--runs 20]
Runs the installed `toolkit` (or `python -m toolkit`) repeatedly with a private TOOLKIT_HOME,
after one warm-up run that fills the device cache, and prints median, min and max wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    exe = shutil.which("toolkit")
    cmd = [exe, "list", "--json"] if exe else [sys.executable, "-m", "toolkit", "list", "--json"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TOOLKIT_HOME": home}
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        cold = time.perf_counter() - t0
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    print(f"command: {' '.join(cmd)}")
    print(f"first run (probes onnxruntime, fills the device cache): {cold:.3f} s")
    print(f"warm: median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
