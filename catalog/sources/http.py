"""The one HTTP layer: the client every request uses, redirects followed by hand, requests retried by one policy.

`make_client()` builds the client for sources, transfers and mirror checks alike: proxies from the environment
(httpx's `trust_env`: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY; one it cannot use is a SettingError naming
the variable, socks needs the `httpx[socks]` extra), a CA bundle from TOOLKIT_CA_BUNDLE, else SSL_CERT_FILE,
else REQUESTS_CA_BUNDLE (file or folder), else the system store; timeouts and retries from HttpSettings (the
engine's DownloadConfig); user agent `toolkit/<version>`. `send()` follows redirects by hand: httpx strips
Authorization on cross-origin redirects, but only that header; we drop every header the source attached
(tokens, cookies, custom keys) as soon as a redirect leaves the host. `request()` and `get_json()` retry as
`catalog.sources.retry` decides; the download engine's transfers use the same decisions in their own loop.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.request import getproxies

import httpx

from catalog import jsonio
from catalog.errors import DownloadError, SettingError, SourceError, ToolkitError
from catalog.sources.retry import (
    FATAL,
    OK,
    RETRY,
    STALL,
    TOKEN_HINT,
    HttpSettings,
    Verdict,
    classify,
    give_up,
    next_delay,
)

CA_ENV_VARS = ("TOOLKIT_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
PROXY_SCHEMES = ("http", "https", "all")  # the proxies httpx takes from the environment (see get_environment_proxies)

MAX_REDIRECTS = 10
QUICK_TIMEOUT_S = 5.0
# Inside `quick_checks()`: API requests try once, with a short timeout (a best-effort look at another source).
_quick: ContextVar[bool] = ContextVar("toolkit_quick_checks", default=False)


@contextlib.contextmanager
def quick_checks() -> Iterator[None]:
    """API requests made in this block try once with a 5 s timeout: for checks whose failure only adds a note."""
    token = _quick.set(True)
    try:
        yield
    finally:
        _quick.reset(token)


def url_problem(value: str) -> str | None:
    """Why `value` cannot be a base URL (http or https, with a host), or None if it can."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as e:
        return f"not a URL ({e})"
    if url.scheme not in ("http", "https") or not url.host:
        return "expected an http:// or https:// URL with a host, e.g. http://HOST:PORT"
    return None


def setting_url(value: str, setting: str) -> str:
    """A base URL from a setting (HF_ENDPOINT, TOOLKIT_MIRROR, --mirror), without its trailing slash; a
    SettingError naming the setting if it is not an http or https URL with a host."""
    problem = url_problem(value)
    if problem:
        shown = repr(value if len(value) <= 100 else value[:100] + "...")
        raise SettingError(f"{setting} {shown}: {problem}" if setting.startswith("-") else
                           f"{setting}={shown}: {problem}")
    return value.rstrip("/")


class Client(httpx.Client):
    """An httpx client that carries the HttpSettings it was made with, so every request made through it retries
    and waits by them (see `settings_of`)."""

    def __init__(self, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings


def settings_of(client: httpx.Client) -> HttpSettings:
    """The settings `client` was made with; the defaults for a client made elsewhere (a library caller's own)."""
    return client.settings if isinstance(client, Client) else HttpSettings()


@functools.cache
def user_agent() -> str:
    """`toolkit/<version>` of the installed package (read once, on the first client)."""
    try:
        return f"toolkit/{importlib.metadata.version('toolkit')}"
    except importlib.metadata.PackageNotFoundError:
        return "toolkit"


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


def make_client(settings: HttpSettings | None = None, connections: int = 32) -> Client:
    """The client for every request: sources, transfers, mirror checks. `settings.stall_timeout` is the longest
    wait for any byte, `connections` the pool size. A proxy setting it cannot use is a SettingError naming the
    variable (see check_proxies)."""
    settings = settings or HttpSettings()
    check_proxies()
    stall = settings.stall_timeout
    try:
        return Client(
            settings,
            verify=ssl_context(),
            trust_env=True,
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=stall, write=stall, pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": user_agent(), "Accept-Encoding": "identity"},
            follow_redirects=False,
        )
    except (httpx.InvalidURL, ValueError, ImportError) as e:  # what check_proxies does not foresee (NO_PROXY)
        raise SettingError(f"the proxy settings (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) cannot be used: "
                           f"{e}") from None


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(str(url))
    return (u.scheme, u.host, u.port)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    private_headers: dict[str, str] | None = None,
    stream: bool = False,
) -> httpx.Response:
    """Send a request, following redirects; `private_headers` go only to the first URL's origin."""
    home = origin(url)
    current = httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        h = dict(headers or {})
        if private_headers and origin(current) == home:
            h.update(private_headers)
        quick = {"timeout": QUICK_TIMEOUT_S} if _quick.get() else {}
        request = client.build_request(method, current, headers=h, **quick)
        response = client.send(request, stream=stream, follow_redirects=False)
        if not response.is_redirect:
            return response
        location = response.headers.get("location")
        response.close()
        if not location:
            raise DownloadError(f"{current}: redirect without a Location header")
        current = current.join(location)
    raise DownloadError(f"{url}: more than {MAX_REDIRECTS} redirects")


