"""Decode and prefill side by side: toolkit vs onnxruntime-genai vs llama.cpp Q4_0, interleaved in one run.

    python benchmarks/make_synthetic_checkpoint.py /tmp/synth                         # 1.5B-shaped, random bf16
    toolkit build /tmp/synth --target cpu-int4 --out /tmp/synth-cpu-int4
    /work/bench-venv/bin/python benchmarks/runtime_gguf.py /tmp/synth /tmp/synth-q4_0.gguf
    python benchmarks/runtime_compare.py --package /tmp/synth-cpu-int4 --gguf /tmp/synth-q4_0.gguf \\
        --llama-python /work/bench-venv/bin/python [--genai-package DIR] [--json out.json]

Each engine runs in its own process (runtime_worker.py) and stays loaded; every repetition asks each
engine in turn for the same prompt ids (random ordinary-vocabulary ids, so no tokenizer differs), so
machine noise hits all engines alike. Reports medians with min/max, our ratios against each anchor,
our Python overhead (share of decode time outside onnxruntime), and the effective memory bandwidth
(weight bytes read per token x tokens/s) against the read bandwidth measured with 1 and N threads.

Our runtime moves the loaded weights to transparent huge pages (toolkit/runtime/hugepages.py) and, like
`toolkit bench`, the worker waits for that before timing; its load_s includes the wait. With
--huge-page-anchors onnxruntime-genai and llama.cpp (weights read into memory instead of mapped) also run a
second time with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, the same benefit given by hand, so the report shows
how much of our lead is the huge pages.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER = HERE / "runtime_worker.py"
SETTLE_S = 1.0


class Worker:
    """A running engine process."""

    def __init__(self, engine: str, python: str, model: str, threads: int, passive: bool = False,
                 huge_pages: bool = False) -> None:
        self.name = engine + ("-passive" if passive else "") + ("-hugepages" if huge_pages else "")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if huge_pages:  # glibc backs malloc's large blocks with transparent huge pages (glibc 2.35+)
            env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
            env["TOOLKIT_BENCH_LLAMA_MMAP"] = "0"  # llama.cpp: weights in malloc'd memory, not the mapped file
        argv = [python, str(WORKER), engine, model, "--threads", str(threads)]
        if passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
            argv.append("--passive")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(self._readline())
        self.load_s = hello["load_s"]
        self.huge_pages = hello.get("huge_pages")

    def _readline(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name} worker died (exit {self.proc.wait()})")
        return line

    def run(self, ids: list[int], new: int) -> dict:
        self.proc.stdin.write(json.dumps({"ids": ids, "new": new}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def read_bandwidth_gbs(size_mb: int = 1024, repeats: int = 3, threads: int = 1) -> float:
    """Best read bandwidth over `size_mb` (numpy sums of a float32 array, split over `threads` threads;
    numpy releases the GIL while it sums). The array is moved to huge pages as our runtime's weights are."""
    from concurrent.futures import ThreadPoolExecutor

    sys.path.insert(0, str(HERE.parent))
    from toolkit.runtime.hugepages import collapse_resident_memory

    a = np.ones(size_mb * (1 << 20) // 4, dtype=np.float32)
    collapse_resident_memory()
    parts = np.array_split(a, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = max(best, a.nbytes / (time.perf_counter() - start) / 1e9)
    return best


def bytes_per_token_package(folder: Path) -> int:
    """Weight bytes a decode step reads: every initializer except embedding tables (Gather reads one row)."""
    import onnx

    total = 0
    for path in sorted(folder.glob("*.onnx")):
        graph = onnx.load(str(path), load_external_data=False).graph
        tables = {name for node in graph.node if node.op_type in ("Gather", "GatherBlockQuantized")
                  for name in node.input}
        for init in graph.initializer:
            if init.name in tables:
                continue
            external = {e.key: e.value for e in init.external_data}
            if "length" in external:
                total += int(external["length"])
            elif init.raw_data:
                total += len(init.raw_data)
            else:
                size = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
                count = 1
                for d in init.dims:
                    count *= d
                total += size * count
    return total


def bytes_per_token_gguf(path: Path, python: str) -> int:
    """Tensor bytes of a GGUF file minus the token embedding table (read with `gguf` in the llama venv)."""
    code = ("import sys; from gguf import GGUFReader; r = GGUFReader(sys.argv[1]); "
            "print(sum(int(t.n_bytes) for t in r.tensors if t.name != 'token_embd.weight'))")
    done = subprocess.run([python, "-c", code, str(path)], capture_output=True, text=True)
    return int(done.stdout.strip()) if done.returncode == 0 else path.stat().st_size


def prompt_ids(n: int, seed: int, high: int = 151000) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed + n).integers(10, high, n)]


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True, help="our cpu-int4 package (toolkit build)")
    p.add_argument("--gguf", help="llama.cpp Q4_0 GGUF of the same checkpoint")
    p.add_argument("--genai-package", help="package for onnxruntime-genai (default: --package)")
    p.add_argument("--llama-python", default=sys.executable, help="python with llama-cpp-python")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", default="32,512")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--passive-anchors", action="store_true",
                   help="also run each anchor with idle threads blocking (our default) instead of spinning")
    p.add_argument("--huge-page-anchors", action="store_true",
                   help="also run onnxruntime-genai and llama.cpp (without mmap) with "
                        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1, i.e. with the huge pages our runtime asks for itself")
    p.add_argument("--json", dest="json_out", help="write the full report here")
    args = p.parse_args()
    lengths = [int(x) for x in args.prompt_tokens.split(",")]

    genai_package = args.genai_package or args.package
    workers = [Worker("toolkit", sys.executable, args.package, args.threads),
               Worker("genai", sys.executable, genai_package, args.threads)]
    if args.passive_anchors:
        workers.append(Worker("genai", sys.executable, genai_package, args.threads, passive=True))
    if args.huge_page_anchors:
        workers.append(Worker("genai", sys.executable, genai_package, args.threads, huge_pages=True))
    if args.gguf:
        workers.append(Worker("llamacpp", args.llama_python, args.gguf, args.threads))
        if args.huge_page_anchors:
            workers.append(Worker("llamacpp", args.llama_python, args.gguf, args.threads, huge_pages=True))
        if args.passive_anchors:
            workers.append(Worker("llamacpp", args.llama_python, args.gguf, args.threads, passive=True))
    runs: dict[str, dict[int, list[dict]]] = {w.name: {n: [] for n in lengths} for w in workers}
    # Every order of the engines in turn: an engine's run disturbs the next one (caches, the host's clock),
    # so each engine must follow each other one equally often; --repeat 6 covers all orders of three.
    orders = [list(p) for p in itertools.permutations(workers)]
    try:
        for n in lengths:
            ids = prompt_ids(n, 0)
            for _ in range(args.warmup):
                for w in workers:
                    w.run(ids, 8)
            for rep in range(args.repeat):
                order = orders[rep % len(orders)]
                for w in order:
                    time.sleep(SETTLE_S)  # let the previous engine's spinning threads go to sleep
                    r = w.run(ids, args.new_tokens)
                    runs[w.name][n].append(r)
                    print(f"  {w.name:9s} prompt {n:4d}: TTFT {r['ttft_s'] * 1000:7.1f} ms  "
                          f"decode {r['decode_tps']:6.2f} tok/s", file=sys.stderr, flush=True)
    finally:
        for w in workers:
            w.close()

    bandwidth = read_bandwidth_gbs()
    bandwidth_all = read_bandwidth_gbs(threads=args.threads)
    bytes_tok = {"toolkit": bytes_per_token_package(Path(args.package)),
                 "genai": bytes_per_token_package(Path(genai_package))}
    if args.gguf:
        bytes_tok["llamacpp"] = bytes_per_token_gguf(Path(args.gguf), args.llama_python)
    for w in workers:
        bytes_tok.setdefault(w.name, bytes_tok[w.name.split("-")[0]])
    report = {"threads": args.threads, "new_tokens": args.new_tokens, "repeat": args.repeat,
              "measured_read_bandwidth_gbs_1thread": round(bandwidth, 2),
              f"measured_read_bandwidth_gbs_{args.threads}threads": round(bandwidth_all, 2), "engines": {}, "ratios": {}}
    for w in workers:
        entry = {"load_s": round(w.load_s, 3), "weight_bytes_per_token": bytes_tok[w.name], "prompts": {}}
        if w.huge_pages is not None:  # ours: load_s includes waiting for the background huge-page collapse
            entry["huge_pages"] = w.huge_pages
        for n in lengths:
            rs = runs[w.name][n]
            dec = summarize([r["decode_tps"] for r in rs])
            row = {"decode_tps": dec, "ttft_s": summarize([r["ttft_s"] for r in rs]),
                   "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rs),
                   "effective_bandwidth_gbs": round(bytes_tok[w.name] * dec["median"] / 1e9, 2)}
            if "ort_share" in rs[0]:
                row["python_overhead_pct"] = round(100 * (1 - statistics.median(r["ort_share"] for r in rs)), 2)
            entry["prompts"][n] = row
        report["engines"][w.name] = entry
    ours = report["engines"]["toolkit"]["prompts"]
    for anchor in report["engines"]:
        if anchor == "toolkit":
            continue
        theirs = report["engines"][anchor]["prompts"]
        report["ratios"][anchor] = {
            n: {"decode_tps_ratio": round(ours[n]["decode_tps"]["median"] / theirs[n]["decode_tps"]["median"], 3),
                "ttft_ratio": round(ours[n]["ttft_s"]["median"] / theirs[n]["ttft_s"]["median"], 3)}
            for n in lengths
        }

    print(f"threads {args.threads}, {args.new_tokens} new tokens, {args.repeat} timed runs each (interleaved); "
          f"read bandwidth {bandwidth:.1f} GB/s (1 thread), {bandwidth_all:.1f} GB/s ({args.threads} threads)")
    for name, entry in report["engines"].items():
        for n, row in entry["prompts"].items():
            d, t = row["decode_tps"], row["ttft_s"]
            extra = f"  overhead {row['python_overhead_pct']:.2f} %" if "python_overhead_pct" in row else ""
            print(f"{name:9s} prompt {n:4d}: decode {d['median']:6.2f} tok/s ({d['min']:.2f}-{d['max']:.2f})  "
                  f"TTFT {t['median'] * 1000:7.1f} ms ({t['min'] * 1000:.0f}-{t['max'] * 1000:.0f})  "
                  f"{row['effective_bandwidth_gbs']:.1f} GB/s effective  "
                  f"peak {row['peak_rss_bytes'] / 1e9:.2f} GB{extra}")
    for anchor, per in report["ratios"].items():
        for n, r in per.items():
            print(f"toolkit / {anchor:16s} prompt {n:4d}: decode x{r['decode_tps_ratio']:.2f}, TTFT x{r['ttft_ratio']:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
