"""A signed URL (an Azure SAS, a presigned link) never reaches an error message: its query is hidden."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from catalog.errors import IntegrityError, NotFoundError
from catalog.sources import ResolvedFile
from catalog.sources.http import make_client, public_url
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import fast_config
from toolkit.download.transfer import FileTransfer

DATA = random_bytes(100_000, seed=9)
SAS = "?sv=2024-01-01&se=2030-01-01&sp=r&sig=SECRETSIGNATURE"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://acct.blob.core.windows.net/c/f.onnx" + SAS, "https://acct.blob.core.windows.net/c/f.onnx?<signed query hidden>"),
    ("https://s3.example/f?X-Amz-Signature=abc&X-Amz-Date=1", "https://s3.example/f?<signed query hidden>"),
    ("https://hub.example/api/models/x/revision/main?blobs=true", "https://hub.example/api/models/x/revision/main?blobs=true"),
    ("https://hub.example/x/resolve/main/f.onnx", "https://hub.example/x/resolve/main/f.onnx"),
])
def test_public_url_hides_only_signed_queries(url: str, shown: str) -> None:
    assert public_url(url) == shown


def _run(hub: HubServer, path: str, sha256: str | None, tmp_path: Path) -> None:
    rf = ResolvedFile(path="model.onnx", url=f"{hub.url}/org/tiny/resolve/main/{path}{SAS}", size=len(DATA),
                      sha256=sha256)
    config = fast_config(restarts=0)
    with make_client(config) as client:
        FileTransfer(client, rf, tmp_path / "partial", config).run()


def test_transfer_errors_name_the_file_without_its_signature(tmp_path: Path) -> None:
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        with pytest.raises(NotFoundError) as missing:
            _run(hub, "missing.onnx", None, tmp_path)
        with pytest.raises(IntegrityError) as wrong:
            _run(hub, "model.onnx", hashlib.sha256(b"other").hexdigest(), tmp_path)
    for error in (missing.value, wrong.value):
        assert "SECRETSIGNATURE" not in str(error) and "?<signed query hidden>" in str(error)
