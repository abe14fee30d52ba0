"""Model builder: Hugging Face checkpoint -> decoder-pipeline package (float, cpu-int4, npu-qdq); evaluation."""

from toolkit.build_choices import TARGETS
from toolkit.builder.builder import build_package
from toolkit.builder.evaluate import evaluate
from toolkit.builder.options import BuildOptions

__all__ = ["TARGETS", "BuildOptions", "build_package", "evaluate"]
