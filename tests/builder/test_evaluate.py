"""`evaluate` scores the logits the runtime gives under teacher forcing, document by document from an empty cache."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.package_runner import PackageRunner
from toolkit.builder.evaluate import cpu_options, next_token_logits, tokenize_documents
from toolkit.builder.text import read_text
from toolkit.runtime.model import LocalModel


@pytest.fixture(scope="module")
def stories(stories_float_package, tinystories_text):
    model = LocalModel(stories_float_package, cpu_options())
    return model, tokenize_documents(model, read_text(tinystories_text), model.context_length)


def test_teacher_forced_runtime_logits_equal_the_independent_runner(stories, stories_float_package):
    model, docs = stories
    ids = docs[0]
    assert len(ids) > 2 * model.pipeline.prompt_window.size  # the oracle's context graph runs several windows
    runtime = np.stack(list(next_token_logits(model, ids)))
    oracle = PackageRunner(stories_float_package).sequence_logits(ids)[:-1]
    assert runtime.shape == oracle.shape == (len(ids) - 1, oracle.shape[1])
    assert np.abs(runtime - oracle).max() < 1e-4


def test_each_document_starts_from_an_empty_cache(stories):
    model, docs = stories
    first = np.stack(list(next_token_logits(model, docs[1])))
    list(next_token_logits(model, docs[2]))
    again = np.stack(list(next_token_logits(model, docs[1])))
    assert np.array_equal(first, again)
