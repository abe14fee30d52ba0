"""One engine in its own process for runtime_compare.py: load once, then time requests read from stdin.

    python benchmarks/runtime_worker.py toolkit|genai|llamacpp MODEL --threads 2

Each stdin line is {"ids": [...], "new": N}; each reply line is {"ttft_s", "decode_tps", ...}. The
first line written is {"ready": true, "load_s": ...}. Greedy decoding of exactly N tokens, EOS ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Toolkit:
    """Our runtime, through the same code path `toolkit bench` uses."""

    def __init__(self, model: str, threads: int, passive: bool = False) -> None:
        sys.path.insert(0, str(ROOT))
        from toolkit.runtime.model import LocalModel
        from toolkit.runtime.pipeline import RuntimeOptions

        self.model = LocalModel(Path(model), RuntimeOptions(threads=threads))
        self.model.wait_for_huge_pages()  # as `toolkit bench` does; the collapse time is reported apart
        self.extra = {"huge_pages": self.model.describe()["huge_pages"]}

    def run(self, ids: list[int], new: int) -> dict:
        from toolkit.runtime.bench import run_once

        r = run_once(self.model, ids, new)
        return {"ttft_s": r.ttft_s, "decode_tps": r.decode_tps, "ort_share": r.ort_share}


class Genai:
    """onnxruntime-genai on a package, intra_op_num_threads set in its config (its default threads are ~2x slower)."""

    def __init__(self, model: str, threads: int, passive: bool = False) -> None:
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(model)
        session: dict = {"intra_op_num_threads": threads}
        if passive:
            session["session.intra_op.allow_spinning"] = "0"
        options = {"model": {"decoder": {"session_options": session}}}
        config.overlay(json.dumps(options))
        self.model = og.Model(config)

    def run(self, ids: list[int], new: int) -> dict:
        og = self.og
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + new + 64, do_sample=False)
        gen = og.Generator(self.model, params)
        start = time.perf_counter()
        gen.append_tokens(ids)
        gen.generate_next_token()
        first = time.perf_counter()
        for _ in range(new - 1):
            gen.generate_next_token()
        end = time.perf_counter()
        return {"ttft_s": first - start, "decode_tps": (new - 1) / (end - first)}


class LlamaCpp:
    """llama-cpp-python: Llama.eval on the prompt, then one token at a time, greedy on the last logits."""

    def __init__(self, model: str, threads: int, passive: bool = False) -> None:
        from llama_cpp import Llama  # --passive: the harness sets OMP_WAIT_POLICY=PASSIVE for this process

        # --huge-page-anchors: read the weights into malloc'd memory (which GLIBC_TUNABLES then backs with huge
        # pages) instead of mapping the file from the page cache in 4 KiB pages
        use_mmap = os.environ.get("TOOLKIT_BENCH_LLAMA_MMAP", "1") != "0"
        self.llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=1024, n_batch=512,
                         use_mmap=use_mmap, verbose=False)

    def _argmax(self) -> int:
        import llama_cpp
        import numpy as np

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))))

    def run(self, ids: list[int], new: int) -> dict:
        llm = self.llm
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        token = self._argmax()
        first = time.perf_counter()
        for _ in range(new - 1):
            llm.eval([token])
            token = self._argmax()
        end = time.perf_counter()
        return {"ttft_s": first - start, "decode_tps": (new - 1) / (end - first)}


ENGINES = {"toolkit": Toolkit, "genai": Genai, "llamacpp": LlamaCpp}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=sorted(ENGINES))
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passive", action="store_true", help="idle threads block instead of spinning")
    args = parser.parse_args()
    start = time.perf_counter()
    engine = ENGINES[args.engine](args.model, args.threads, args.passive)
    print(json.dumps({"ready": True, "load_s": time.perf_counter() - start, **getattr(engine, "extra", {})}),
          flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        reply = engine.run(request["ids"], request["new"])
        reply["peak_rss_bytes"] = peak_rss()
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
