"""Teacher-forced evaluation of a package through the runtime: perplexity, and top-1 agreement with a reference.

Each document runs as `toolkit run` runs a conversation: its first token (BOS) is the prompt, and every next
token of the document is fed to `decode` as if it had been generated, so the logits scored before each token
are the ones generation would sample from (the iterator stage of an npu-qdq package, not its context stage).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path

import numpy as np

from catalog.errors import MissingFileError, PackageError
from toolkit.builder.text import read_text, split_documents
from toolkit.runtime.model import LocalModel
from toolkit.runtime.pipeline import RuntimeOptions


def cpu_options() -> RuntimeOptions:
    """Every stage on the CPU execution provider: the package's own figures, the same on every machine."""
    return RuntimeOptions(provider="cpu", huge_pages=False)


def next_token_logits(model: LocalModel, ids: Sequence[int]) -> Iterator[np.ndarray]:
    """The logits after each token of ids[:-1] (teacher forcing), starting from an empty KV cache."""
    pipeline = model.pipeline
    with pipeline.busy():
        pipeline.kv.reset()
        pipeline.ensure_capacity(len(ids))
        yield pipeline.prefill(ids[:1])
        for token in ids[1:-1]:
            yield pipeline.decode(token)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, in float64."""
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def tokenize_documents(model: LocalModel, text: str, max_len: int) -> list[list[int]]:
    """Token ids per document with the package's tokenizer, BOS-prefixed (when the package has one), cut to max_len."""
    bos = model.config.bos_token_id
    prefix = [bos] if bos is not None else []
    return [(prefix + model.tokenizer.encode(d))[:max_len] for d in split_documents(text)]


def evaluate(package: str | Path, text_file: str | Path, reference: str | Path | None = None,
             max_tokens: int | None = None, options: RuntimeOptions | None = None) -> dict:
    """Perplexity of `package` on the text, and top-1 agreement with `reference` (an unquantized package).

    Documents are split on <|endoftext|> and cut to the context length (or `max_tokens`). Both packages run
    with `options`, by default every stage on the CPU (`cpu_options`)."""
    text_path = Path(text_file)
    if not text_path.is_file():
        raise MissingFileError(f"{text_path}: text file does not exist")
    options = options or cpu_options()
    model = LocalModel(Path(package), options)
    ref = LocalModel(Path(reference), options) if reference else None
    limit = min(model.context_length, max_tokens or model.context_length)
    docs = tokenize_documents(model, read_text(text_path), limit)
    nll, ref_nll, agree, count = 0.0, 0.0, 0, 0
    for ids in docs:
        if len(ids) < 2:
            continue
        ref_rows = next_token_logits(ref, ids) if ref is not None else repeat(None, len(ids) - 1)
        for target, logits, ref_logits in zip(ids[1:], next_token_logits(model, ids), ref_rows, strict=True):
            lp = log_softmax(logits)
            nll -= float(lp[target])
            count += 1
            if ref_logits is not None:
                rlp = log_softmax(ref_logits)
                ref_nll -= float(rlp[target])
                agree += int(rlp.argmax() == lp.argmax())
    if count == 0:
        raise PackageError(f"{text_path}: no document has two or more tokens")
    result = {"package": str(package), "text": str(text_path), "documents": len(docs), "tokens": count,
              "nll": nll / count, "perplexity": math.exp(nll / count)}
    if ref is not None:
        result.update({"reference": str(reference), "reference_perplexity": math.exp(ref_nll / count),
                       "top1_agreement": agree / count,
                       "perplexity_ratio": math.exp(nll / count) / math.exp(ref_nll / count)})
    return result
