"""A small ONNX graph writer: named nodes, numpy initializers, save with external data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
MS_DOMAIN = "com.microsoft"

_ONNX_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.uint16): TensorProto.UINT16,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_type(dtype) -> int:
    """The TensorProto element type for a numpy dtype."""
    return _ONNX_TYPES[np.dtype(dtype)]


class Graph:
    """Accumulates nodes, inputs, outputs and initializers; writes one .onnx file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.initializer_by_name: dict[str, onnx.TensorProto] = {}
        self._counter = 0
        self._consts: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        """A unique tensor name built from `hint`."""
        self._counter += 1
        return f"{hint}_{self._counter}"

    def input(self, name: str, elem_type: int, shape: list) -> str:
        """Declare a graph input."""
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: list) -> str:
        """Declare a graph output (the tensor must be produced by a node)."""
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def init(self, name: str, array: np.ndarray) -> str:
        """Add a numpy array as an initializer."""
        return self.init_proto(numpy_helper.from_array(np.ascontiguousarray(array), name))

    def init_proto(self, proto: onnx.TensorProto) -> str:
        """Add an already-built TensorProto (e.g. int4) as an initializer."""
        self.initializers.append(proto)
        self.initializer_by_name[proto.name] = proto
        return proto.name

    def const(self, value, dtype=np.int64) -> str:
        """A small shared constant initializer (shapes, axes, scalars)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(self.fresh("const"), arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, name: str | None = None,
           outputs: list[str] | None = None, domain: str = "", **attrs) -> str | list[str]:
        """Append a node; returns its output name (or names when n_out > 1)."""
        base = name or self.fresh(op_type)
        outs = outputs or ([base] if n_out == 1 else [f"{base}_out{i}" for i in range(n_out)])
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, domain=domain or None, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def model(self, opset: int = OPSET) -> onnx.ModelProto:
        """The ModelProto (opset `opset` plus com.microsoft 1)."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS_DOMAIN, 1)]
        m = helper.make_model(graph, opset_imports=opsets, producer_name="toolkit-build")
        m.ir_version = 10
        return m

    def save(self, path: Path, opset: int = OPSET, external_threshold: int = 1 << 20) -> list[Path]:
        """Write the model; weights go to `<name>.data` when the model is large. Returns files written."""
        m = self.model(opset)
        path = Path(path)
        data_name = path.name + ".data"
        total = sum(len(t.raw_data) for t in m.graph.initializer)
        if total > external_threshold:
            data_path = path.parent / data_name
            if data_path.exists():
                os.remove(data_path)
            onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
            return [path, data_path]
        onnx.save_model(m, str(path))
        return [path]
