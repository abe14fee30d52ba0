"""Build speed, peak memory and package size: `toolkit build --target cpu-int4` vs onnxruntime-genai's builder.

Same synthetic DeepSeek-R1-Distill-Qwen-1.5B checkpoint (benchmarks/make_synthetic_checkpoint.py), same
run, builds interleaved (order alternating), 1 warm-up + N timed repetitions each; wall time and the
peak RSS of each build process (os.wait4). Package size is compared with llama.cpp's Q4_0 GGUF of the
same weights, computed analytically from the tensor shapes (llama.cpp is not installed here: Q4_0 is
18 bytes per 32 weights, output.weight is Q6_K at 210 bytes per 256 as llama-quantize does for Q4_0,
1-D tensors stay f32, plus the vocabulary/merges metadata).

Benchmark-only dependencies: torch and transformers (onnxruntime-genai's builder imports them).

    python benchmarks/build_bench.py [--checkpoint DIR] [--reps 3] [--out bench-out/build.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.make_synthetic_checkpoint import CONFIG, tensor_shapes  # noqa: E402


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command; wall seconds and the process's peak RSS in bytes."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child must never block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read().decode(errors='replace')[-2000:]}")
    return {"seconds": round(wall, 2), "peak_rss_bytes": usage.ru_maxrss * 1024}


def folder_size(path: Path) -> int:
    """Bytes of all files under a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def q4_0_gguf_size(cfg: dict, tokenizer_json: Path | None) -> dict:
    """llama.cpp Q4_0 GGUF size of a Qwen2 checkpoint, from the tensor shapes."""
    tensors = 0
    for name, shape in tensor_shapes(cfg).items():
        n = 1
        for d in shape:
            n *= d
        if len(shape) == 1:
            tensors += 4 * n
        elif name == "lm_head.weight":
            tensors += n // 256 * 210
        else:
            tensors += n // 32 * 18
    meta = 0
    if tokenizer_json is not None and tokenizer_json.is_file():
        tok = json.loads(tokenizer_json.read_text())
        vocab = tok["model"]["vocab"]
        merges = tok["model"].get("merges", [])
        meta = sum(len(k.encode()) + 8 + 4 + 4 for k in vocab) + sum(
            len((" ".join(m) if isinstance(m, list) else m).encode()) + 8 for m in merges)
    return {"tensor_bytes": tensors, "metadata_bytes_estimate": meta, "total_bytes": tensors + meta}


def summarize(runs: list[dict]) -> dict:
    secs = [r["seconds"] for r in runs]
    rss = [r["peak_rss_bytes"] for r in runs]
    return {"seconds_median": statistics.median(secs), "seconds_min": min(secs), "seconds_max": max(secs),
            "peak_rss_max_bytes": max(rss), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "bench-out" / "synthetic-r1-qwen-1.5b")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "build-work")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "build.json")
    ap.add_argument("--gguf", type=Path, default=None,
                    help="a llama.cpp Q4_0 GGUF of the same shapes, to report its real size too")
    args = ap.parse_args(argv)
    py = sys.executable
    if not (args.checkpoint / "config.json").is_file():
        subprocess.run([py, str(ROOT / "benchmarks" / "make_synthetic_checkpoint.py"), str(args.checkpoint)],
                       check=True)
    args.work.mkdir(parents=True, exist_ok=True)
    ours_out, theirs_out = args.work / "toolkit-cpu-int4", args.work / "ortgenai-int4"
    ours_cmd = [py, "-c", "from toolkit.cli import main; main()", "build", str(args.checkpoint),
                "--target", "cpu-int4", "--out", str(ours_out), "--overwrite", "--json"]
    theirs_cmd = [py, "-m", "onnxruntime_genai.models.builder", "-i", str(args.checkpoint), "-o", str(theirs_out),
                  "-p", "int4", "-e", "cpu", "-c", str(args.work / "ortgenai-cache")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours, theirs = [], []
    for rep in range(args.warmup + args.reps):
        order = [("ours", ours_cmd), ("theirs", theirs_cmd)]
        if rep % 2:
            order.reverse()
        for who, cmd in order:
            if who == "theirs":
                shutil.rmtree(theirs_out, ignore_errors=True)
            result = timed(cmd, env)
            print(f"rep {rep} {who}: {result['seconds']} s, peak {result['peak_rss_bytes'] / 1e9:.2f} GB", flush=True)
            if rep >= args.warmup:
                (ours if who == "ours" else theirs).append(result)
    cfg = json.loads((args.checkpoint / "config.json").read_text())
    gguf = q4_0_gguf_size({**CONFIG, **cfg}, args.checkpoint / "tokenizer.json")
    ours_size = folder_size(ours_out)
    report = {
        "checkpoint": str(args.checkpoint), "reps": args.reps, "warmup": args.warmup,
        "toolkit_cpu_int4": summarize(ours), "onnxruntime_genai_builder_int4": summarize(theirs),
        "time_ratio_median": round(statistics.median(r["seconds"] for r in ours)
                                   / statistics.median(r["seconds"] for r in theirs), 3),
        "package_bytes": {"toolkit_cpu_int4": ours_size, "onnxruntime_genai_int4": folder_size(theirs_out),
                          "llama_cpp_q4_0_analytic": gguf},
        "size_ratio_vs_q4_0": round(ours_size / gguf["total_bytes"], 3),
    }
    if args.gguf is not None and args.gguf.is_file():
        real = args.gguf.stat().st_size
        report["package_bytes"]["llama_cpp_q4_0_file"] = {"path": str(args.gguf), "bytes": real}
        report["size_ratio_vs_q4_0_file"] = round(ours_size / real, 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("time_ratio_median", "size_ratio_vs_q4_0", "size_ratio_vs_q4_0_file")
                      if k in report}))
    print(f"peak RSS toolkit {report['toolkit_cpu_int4']['peak_rss_max_bytes'] / 1e9:.2f} GB, "
          f"ortgenai {report['onnxruntime_genai_builder_int4']['peak_rss_max_bytes'] / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
