"""An independent decoder runner, the tests' oracle: a package's stages on plain ONNX Runtime sessions.

It knows only the tensor names `toolkit build` writes (input_ids, input_hidden_states, past_keys_%d, ...) and
runs a whole sequence window by window through the context stage, so the builder's graphs are checked (on the
CPU, or on QNN's HTP with the providers a test gives) without any code of the runtime's pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from catalog.errors import PackageError


class PackageRunner:
    """Runs a decoder-pipeline package's stages with plain ONNX Runtime CPU sessions."""

    def __init__(self, package: str | Path, providers: list | None = None) -> None:
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
