"""Which execution providers a stage tries, in order: its config's list, the preferred one first, or `--ep` alone."""

from __future__ import annotations

import pytest

from toolkit.runtime.config import ProviderOptions, SessionConfig
from toolkit.runtime.providers import wanted_providers

QNN, CPU, OPENVINO = "QNNExecutionProvider", "CPUExecutionProvider", "OpenVINOExecutionProvider"
EP = {"QNN": QNN, "cpu": CPU, "OpenVINO": OPENVINO}


@pytest.mark.parametrize(("listed", "preferred", "tried"), [
    (["QNN"], None, ["QNN"]),
    (["cpu", "QNN"], None, ["cpu", "QNN"]),  # the CPU first: the stage runs there
    (["cpu", "QNN"], QNN, ["QNN", "cpu"]),  # the provider the variant was chosen for goes first
    (["OpenVINO", "cpu", "QNN"], "qnn", ["QNN", "OpenVINO", "cpu"]),  # any spelling; the rest keep their order
    (["OpenVINO", "QNN"], CPU, ["OpenVINO", "QNN"]),  # a provider the stage does not list changes nothing
    ([], QNN, []),  # a stage listing none (embeddings, lm_head of NPU packages) stays on the CPU
])
def test_the_preferred_provider_is_tried_first_by_the_stages_that_list_it(listed, preferred, tried):
    cfg = SessionConfig(providers=tuple(ProviderOptions(name, {"listed_as": name}) for name in listed))
    wanted = wanted_providers(cfg, preferred=preferred)
    assert wanted == [(EP[name], {"listed_as": name}) for name in tried]  # each with its own options


def test_a_forced_provider_replaces_every_stage_list_whatever_is_preferred():
    cfg = SessionConfig(providers=(ProviderOptions("QNN", {"htp_performance_mode": "burst"}),))
    assert wanted_providers(cfg, "cpu", QNN) == [("cpu", {})]
