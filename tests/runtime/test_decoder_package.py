"""A single `decoder` package as onnxruntime-genai's model builder writes it (the Hub's CPU int4 layout).

GroupQueryAttention with a shared past/present buffer, attention_mask instead of sequence lengths,
past_key_values.%d.key names and a symbolic cache length: built here from the tiny checkpoint with
`python -m onnxruntime_genai.models.builder` (needs torch and transformers, test-only).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.reference import ReferenceModel
from toolkit.runtime.generate import GenerationConfig, generate_step
from toolkit.runtime.model import LocalModel


@pytest.fixture(scope="module")
def genai_decoder_package(qwen_checkpoint, tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnxruntime_genai")
    out = tmp_path_factory.mktemp("genai-builder") / "cpu-int4"
    for precision, folder in (("fp32", out.with_name("fp32")), ("int4", out)):
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(qwen_checkpoint), "-o",
               str(folder), "-p", precision, "-e", "cpu"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return out


def _ids(n: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(n).integers(3, 500, n)]


def _tokens(model: LocalModel, prompt: list[int], config: GenerationConfig) -> list[int]:
    return [step.token for step in generate_step(model, prompt, config)]


def test_genai_decoder_package_loads_as_one_stage_with_shared_kv(genai_decoder_package):
    model = LocalModel(genai_decoder_package)
    assert not model.config.is_pipeline and model.pipeline.kv.layout == "shared"
    assert model.config.names.past_key_names == "past_key_values.%d.key"


@pytest.mark.parametrize("length", [4, 70, 300])
def test_genai_decoder_greedy_equals_onnxruntime_genai(genai_decoder_package, length):
    import onnxruntime_genai as og

    prompt = _ids(length)
    ours = _tokens(LocalModel(genai_decoder_package), prompt, GenerationConfig(max_new_tokens=12, ignore_eos=True))
    model = og.Model(str(genai_decoder_package))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=length + 12, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt)
    for _ in range(12):
        gen.generate_next_token()
    assert ours == [int(t) for t in gen.get_sequence(0)[-12:]]


def test_genai_fp32_decoder_logits_match_reference(genai_decoder_package, qwen_checkpoint):
    model = LocalModel(genai_decoder_package.with_name("fp32"))
    reference = ReferenceModel(qwen_checkpoint)
    prompt = _ids(33)
    logits = model.pipeline.prefill(prompt)
    np.testing.assert_allclose(logits, reference.logits(prompt)[-1], atol=2e-4, rtol=1e-4)
    for token in (5, 17):
        logits = model.pipeline.decode(token)
        prompt.append(token)
        np.testing.assert_allclose(logits, reference.logits(prompt)[-1], atol=2e-4, rtol=1e-4)


def test_without_shared_buffer_present_outputs_become_the_next_past(genai_decoder_package, tmp_path):
    import json
    import shutil

    copy = tmp_path / "grow"
    shutil.copytree(genai_decoder_package, copy)
    config = json.loads((copy / "genai_config.json").read_text())
    config["search"]["past_present_share_buffer"] = False
    (copy / "genai_config.json").write_text(json.dumps(config))
    grow, shared = LocalModel(copy), LocalModel(genai_decoder_package)
    assert grow.pipeline.kv.layout == "grow"
    settings = GenerationConfig(max_new_tokens=10, ignore_eos=True)
    for prompt in (_ids(5), _ids(70)):
        assert _tokens(grow, prompt, settings) == _tokens(shared, prompt, settings)
