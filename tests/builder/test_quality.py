"""Quantization quality on the real stories260K (regression guards for the numbers in docs/quantization.md)."""

from __future__ import annotations

import pytest

from tests.helpers.fixtures import TEXT
from toolkit.builder import BuildOptions, build_package, evaluate


@pytest.fixture(scope="module")
def npu_ratios(tmp_path_factory, stories_checkpoint, stories_float_package):
    """Perplexity ratio vs float for npu-qdq variants (calibrated on the sample text itself: a guard, not a claim)."""
    out = {}
    for name, kw in {"plain": dict(rotate=False, weight_method="rtn"), "quarot": dict(weight_method="rtn"),
                     "quarot_gptq": dict(weight_method="gptq")}.items():
        pkg = tmp_path_factory.mktemp("quality") / name
        build_package(stories_checkpoint, pkg, BuildOptions(target="npu-qdq", context_length=512,
                                                            calibration_text=TEXT, **kw))
        out[name] = evaluate(pkg, TEXT, stories_float_package)["perplexity_ratio"]
    return out


def test_quarot_lowers_perplexity_of_rtn_int4(npu_ratios):
    assert npu_ratios["quarot"] < npu_ratios["plain"]


def test_quarot_with_gptq_is_within_15_percent_of_float(npu_ratios):
    assert npu_ratios["quarot_gptq"] < 1.15 and npu_ratios["quarot_gptq"] < npu_ratios["quarot"]


def test_default_cpu_int4_stays_close_to_float(stories_cpu_int4_package, stories_float_package):
    """The default build (no calibration text): norm-weighted RTN measured x1.072 / 87.3 % (docs/quantization.md)."""
    result = evaluate(stories_cpu_int4_package, TEXT, stories_float_package)
    assert result["perplexity_ratio"] < 1.08 and result["top1_agreement"] > 0.86
