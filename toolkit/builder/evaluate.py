"""Teacher-forced evaluation of a package: logits for every position, perplexity, top-1 agreement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from catalog.errors import MissingFileError, PackageError
from toolkit.builder.text import read_text, split_documents


class PackageRunner:
    """Runs a decoder-pipeline package's stages with plain ONNX Runtime CPU sessions."""

    def __init__(self, package: str | Path, providers: list | None = None) -> None:
        import onnxruntime as ort

        self.dir = Path(package)
        cfg_path = self.dir / "genai_config.json"
        try:
            self.config = json.loads(cfg_path.read_text())
            model = self.config["model"]
            dec = model["decoder"]
            stages = {k: v for entry in dec["pipeline"] for k, v in entry.items()}
            self.window = int(dec["sliding_window"]["window_size"])
            self.context_length = int(model["context_length"])
            self.layers = int(dec["num_hidden_layers"])
            self.kv_shape = (1, int(dec["num_key_value_heads"]), self.context_length, int(dec["head_size"]))
            self.pad_id = int(model.get("pad_token_id", 0))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PackageError(f"{cfg_path}: not a decoder-pipeline genai_config.json: {e}") from e
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        providers = providers or ["CPUExecutionProvider"]

        def session(stage: str):
            if stage not in stages:
                raise PackageError(f"{cfg_path}: pipeline has no {stage!r} stage")
            return ort.InferenceSession(str(self.dir / stages[stage]["filename"]), opts, providers=providers)

        self.embeddings = session("embeddings")
        self.context = session("context")
        self.iterator = (self.context if stages["iterator"]["filename"] == stages["context"]["filename"]
                         else session("iterator"))
        self.lm_head = session("lm_head")
        self.reset()

    def reset(self) -> None:
        """Empty the KV cache."""
        self.past = {}
        for i in range(self.layers):
            self.past[f"past_keys_{i}"] = np.zeros(self.kv_shape, np.float32)
            self.past[f"past_values_{i}"] = np.zeros(self.kv_shape, np.float32)
        self.length = 0

    def _step(self, session, ids: list[int], n_real: int) -> np.ndarray:
        hidden = self.embeddings.run(None, {"input_ids": np.asarray([ids], np.int64)})[0]
        feeds = {"input_hidden_states": hidden, **self.past,
                 "past_seq_len": np.asarray([[self.length + len(ids) - 1]], np.int32),
                 "total_seq_len": np.asarray([self.context_length], np.int32)}
        names = [o.name for o in session.get_outputs()]
        outs = dict(zip(names, session.run(names, feeds), strict=True))
        for i in range(self.layers):
            self.past[f"past_keys_{i}"] = outs[f"present_keys_{i}"]
            self.past[f"past_values_{i}"] = outs[f"present_values_{i}"]
        self.length += n_real
        return outs["output_hidden_states"][:, :n_real]

    def prefill_hidden(self, ids: list[int]) -> np.ndarray:
        """Run the context stage window by window (last window padded, left-aligned); hidden states [S, H]."""
        if len(ids) + self.length > self.context_length:
            raise PackageError(f"{len(ids)} tokens do not fit the context length {self.context_length}")
        chunks = []
        for w0 in range(0, len(ids), self.window):
            chunk = ids[w0:w0 + self.window]
            n_real = len(chunk)
            chunk = chunk + [self.pad_id] * (self.window - n_real)
            chunks.append(self._step(self.context, chunk, n_real)[0])
        return np.concatenate(chunks, axis=0)

    def decode_hidden(self, token: int) -> np.ndarray:
        """Run the iterator stage on one token; hidden state [1, H]."""
        return self._step(self.iterator, [token], 1)[0]

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """lm_head over hidden states [S, H] -> logits [S, vocab]."""
        return self.lm_head.run(None, {"output_hidden_states": hidden[None].astype(np.float32)})[0][0]

    def sequence_logits(self, ids: list[int]) -> np.ndarray:
        """Teacher-forced logits for every position of `ids` from an empty cache."""
        self.reset()
        return self.logits(self.prefill_hidden(ids))

    def greedy(self, prompt: list[int], n_new: int) -> list[int]:
        """Greedy generation: context for the prompt, then the iterator one token at a time."""
        self.reset()
        out = list(prompt)
        nxt = int(np.argmax(self.logits(self.prefill_hidden(prompt))[-1]))
        for _ in range(n_new):
            out.append(nxt)
            if len(out) == n_new + len(prompt):
                break
            nxt = int(np.argmax(self.logits(self.decode_hidden(nxt))[-1]))
        return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def tokenize_documents(package: Path, text: str, bos: int | None, max_len: int) -> list[list[int]]:
    """Token ids per document with the package's tokenizer.json, BOS-prefixed, cut to max_len."""
    from tokenizers import Tokenizer

    tok_path = Path(package) / "tokenizer.json"
    if not tok_path.is_file():
        raise PackageError(f"{tok_path}: tokenizer.json missing from the package")
    tok = Tokenizer.from_file(str(tok_path))
    docs = []
    for d in split_documents(text):
        ids = tok.encode(d, add_special_tokens=False).ids
        if bos is not None:
            ids = [bos] + ids
        docs.append(ids[:max_len])
    return docs


def evaluate(package: str | Path, text_file: str | Path, reference: str | Path | None = None,
             max_tokens: int | None = None) -> dict:
    """Perplexity of `package` on the text, and top-1 agreement with `reference` (an unquantized package)."""
    text_path = Path(text_file)
    if not text_path.is_file():
        raise MissingFileError(f"{text_path}: text file does not exist")
    run = PackageRunner(package)
    ref = PackageRunner(reference) if reference else None
    model = run.config["model"]
    bos = model.get("bos_token_id")
    docs = tokenize_documents(Path(package), read_text(text_path), bos,
                              min(run.context_length, max_tokens or run.context_length))
    nll, agree, count, ref_nll = 0.0, 0, 0, 0.0
    for ids in docs:
        if len(ids) < 2:
            continue
        lp = log_softmax(run.sequence_logits(ids))[:-1]
        targets = np.asarray(ids[1:])
        nll -= float(lp[np.arange(len(targets)), targets].sum())
        count += len(targets)
        if ref is not None:
            rlp = log_softmax(ref.sequence_logits(ids))[:-1]
            ref_nll -= float(rlp[np.arange(len(targets)), targets].sum())
            agree += int((rlp.argmax(-1) == lp.argmax(-1)).sum())
    if count == 0:
        raise PackageError(f"{text_path}: no document has two or more tokens")
    result = {"package": str(package), "text": str(text_path), "documents": len(docs), "tokens": count,
              "nll": nll / count, "perplexity": math.exp(nll / count)}
    if ref is not None:
        result.update({"reference": str(reference), "reference_perplexity": math.exp(ref_nll / count),
                       "top1_agreement": agree / count,
                       "perplexity_ratio": math.exp(nll / count) / math.exp(ref_nll / count)})
    return result