def is_permanent(error: BaseException) -> bool:
    """A TLS certificate that does not verify will not verify on retry either."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


SECRET_PARAMS = ("sig", "signature", "x-amz-signature", "x-goog-signature", "token", "access_token", "code", "key")


def public_url(url: str) -> str:
    """The URL for a message: a query that carries a signature or token (an Azure SAS, a presigned URL) is
    replaced by `?<signed query hidden>`, so errors and logs never hold a credential."""
    base, sep, query = str(url).partition("?")
    if not sep:
        return base
    names = {part.split("=", 1)[0].lower() for part in query.split("&")}
    return f"{base}?<signed query hidden>" if names & set(SECRET_PARAMS) else str(url)


def transport_problem(url: str, error: BaseException) -> str:
    """What went wrong below HTTP, and what to do: a private CA for certificates, a mirror when offline."""
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if is_permanent(error):
        return f"{detail} (set TOOLKIT_CA_BUNDLE for a private CA)"
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        host = httpx.URL(url).host or url
        return (f"{detail}; cannot reach {host}: this machine looks offline. To download from a toolkit mirror on "
                "your network, set TOOLKIT_MIRROR=http://HOST:PORT (`toolkit mirror serve` on a machine that has "
                "the model) or pass --mirror")
    return detail


def classify_error(url: str, error: httpx.HTTPError, in_body: bool = False) -> Verdict:
    """The verdict on a failure below HTTP: a certificate that does not verify is FATAL; a read timeout once
    the body was flowing is a STALL (retried without spending a retry); any other failure, a server that
    does not answer in time included, is a RETRY."""
    reason = transport_problem(url, error)
    if is_permanent(error):
        return Verdict(FATAL, reason=reason)
    if in_body and isinstance(error, httpx.ReadTimeout):
        return Verdict(STALL, reason=reason)
    return Verdict(RETRY, reason=reason)


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    private_headers: dict[str, str] | None = None,
    shown: str | None = None,
    what: str = "",
    denied: str = TOKEN_HINT,
    failure: type[ToolkitError] = SourceError,
    retries: int | None = None,
) -> httpx.Response:
    """Send a request (see `send`), retrying as `next_delay` decides with the client's settings (once only
    inside `quick_checks()`), and return its 200 or 206 answer. Otherwise NotFoundError, SourceError for a
    refusal, or `failure` (retries spent, a wait too long, another status), naming `shown` (default: the URL)."""
    settings = settings_of(client)
    retries = 0 if _quick.get() else retries
    if retries is not None:
        settings = replace(settings, retries=retries)
    shown = shown or public_url(url)
    attempt = 0
    while True:  # the whole answer is read inside send(), so no STALL here: a read timeout spends a retry
        attempt += 1
        cause: BaseException | None = None
        try:
            response = send(client, method, url, headers, private_headers)
            verdict = classify(response)
        except httpx.HTTPError as e:
            cause, verdict = e, classify_error(url, e)
        if verdict.kind == OK:
            return response
        delay = next_delay(verdict, attempt, 0, settings)
        if delay is None:
            if verdict.kind == RETRY:
                raise failure(f"{shown}: {give_up(verdict, attempt, 0, settings)}") from cause
            raise verdict.error(shown, failure, what, denied) from cause
        time.sleep(delay)


def get_json(
    client: httpx.Client,
    url: str,
    private_headers: dict[str, str] | None = None,
    what: str = "",
    retries: int | None = None,
) -> Any:
    """GET a JSON document through `request` (retries from the client's settings unless `retries` is given);
    404 -> NotFoundError saying `what`, other failures -> SourceError naming the URL."""
    r = request(client, "GET", url, headers={"Accept": "application/json"}, private_headers=private_headers,
                what=what, retries=retries)
    try:
        return jsonio.loads(r.content)
    except ValueError as e:
        raise SourceError(f"{url}: the answer is not JSON ({e})") from e
