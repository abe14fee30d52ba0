"""Where stories260K's cpu-int4 quality goes, and what the default's norm-weighted range search buys.

Builds stories260K cpu-int4 packages with the builder's own stages but a chosen block quantizer per
linear, evaluates each on tinystories_sample.txt against the float package (teacher forcing) and
prints perplexity ratio and top-1 agreement. Rows: one tensor type at int4 with everything else at
8 bits (embeddings fp32), the old unweighted RTN, the default (weighted by the RMSNorm scale feeding
each linear), and a control with those scales randomly permuted (the noise band of the weighting).

    python benchmarks/build_quant_sweep.py [--out bench-out/quant_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.builder import BuildOptions, build_package, evaluate  # noqa: E402
from toolkit.builder.checkpoint import Checkpoint  # noqa: E402
from toolkit.builder.linear import NBitsLinear  # noqa: E402
from toolkit.builder.package import EMBEDDINGS, LM_HEAD, TRANSFORMER  # noqa: E402
from toolkit.builder.quantize import quantize_blockwise, quantize_blockwise8  # noqa: E402
from toolkit.builder.stages import build_embeddings, build_lm_head  # noqa: E402
from toolkit.builder.transformer import GraphSpec, build_transformer  # noqa: E402
from toolkit.builder.weights import checkpoint_layer, norm_input_scale  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"
STORIES = FIXTURES / "stories260k-hf"
TEXT = FIXTURES / "text" / "tinystories_sample.txt"
KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")


def build_with(ckpt: Checkpoint, pkg: Path, float_pkg: Path, quantizer, int4_embeddings: bool) -> None:
    """A cpu-int4 package whose linears use `quantizer(name, w)`; config/tokenizer copied from the float one.

    No toolkit_manifest.json: these are throwaway evaluation packages, not installable ones.
    """
    pkg.mkdir()
    for f in float_pkg.iterdir():
        if not f.name.endswith((".onnx", ".onnx.data")) and f.name != "toolkit_manifest.json":
            (pkg / f.name).write_bytes(f.read_bytes())
    build_embeddings(ckpt.tensor("model.embed_tokens.weight"), int4_embeddings).save(pkg / EMBEDDINGS)
    head = ckpt.lm_head()
    build_lm_head(head, True, quantizer("lm_head", head)).save(pkg / LM_HEAD)
    spec = GraphSpec(attention="explicit", context_length=512, seq_len=None)
    build_transformer(ckpt.config, lambda i: checkpoint_layer(ckpt, i), ckpt.tensor("model.norm.weight"),
                      NBitsLinear(quantizer=quantizer), spec).save(pkg / TRANSFORMER)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "quant_sweep.json")
    args = ap.parse_args(argv)
    ckpt = Checkpoint(STORIES)
    kv8 = ("k_proj", "v_proj")

    def default(name, w, scale_of=lambda n: norm_input_scale(ckpt, n)):
        return quantize_blockwise8(w) if any(k in name for k in kv8) else quantize_blockwise(w, input_scale=scale_of(name))

    def permuted(seed):
        rng = np.random.default_rng(seed)

        def scale_of(name):
            s = norm_input_scale(ckpt, name)
            return None if s is None else rng.permutation(s)
        return lambda name, w: default(name, w, scale_of)

    rows = {"none at int4 (all 8-bit, fp32 embeddings)": (lambda n, w: quantize_blockwise8(w), False),
            "embeddings at int4 only": (lambda n, w: quantize_blockwise8(w), True)}
    for kind in KINDS:
        rows[f"{kind} at int4 only (unweighted RTN)"] = (
            lambda n, w, k=kind: quantize_blockwise(w) if k in n else quantize_blockwise8(w), False)
    rows["old default: unweighted RTN"] = (lambda n, w: default(n, w, lambda _: None), True)
    rows["default: norm-weighted RTN"] = (default, True)
    for seed in range(3):
        rows[f"control: norm scales permuted, seed {seed}"] = (permuted(seed), True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="quant-sweep-") as tmp:
        tmp = Path(tmp)
        float_pkg = tmp / "float"
        build_package(STORIES, float_pkg, BuildOptions(target="float", context_length=512))
        for i, (name, (quantizer, emb4)) in enumerate(rows.items()):
            pkg = tmp / f"v{i}"
            build_with(ckpt, pkg, float_pkg, quantizer, emb4)
            r = evaluate(pkg, TEXT, float_pkg)
            results[name] = {"vs_float": round(r["perplexity_ratio"], 4), "top1_agreement": round(r["top1_agreement"], 4)}
            print(f"{name:48s} x{r['perplexity_ratio']:.4f}  top-1 {r['top1_agreement']:.2%}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
