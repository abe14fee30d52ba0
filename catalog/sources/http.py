"""HTTP requests for sources and the engine: redirects followed by hand so credentials stay on their host.

httpx also strips Authorization on cross-origin redirects, but only that header; we drop every
header the source attached (tokens, cookies, custom keys) as soon as a redirect leaves the host.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpx

from catalog import jsonio
from catalog.errors import DownloadError, NotFoundError, SettingError, SourceError

API_RETRY_AFTER_MAX = 60.0


def _env_number(name: str, default: float) -> float:
    """A non-negative finite number from the environment, else `default` (the engine's own settings refuse
    bad values with a SettingError before any request; a library caller gets the default)."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def _backoff(backoff: float, attempt: int) -> float:
    """Full-jitter exponential backoff, at most TOOLKIT_DL_BACKOFF_MAX (the engine's backoff_max, 30 s)."""
    cap = _env_number("TOOLKIT_DL_BACKOFF_MAX", 30.0)
    return random.random() * min(cap, backoff * 2.0 ** min(attempt, 64))


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


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def get_json(
    client: httpx.Client,
    url: str,
    private_headers: dict[str, str] | None = None,
    what: str = "",
    retries: int | None = None,
    backoff: float | None = None,
) -> Any:
    """GET a JSON document, retrying 429/5xx (honouring Retry-After) and connection failures;
    404 -> NotFoundError, other failures -> SourceError naming the URL. Retries and backoff default to
    the engine's settings (TOOLKIT_DL_RETRIES, TOOLKIT_DL_BACKOFF_BASE; 4 and 0.5 s); each wait is at most
    TOOLKIT_DL_BACKOFF_MAX (30 s)."""
    retries = int(_env_number("TOOLKIT_DL_RETRIES", 4)) if retries is None else retries
    if _quick.get():
        retries = 0
    backoff = _env_number("TOOLKIT_DL_BACKOFF_BASE", 0.5) if backoff is None else backoff
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            r = send(
                client, "GET", url, headers={"Accept": "application/json"}, private_headers=private_headers
            )
        except httpx.HTTPError as e:
            if last or is_permanent(e):
                raise SourceError(f"{url}: {transport_problem(url, e)}") from e
            time.sleep(_backoff(backoff, attempt))
            continue
        if (r.status_code == 429 or r.status_code >= 500) and not last:
            wait = _retry_after(r)
            if wait is not None and wait > API_RETRY_AFTER_MAX:
                raise SourceError(f"{url}: HTTP {r.status_code}; the server asks to wait {wait:.0f} s")
            time.sleep(wait if wait is not None else _backoff(backoff, attempt))
            continue
        break
    if r.status_code == 404:
        raise NotFoundError(f"{url}: not found (404){': ' + what if what else ''}")
    if r.status_code in (401, 403):
        raise SourceError(
            f"{url}: access denied ({r.status_code}); "
            "check the token (e.g. HF_TOKEN) or the model's license gate"
        )
    if r.status_code >= 400:
        raise SourceError(f"{url}: HTTP {r.status_code}")
    try:
        return jsonio.loads(r.content)
    except ValueError as e:
        raise SourceError(f"{url}: the answer is not JSON ({e})") from e
