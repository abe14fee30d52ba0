"""`build_package`: checkpoint folder -> runnable decoder-pipeline package (float, cpu-int4, npu-qdq)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from catalog.errors import BuildError
from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.cpu import write_cpu_stages
from toolkit.builder.npu import write_npu_stages
from toolkit.builder.options import BuildOptions, check_options, resolve_context_length
from toolkit.builder.package import copy_tokenizer, genai_config, write_manifest


def build_package(checkpoint: str | Path, out: str | Path, opts: BuildOptions | None = None) -> dict:
    """Build a package into `out` (written to a temporary folder first, then moved); returns the manifest.

    The manifest's `context_length` is the one built (see `resolve_context_length`); its `warnings` (absent
    when none) are one-line messages for the user.
    """
    opts = opts or BuildOptions()
    ckpt = Checkpoint(checkpoint)
    context_length, warnings = resolve_context_length(ckpt, opts)
    opts = dataclasses.replace(opts, context_length=context_length)
    check_options(ckpt, opts)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not opts.overwrite:
        raise BuildError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        write_stages = write_npu_stages if opts.target == "npu-qdq" else write_cpu_stages
        context_file, iterator_file, quant_info = write_stages(ckpt, opts, tmp)
        config = genai_config(ckpt, context_file, iterator_file, opts.context_length, opts.window,
                              npu=opts.target == "npu-qdq")
        (tmp / "genai_config.json").write_text(json.dumps(config, indent=4) + "\n")
        copy_tokenizer(ckpt, tmp)
        for f in tmp.iterdir():  # onnx writes external data files 0600; packages are shared read-only
            f.chmod(0o644)
        manifest = write_manifest(tmp, {
            "format": "toolkit-package/1", "target": opts.target, "architecture": ckpt.config.model_type,
            "context_length": opts.context_length, "window": opts.window, "quantization": quant_info,
            "source": str(ckpt.folder), "build_seconds": round(time.perf_counter() - t0, 2),
            **({"warnings": warnings} if warnings else {}),
        })
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
