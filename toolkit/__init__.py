"""toolkit: a model catalog, download manager and NPU-first runtime for local LLMs."""

__version__ = "0.1.0"
