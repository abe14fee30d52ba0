"""The httpx client every download uses: proxies from the environment, a custom CA bundle, timeouts.

Proxies: httpx's own handling (`trust_env`): HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY.
CA bundle: TOOLKIT_CA_BUNDLE, else SSL_CERT_FILE, else REQUESTS_CA_BUNDLE, else the system store.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx

from catalog.errors import DownloadError

CA_ENV_VARS = ("TOOLKIT_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
USER_AGENT = "toolkit-download/0.1"


def ca_bundle() -> tuple[str, str] | None:
    """(variable, path) of the CA bundle the user set, or None for the system store."""
    for var in CA_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return var, value
    return None


def ssl_context() -> ssl.SSLContext:
    """The TLS context: the configured bundle (file or folder) or the system store."""
    found = ca_bundle()
    if found is None:
        return ssl.create_default_context()
    var, value = found
    p = Path(value)
    try:
        if p.is_dir():
            return ssl.create_default_context(capath=str(p))
        return ssl.create_default_context(cafile=str(p))
    except (OSError, ssl.SSLError) as e:
        raise DownloadError(f"{var}={value}: cannot load the CA bundle ({e})") from e


def make_client(
    stall_timeout: float = 30.0, connect_timeout: float = 15.0, max_connections: int = 32
) -> httpx.Client:
    """A client for sources and transfers; `stall_timeout` is the longest wait for any byte."""
    return httpx.Client(
        verify=ssl_context(),
        trust_env=True,
        timeout=httpx.Timeout(connect=connect_timeout, read=stall_timeout, write=stall_timeout, pool=None),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        follow_redirects=False,
    )
