"""Azure AI Foundry / Azure ML registries (e.g. `azureml`): the model asset's blob folder, then a listing.

Two steps, behind one small interface so they can be tested apart:
1. `RegistryClient.model_folder(registry, name, version)` -> the model's blob folder URL with its SAS
   query. The default uses azure-ai-ml and azure-identity (`DefaultAzureCredential`), imported only here
   and only when an azureml variant is resolved (optional extra `toolkit[azure]`):
   `MLClient(registry_name=...)`,
   `models.get(name, version).path`, then the registry's blob-reference SAS call that `models.download`
   makes (`get_storage_details_for_registry_assets`, a private helper of azure-ai-ml).
2. `list_folder(client, folder_url)`: the Azure Blob "List Blobs" REST call through the one HTTP layer
   (catalog.sources.http.request: retries, redirects), with paging; each blob's size and Content-MD5 become
   the file's size and md5 check.
Step 1 cannot run here (no Azure account); tests drive step 2 and the transfers against a local server
answering with recorded List Blobs responses, through the same interfaces (see docs/sources.md).
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from catalog.errors import NotFoundError, SourceError
from catalog.schema import Variant
from catalog.sources import ResolvedFile, ResolvedVariant, select_files
from catalog.sources.http import request


class RegistryClient(Protocol):
    def model_folder(self, registry: str, name: str, version: str) -> str:
        """The model's blob folder as `https://<account>.blob.core.windows.net/<container>/<prefix>?<sas>`."""
        ...


class AzureMLRegistryClient:
    """RegistryClient over azure-ai-ml + azure-identity (imported lazily)."""

    def model_folder(self, registry: str, name: str, version: str) -> str:
        try:
            from azure.ai.ml import MLClient
            from azure.ai.ml._utils._registry_utils import get_storage_details_for_registry_assets
            from azure.ai.ml._utils._storage_utils import get_ds_name_and_path_prefix
            from azure.identity import DefaultAzureCredential
        except ImportError as e:
            raise SourceError(
                f"azureml source ({registry}/{name}:{version}) needs the optional extra: "
                f"pip install 'toolkit[azure]' (azure-ai-ml, azure-identity); {e}"
            ) from e
        try:
            ml = MLClient(credential=DefaultAzureCredential(), registry_name=registry)
            model_uri = ml.models.get(name=name, version=version).path
            folder, _auth = get_storage_details_for_registry_assets(
                service_client=ml.models._registry_service_client,
                asset_type="models",
                asset_name=name,
                asset_version=version,
                rg_name=ml.models._resource_group_name,
                reg_name=registry,
                uri=model_uri,
            )
            _, prefix = get_ds_name_and_path_prefix(model_uri, registry)
        except Exception as e:  # azure-core raises many types; all mean "could not resolve"
            if type(e).__name__ == "ResourceNotFoundError":
                raise NotFoundError(
                    f"azureml registry {registry!r}: no model {name} version {version}"
                ) from e
            raise SourceError(
                f"azureml registry {registry!r}, model {name}:{version}: {type(e).__name__}: {e}"
            ) from e
        return with_prefix(folder, prefix)


def with_prefix(sas_url: str, prefix: str) -> str:
    """The SAS URL of a container plus the model's path prefix (unless the URL already names a folder)."""
    u = urlsplit(sas_url)
    path = u.path.rstrip("/")
    if prefix and path.count("/") <= 1:
        path += "/" + prefix.strip("/")
    return u._replace(path=path).geturl()


def _md5_hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def list_folder(client: httpx.Client, folder_url: str) -> dict[str, ResolvedFile]:
    """Every blob under the folder (List Blobs, following NextMarker), by path relative to the folder."""
    u = urlsplit(folder_url)
    parts = u.path.lstrip("/").split("/", 1)
    if not parts[0]:
        raise SourceError(f"{folder_url}: not a blob folder URL (no container)")
    container, prefix = parts[0], (parts[1].rstrip("/") + "/" if len(parts) > 1 and parts[1] else "")
    sas = parse_qsl(u.query, keep_blank_values=True)
    base = f"{u.scheme}://{u.netloc}/{container}"
    files: dict[str, ResolvedFile] = {}
    marker = ""
    while True:
        query = [("restype", "container"), ("comp", "list"), ("prefix", prefix)] + sas
        if marker:
            query.append(("marker", marker))
        r = request(client, "GET", f"{base}?{urlencode(query)}", headers={"x-ms-version": "2021-08-06"},
                    shown=f"{base}/{prefix}", what="no such container",  # the SAS stays out of messages
                    denied="List Blobs refused the SAS (expired?)")
        try:
            root = ET.fromstring(r.content)
        except ET.ParseError as e:
            raise SourceError(f"{base}/{prefix}: List Blobs answer is not XML ({e})") from e
        for blob in root.iter("Blob"):
            name = blob.findtext("Name") or ""
            size = blob.findtext("Properties/Content-Length")
            if not name.startswith(prefix) or name.endswith("/") or size is None:
                continue
            rel = name[len(prefix) :]
            files[rel] = ResolvedFile(
                path=rel,
                url=f"{base}/{quote(name)}" + (f"?{urlencode(sas)}" if sas else ""),
                size=int(size),
                md5=_md5_hex(blob.findtext("Properties/Content-MD5")),
            )
        marker = root.findtext("NextMarker") or ""
        if not marker:
            break
    if not files:
        raise NotFoundError(f"{base}/{prefix}: the model folder is empty")
    return files


def resolve(
    variant: Variant, client: httpx.Client, registry: RegistryClient | None = None
) -> ResolvedVariant:
    """Resolve an `azureml` variant: registry -> blob folder (SAS) -> listing."""
    src = variant.source
    folder = (registry or AzureMLRegistryClient()).model_folder(
        src.registry or "", src.name or "", src.version or ""
    )
    files = list_folder(client, folder)
    if src.subfolder:
        sub = src.subfolder.strip("/") + "/"
        files = {
            k[len(sub) :]: ResolvedFile(**{**f.__dict__, "path": k[len(sub) :]})
            for k, f in files.items()
            if k.startswith(sub)
        }
    where = f"azureml://registries/{src.registry}/models/{src.name}/versions/{src.version}"
    return ResolvedVariant(
        variant.id, "azureml", f"{src.name}:{src.version}", select_files(variant, files, where), origin=where
    )
