"""Quality of our packages on stories260K (perplexity and top-1 agreement with the float model): one run, every variant side by side.

Builds float, cpu-int4 (RTN and GPTQ), npu-qdq without rotation (RTN), npu-qdq with QuaRot (RTN, two
seeds) and npu-qdq with QuaRot + GPTQ; evaluates each on tinystories_sample.txt (perplexity and top-1
agreement with the float package under teacher forcing) and checks the float package against the
numpy reference. Calibration text: by default 8 stories sampled from the float model itself
(temperature 0.8, seed 0), so the evaluation text never leaks into calibration; --calibration FILE
overrides.

    python benchmarks/build_quality.py [--out bench-out/quality.json] [--calibration FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.package_runner import PackageRunner  # noqa: E402
from tests.helpers.reference import ReferenceModel  # noqa: E402
from toolkit.builder import BuildOptions, build_package, evaluate  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"
STORIES = FIXTURES / "stories260k-hf"
TEXT = FIXTURES / "text" / "tinystories_sample.txt"


def sample_stories(package: Path, n: int = 8, max_tokens: int = 256, temperature: float = 0.8,
                   seed: int = 0) -> str:
    """Stories sampled from a package (BOS-started, stop at EOS), joined with <|endoftext|>."""
    from tokenizers import Tokenizer

    run = PackageRunner(package)
    tok = Tokenizer.from_file(str(package / "tokenizer.json"))
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        run.reset()
        ids = [1]
        hidden = run.prefill_hidden(ids)
        for _ in range(max_tokens - 1):
            logits = run.logits(hidden)[-1].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            t = int(rng.choice(len(p), p=p / p.sum()))
            if t == 2:
                break
            ids.append(t)
            hidden = run.decode_hidden(t)
        docs.append(tok.decode(ids))
    return "\n<|endoftext|>\n".join(docs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "quality.json")
    ap.add_argument("--calibration", type=Path, default=None)
    ap.add_argument("--calibration-tokens", type=int, default=4096)
    args = ap.parse_args(argv)
    results: dict = {"checkpoint": str(STORIES), "text": str(TEXT)}
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        tmp = Path(tmp)
        build_package(STORIES, tmp / "float", BuildOptions(target="float", context_length=512))
        ref = ReferenceModel(STORIES)
        run = PackageRunner(tmp / "float")
        greedy_ref = ref.greedy([1], 200)
        ids = greedy_ref[:151]
        results["float_vs_reference"] = {
            "greedy_200_equal": run.greedy([1], 200) == greedy_ref,
            "max_abs_logit_diff_151_tokens": float(np.abs(run.sequence_logits(ids) - ref.logits(ids)).max()),
        }
        calib = args.calibration
        if calib is None:
            calib = tmp / "calibration.txt"
            calib.write_text(sample_stories(tmp / "float"))
        results["calibration"] = "self-sampled from the float model" if args.calibration is None else str(calib)
        variants = {
            "float": None,
            "cpu-int4 (RTN)": dict(target="cpu-int4"),
            "cpu-int4 (GPTQ)": dict(target="cpu-int4", calibration_text=calib),
            "npu-qdq no rotation (RTN)": dict(target="npu-qdq", rotate=False, weight_method="rtn",
                                              calibration_text=calib),
            "npu-qdq QuaRot seed 0 (RTN)": dict(target="npu-qdq", weight_method="rtn", calibration_text=calib),
            "npu-qdq QuaRot seed 1 (RTN)": dict(target="npu-qdq", weight_method="rtn", seed=1,
                                                calibration_text=calib),
            "npu-qdq QuaRot (GPTQ)": dict(target="npu-qdq", weight_method="gptq", calibration_text=calib),
        }
        rows = {}
        for name, kw in variants.items():
            pkg = tmp / "float"
            build_s = None
            if kw is not None:
                pkg = tmp / name.replace(" ", "_").replace("(", "").replace(")", "")
                t0 = time.perf_counter()
                build_package(STORIES, pkg, BuildOptions(context_length=512,
                                                         calibration_tokens=args.calibration_tokens, **kw))
                build_s = round(time.perf_counter() - t0, 2)
            r = evaluate(pkg, TEXT, tmp / "float")
            rows[name] = {"perplexity": round(r["perplexity"], 4), "vs_float": round(r["perplexity_ratio"], 4),
                          "top1_agreement": round(r["top1_agreement"], 4), "tokens": r["tokens"],
                          "build_seconds": build_s}
            print(f"{name:32s} ppl {r['perplexity']:.4f}  x{r['perplexity_ratio']:.4f}  "
                  f"top-1 {r['top1_agreement']:.2%}", flush=True)
        results["variants"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["float_vs_reference"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
