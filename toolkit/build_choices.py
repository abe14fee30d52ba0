"""What `toolkit build` accepts, without numpy or onnx: the CLI's parser and toolkit.builder both read these.

The targets and weight methods are the builder's own names; the limits keep a typo from becoming a
graph nobody can run (a 3,000,000,000-position RoPE table is 89 GiB) or an overflow.
"""

from __future__ import annotations

TARGETS = ("float", "cpu-int4", "npu-qdq")
WEIGHT_METHODS = ("gptq", "rtn")
MAX_CONTEXT = 1_048_576  # positions of the static KV cache (and the RoPE tables written into the graph)
MAX_WINDOW = 4096  # the prefill window, the context stage's static length on NPUs
