"""Model builder: Hugging Face checkpoint -> decoder-pipeline package (float, cpu-int4, npu-qdq); evaluation."""

from toolkit.builder.builder import TARGETS, BuildOptions, build_package
from toolkit.builder.evaluate import PackageRunner, evaluate

__all__ = ["TARGETS", "BuildOptions", "PackageRunner", "build_package", "evaluate"]
