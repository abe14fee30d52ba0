"""The azureml source through its two interfaces: a RegistryClient (here answering with the folder URL the
registry's blob-reference SAS call returns) and the List Blobs listing against a local look-alike server.
azure-ai-ml itself is not called: that needs an Azure account (see docs/sources.md)."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from catalog.errors import IntegrityError, NotFoundError, SourceError
from catalog.schema import Source, Variant
from catalog.sources import azureml
from catalog.sources.http import make_client
from tests.helpers_net.blob_server import BlobServer
from tests.helpers_net.hub_server import random_bytes
from tests.helpers_net.variants import fast_config
from toolkit.download.manager import install
from toolkit.store.blobs import Store

MODEL = random_bytes(1_200_000, seed=41)
PREFIX = "models/Phi-tiny/3/npu"


class RecordedRegistry:
    """Answers model_folder with what the registry answered when recorded, pointed at the local server."""

    def __init__(self, folder: str) -> None:
        self.folder, self.calls = folder, []

    def model_folder(self, registry: str, name: str, version: str) -> str:
        self.calls.append((registry, name, version))
        return self.folder


def variant() -> Variant:
    return Variant(
        id="phi-tiny-npu:3",
        device="npu",
        vendor="qualcomm",
        execution_provider="QNNExecutionProvider",
        format="onnx-genai",
        quantization="w4a16",
        source=Source(type="azureml", registry="azureml", name="Phi-tiny", version="3"),
    )


@pytest.fixture()
def blobs():
    with BlobServer(page_size=2) as s:
        s.put("registry-container", f"{PREFIX}/model.onnx", MODEL)
        s.put("registry-container", f"{PREFIX}/genai_config.json", b'{"model": {}}')
        s.put("registry-container", f"{PREFIX}/tokenizer/tokenizer.json", b'{"tok": 1}')
        s.put("registry-container", "models/other/1/x.bin", b"not ours")
        yield s


def test_listing_pages_through_every_blob_of_the_folder(blobs: BlobServer) -> None:
    with make_client() as client:
        files = azureml.list_folder(client, blobs.folder_url("registry-container", PREFIX))
    assert sorted(files) == ["genai_config.json", "model.onnx", "tokenizer/tokenizer.json"]
    assert files["model.onnx"].size == len(MODEL) and len(files["model.onnx"].md5 or "") == 32
    assert "sig=" in files["model.onnx"].url
    assert blobs.list_calls == 2  # three blobs with two per page


def test_azureml_variant_downloads_verified_into_the_store(blobs: BlobServer, tmp_path: Path) -> None:
    registry = RecordedRegistry(blobs.folder_url("registry-container", PREFIX))
    with make_client() as client:
        resolved = azureml.resolve(variant(), client, registry)
        snap, report = install(resolved, Store(tmp_path), client, fast_config())
    assert registry.calls == [("azureml", "Phi-tiny", "3")]
    assert (snap / "model.onnx").read_bytes() == MODEL and (snap / "tokenizer" / "tokenizer.json").is_file()
    assert report.source == "azureml"


def test_blob_whose_bytes_do_not_match_content_md5_is_refused(blobs: BlobServer, tmp_path: Path) -> None:
    registry = RecordedRegistry(blobs.folder_url("registry-container", PREFIX))
    with make_client() as client:
        resolved = azureml.resolve(variant(), client, registry)
        blobs.put(
            "registry-container", f"{PREFIX}/model.onnx", MODEL[:-1] + b"\x00"
        )  # replaced after listing
        with pytest.raises(IntegrityError, match="md5"):
            install(resolved, Store(tmp_path), client, fast_config(restarts=0))


def test_expired_sas_and_missing_container_are_named(blobs: BlobServer) -> None:
    with make_client() as client:
        with pytest.raises(SourceError, match="HTTP 403"):
            azureml.list_folder(
                client, blobs.folder_url("registry-container", PREFIX).replace("sig=", "sig=x")
            )
        with pytest.raises(NotFoundError, match="nowhere"):
            azureml.list_folder(client, blobs.folder_url("nowhere", PREFIX))


def test_without_the_azure_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_azure(name: str, *args, **kwargs):
        if name.startswith("azure"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_azure)
    with pytest.raises(SourceError, match=r"toolkit\[azure\]"):
        azureml.AzureMLRegistryClient().model_folder("azureml", "Phi-tiny", "3")


def test_container_sas_url_gets_the_models_prefix() -> None:
    assert (
        azureml.with_prefix("https://a.blob.core.windows.net/c?sig=s", "models/m/1")
        == "https://a.blob.core.windows.net/c/models/m/1?sig=s"
    )
