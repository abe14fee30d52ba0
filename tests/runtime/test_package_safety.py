"""A package is data: it cannot make the runtime load native code or read files outside its folder.

Real packages (built by `toolkit build`, copied and edited), real ONNX Runtime sessions, and a real shared
library whose constructor writes a marker file: the marker proves whether the library was ever loaded.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.errors import PackageError
from tests.helpers.cli import run_toolkit
from toolkit.runtime.config import load_genai_config, parse_genai_config
from toolkit.runtime.model import LocalModel
from toolkit.runtime.pipeline import RuntimeOptions
from toolkit.runtime.providers import resolve_qnn_options

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds an ELF shared library")

# Loading it writes the marker; it also exports the entry point onnxruntime calls, registering no ops.
LIBRARY_SOURCE = r"""
#include <stdio.h>
__attribute__((constructor)) static void loaded(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("loaded\n", f); fclose(f); }
}
void *RegisterCustomOps(void *options, const void *api) { return 0; }
"""
CONTEXT = ("model", "decoder", "pipeline", 1, "context")


def build_library(out: Path, marker: Path) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the test library")
    source = out.with_suffix(".c")
    source.write_text(LIBRARY_SOURCE)
    subprocess.run([compiler, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(out), str(source)], check=True)
    source.unlink()
    return out


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "library-was-loaded"


@pytest.fixture()
def package(float_package: Path, tmp_path: Path) -> Path:
    """A copy of the float package that a test may edit."""
    out = tmp_path / "pkg"
    shutil.copytree(float_package, out)
    return out


def edit_config(package: Path, edit) -> None:
    path = package / "genai_config.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def at(data: dict, *keys) -> dict:
    for key in keys:
        data = data[key]
    return data


def session_options(data: dict, level: str) -> dict:
    if level == "decoder":
        return data["model"]["decoder"]["session_options"]
    return at(data, *CONTEXT).setdefault("session_options", {})


FIELD = {"decoder": r"model\.decoder\.session_options",
         "stage": r"model\.decoder\.pipeline\[1\]\.context\.session_options"}


@pytest.mark.parametrize("level", ["decoder", "stage"])
@pytest.mark.parametrize("named", ["by name", "by absolute path"])  # the store's folders are easy to guess
def test_custom_ops_library_is_refused_and_never_loaded(package: Path, marker: Path, level: str, named: str) -> None:
    library = build_library(package / "custom_ops.so", marker)
    name = "custom_ops.so" if named == "by name" else str(library)
    edit_config(package, lambda d: session_options(d, level).update(custom_ops_library=name))
    with pytest.raises(PackageError, match=rf"genai_config\.json: {FIELD[level]}\.custom_ops_library: "):
        LocalModel(package)
    assert not marker.exists()
    assert PackageError.exit_code == 9


def test_toolkit_run_refuses_the_library_with_exit_code_9(package: Path, marker: Path) -> None:
    build_library(package / "custom_ops.so", marker)
    edit_config(package, lambda d: session_options(d, "decoder").update(custom_ops_library="custom_ops.so"))
    # where the loader would find a bare name: without the refusal, the library would load and the run succeed
    result = run_toolkit("run", str(package), "--prompt", "hello", "-n", "1", env={"LD_LIBRARY_PATH": str(package)})
    assert result.returncode == 9, result.stderr
    assert "genai_config.json" in result.stderr and "custom_ops_library" in result.stderr
    assert not marker.exists()


def test_toolkit_run_allow_custom_ops_loads_it_for_a_package_given_by_path(package: Path, marker: Path) -> None:
    build_library(package / "custom_ops.so", marker)
    edit_config(package, lambda d: session_options(d, "decoder").update(custom_ops_library="custom_ops.so"))
    result = run_toolkit("run", str(package), "--prompt", "hello", "-n", "1", "--allow-custom-ops")
    assert result.returncode == 0, result.stderr
    assert marker.exists()


def test_opting_in_loads_a_library_inside_the_package(package: Path, marker: Path) -> None:
    (package / "ops").mkdir()
    build_library(package / "ops" / "custom_ops.so", marker)
    edit_config(package, lambda d: session_options(d, "stage").update(custom_ops_library="ops/custom_ops.so"))
    model = LocalModel(package, RuntimeOptions(allow_custom_ops=True))
    assert marker.exists()  # the opt-in really loads it
    logits = model.pipeline.prefill([5, 6, 7])
    assert logits.shape[-1] == model.config.vocab_size


@pytest.mark.parametrize("where", ["parent", "absolute", "link"])
def test_even_with_the_opt_in_the_library_must_be_inside_the_package(
    package: Path, marker: Path, tmp_path: Path, where: str
) -> None:
    outside = build_library(tmp_path / "custom_ops.so", marker)
    name = {"parent": "../custom_ops.so", "absolute": str(outside), "link": "custom_ops.so"}[where]
    if where == "link":
        (package / "custom_ops.so").symlink_to(outside)
    edit_config(package, lambda d: session_options(d, "decoder").update(custom_ops_library=name))
    with pytest.raises(PackageError, match=r"genai_config\.json: model\.decoder\.session_options\.custom_ops_library: "
                                           r".*inside its own folder"):
        LocalModel(package, RuntimeOptions(allow_custom_ops=True))
    assert not marker.exists()


@pytest.mark.parametrize("where", ["parent", "absolute", "link"])
def test_a_stage_file_outside_the_package_is_refused(package: Path, tmp_path: Path, where: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(package / "transformer.onnx", outside / "transformer.onnx")  # a graph that would load fine there
    name = {"parent": "../elsewhere/transformer.onnx", "absolute": str(outside / "transformer.onnx"),
            "link": "linked.onnx"}[where]
    if where == "link":
        (package / "linked.onnx").symlink_to(outside / "transformer.onnx")
    edit_config(package, lambda d: at(d, *CONTEXT).update(filename=name))
    with pytest.raises(PackageError, match=r"genai_config\.json: model\.decoder\.pipeline\[1\]\.context\.filename: "
                                           r".*inside its own folder"):
        LocalModel(package)


def test_a_single_decoder_file_outside_the_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "pkg").mkdir()
    data = {"model": {"type": "qwen2", "context_length": 128, "eos_token_id": 5,
                      "decoder": {"filename": "../model.onnx", "num_hidden_layers": 2}}}
    with pytest.raises(PackageError, match=r"genai_config\.json: model\.decoder\.filename: .*contains '\.\.'"):
        parse_genai_config(data, tmp_path / "pkg" / "genai_config.json")


def test_a_link_inside_the_package_to_a_file_inside_it_is_fine(package: Path) -> None:
    (package / "linked.onnx").symlink_to(package / "transformer.onnx")
    edit_config(package, lambda d: at(d, *CONTEXT).update(filename="linked.onnx"))
    assert load_genai_config(package).stages[1].filename == "linked.onnx"


def test_a_qnn_backend_path_is_refused_and_never_loaded(package: Path, marker: Path, tmp_path: Path) -> None:
    library = build_library(tmp_path / "libQnnHtp.so", marker)  # named like the real backend
    edit_config(package, lambda d: session_options(d, "stage").update(
        provider_options=[{"qnn": {"backend_path": str(library)}}]))
    with pytest.raises(PackageError, match=r"genai_config\.json: model\.decoder\.pipeline\[1\]\.context\."
                                           r"session_options\.provider_options\[0\]\.qnn\.backend_path: names a library"):
        LocalModel(package)
    assert not marker.exists()


def test_qnn_backends_come_only_from_the_toolkit(tmp_path: Path, marker: Path) -> None:
    pytest.importorskip("onnxruntime_qnn")
    library = build_library(tmp_path / "libQnnHtp.so", marker)
    resolved = resolve_qnn_options({"backend_path": str(library), "htp_performance_mode": "burst"})
    assert resolved["backend_path"] != str(library)
    assert Path(resolved["backend_path"]).name == "libQnnHtp.so" and Path(resolved["backend_path"]).is_file()
    assert resolved["htp_performance_mode"] == "burst"
    assert Path(resolve_qnn_options({"backend_type": "cpu"})["backend_path"]).name == "libQnnCpu.so"


def _base(float_package: Path) -> dict:
    return json.loads((float_package / "genai_config.json").read_text())


def _with_provider(provider: str, options: dict):
    return lambda d: session_options(d, "decoder").update(provider_options=[{provider: options}])


def _with_entry(key: str, value: str):
    return lambda d: session_options(d, "decoder").update({key: value})


@pytest.mark.parametrize(("edit", "field"), [
    (_with_provider("qnn", {"backend_path": "../libQnnHtp.so"}), r"provider_options\[0\]\.qnn\.backend_path"),
    (_with_provider("qnn", {"backend_path": "libevil.so"}), r"provider_options\[0\]\.qnn\.backend_path"),
    (_with_provider("qnn", {"backend_type": "dsp"}), r"provider_options\[0\]\.qnn\.backend_type"),
    (_with_provider("qnn", {"qnn_saver_path": "/tmp/libQnnSaver.so"}), r"qnn\.qnn_saver_path"),
    (_with_provider("qnn", {"op_packages": "Op:/tmp/libop.so:Iface"}), r"qnn\.op_packages"),
    (_with_provider("qnn", {"profiling_file_path": "/tmp/p.csv"}), r"qnn\.profiling_file_path"),
    (_with_provider("qnn", {"json_qnn_graph_dir": "/tmp"}), r"qnn\.json_qnn_graph_dir"),
    (_with_provider("qnn", {"dump_qnn_ir_dlc": "1"}), r"qnn\.dump_qnn_ir_dlc"),
    (_with_provider("openvino", {"cache_dir": "/tmp/ov"}), r"openvino\.cache_dir"),
    (_with_provider("openvino", {"load_config": "ov.json"}), r"openvino\.load_config"),
    (_with_provider("VitisAI", {"config_file": "vaip.json"}), r"VitisAI\.config_file"),
    (_with_provider("VitisAI", {"cacheDir": "/tmp"}), r"VitisAI\.cacheDir"),
    (_with_provider("cuda", {"gpu_external_alloc": "140737488355328"}), r"cuda\.gpu_external_alloc"),
    (_with_provider("TensorrtExecutionProvider", {"trt_extra_plugin_lib_paths": "/tmp/p.so"}),
     r"trt_extra_plugin_lib_paths"),
    (_with_entry("ep.context_file_path", "/tmp/ctx.onnx"), r"ep\.context_file_path"),
    (_with_entry("session.node_partition_config_file", "/tmp/p.json"), r"node_partition_config_file"),
    (_with_entry("ep.QNNExecutionProvider.backend_path", "/tmp/libQnnHtp.so"), r"ep\.QNNExecutionProvider\.backend_path"),
])
def test_options_that_name_files_or_libraries_are_refused(float_package: Path, edit, field: str) -> None:
    data = copy.deepcopy(_base(float_package))
    edit(data)
    with pytest.raises(PackageError, match=rf"genai_config\.json: model\.decoder\.session_options\.\S*{field}: "):
        parse_genai_config(data, float_package / "genai_config.json")


@pytest.mark.parametrize("edit", [
    _with_provider("qnn", {"backend_path": "QnnHtp.dll", "htp_performance_mode": "burst",
                           "htp_graph_finalization_optimization_mode": "3"}),  # as published packages have
    _with_provider("qnn", {"backend_path": "libQnnCpu.so"}),
    _with_provider("qnn", {"backend_type": "gpu", "enable_htp_fp16_precision": "1", "soc_model": "60"}),
    _with_provider("openvino", {"device_type": "NPU", "precision": "FP16"}),
    _with_entry("session.disable_cpu_ep_fallback", "1"),
    _with_entry("ep.context_enable", "1"),
])
def test_options_that_choose_behaviour_are_kept(float_package: Path, edit) -> None:
    data = copy.deepcopy(_base(float_package))
    edit(data)
    cfg = parse_genai_config(data, float_package / "genai_config.json")
    for provider in cfg.session.providers:
        assert "backend_path" not in provider.options  # the backend is chosen by name only
        if provider.name == "QNN":
            assert provider.options["backend_type"] in ("htp", "cpu", "gpu")

