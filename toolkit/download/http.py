"""The httpx client every download uses: proxies from the environment, a custom CA bundle, timeouts.

Proxies: httpx's own handling (`trust_env`): HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY; one it cannot use
is a SettingError naming the variable (socks needs the `httpx[socks]` extra).
CA bundle: TOOLKIT_CA_BUNDLE, else SSL_CERT_FILE, else REQUESTS_CA_BUNDLE, else the system store.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from pathlib import Path
from urllib.request import getproxies

import httpx

from catalog.errors import DownloadError, SettingError

CA_ENV_VARS = ("TOOLKIT_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
USER_AGENT = "toolkit-download/0.1"
PROXY_SCHEMES = ("http", "https", "all")  # the proxies httpx takes from the environment (see get_environment_proxies)


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


def proxy_settings() -> list[tuple[str, str]]:
    """(variable, URL) of each proxy httpx will use, as urllib reads them (lower-case names first, and the
    system settings on Windows and macOS)."""
    found = []
    for scheme, value in getproxies().items():
        if scheme not in PROXY_SCHEMES or not value:
            continue
        names = (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
        name = next((n for n in names if os.environ.get(n) == value), f"the system's {scheme} proxy")
        found.append((name, value if "://" in value else f"http://{value}"))  # as httpx reads it
    return found


def check_proxies() -> None:
    """A SettingError naming the variable of a proxy httpx could not use: not a URL, a scheme it does not
    speak, or socks without its extra. The value is not shown: proxy URLs often carry a password."""
    for name, value in proxy_settings():
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as e:
            raise SettingError(f"{name}: not a proxy URL ({e})") from None
        if url.scheme not in ("http", "https", "socks5", "socks5h") or not url.host:
            raise SettingError(f"{name}: expected a proxy URL like http://HOST:PORT (http, https, socks5 or socks5h, "
                               "with a host)")
        if url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise SettingError(f"{name}: socks proxies need `pip install httpx[socks]`")


def make_client(
    stall_timeout: float = 30.0, connect_timeout: float = 15.0, max_connections: int = 32
) -> httpx.Client:
    """A client for sources and transfers; `stall_timeout` is the longest wait for any byte. A proxy setting
    it cannot use is a SettingError naming the variable (see check_proxies)."""
    check_proxies()
    try:
        return httpx.Client(
            verify=ssl_context(),
            trust_env=True,
            timeout=httpx.Timeout(connect=connect_timeout, read=stall_timeout, write=stall_timeout, pool=None),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            follow_redirects=False,
        )
    except (httpx.InvalidURL, ValueError, ImportError) as e:  # what check_proxies does not foresee (NO_PROXY)
        raise SettingError(f"the proxy settings (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) cannot be used: "
                           f"{e}") from None
