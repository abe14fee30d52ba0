"""What an HTTP answer means, and how long to wait before asking again: pure decisions, one copy for every request.

`classify(response)` turns a status into a Verdict; `next_delay(verdict, attempt, stalls, settings)` says how
long to wait before the next try, or None to give up (`give_up` then says why). The API reader
(`catalog.sources.http.get_json`), the size probe and the download engine's transfers all decide through
here, with the settings of `HttpSettings` (the HTTP part of the engine's DownloadConfig, TOOLKIT_DL_*).
No I/O and no httpx import, so the rules are table-tested (tests/catalog/test_retry.py) and the CLI's start
stays light.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from catalog.errors import NotFoundError, SourceError, ToolkitError

# The kinds of verdict: use the answer; try again (after a wait); the body stopped flowing (try again at once,
# without spending a retry); not there; refused; the file changed under us (416); anything else.
OK, RETRY, STALL, NOT_FOUND, DENIED, CHANGED, FATAL = "ok", "retry", "stall", "not_found", "denied", "changed", "fatal"
TOKEN_HINT = "check the token (e.g. HF_TOKEN) or the model's license gate"


@dataclass(frozen=True)
class HttpSettings:
    """How every request retries and waits; DownloadConfig extends it, so TOOLKIT_DL_<FIELD> sets each one."""

    retries: int = 6  # per request (per part for a transfer, reset whenever the part made progress)
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0  # a longer Retry-After fails at once with the server's figure
    stall_timeout: float = 30.0  # no byte for this long: the connection is dropped and retried
    stall_retries: int = 20  # stalls do not spend retries, but are capped
    connect_timeout: float = 15.0


@dataclass(frozen=True)
class Verdict:
    """What an answer (or a failure below HTTP) means: a kind, the status, the server's wait, and a reason."""

    kind: str
    status: int | None = None
    after: float | None = None  # Retry-After in seconds
    reason: str = ""

    def error(
        self, shown: str, failure: type[ToolkitError] = SourceError, what: str = "", denied: str = TOKEN_HINT
    ) -> ToolkitError:
        """The error for an answer that is not retried (again): NotFoundError, a SourceError for a refusal,
        else `failure` (SourceError while resolving, DownloadError while transferring). `shown` names the
        request in the message (a URL without secrets); `what` says what is missing, `denied` what to check."""
        if self.kind == NOT_FOUND:
            return NotFoundError(f"{shown}: not found ({self.status})" + (f": {what}" if what else ""))
        if self.kind == DENIED:
            return SourceError(f"{shown}: access denied (HTTP {self.status}); {denied}")
        return failure(f"{shown}: {self.reason}")


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def classify(response: _Response, now: float | None = None) -> Verdict:
    """The verdict on a final (not redirected) answer: 200 and 206 are OK; 404/410 NOT_FOUND; 401/403
    DENIED; 416 CHANGED; 429 and 5xx RETRY with the server's Retry-After; anything else FATAL."""
    code = response.status_code
    if code in (200, 206):
        return Verdict(OK, code)
    if code in (404, 410):
        return Verdict(NOT_FOUND, code, reason=f"not found ({code})")
    if code in (401, 403):
        return Verdict(DENIED, code, reason=f"access denied (HTTP {code})")
    if code == 416:
        return Verdict(CHANGED, code, reason=f"HTTP {code}")
    if code == 429 or code >= 500:
        return Verdict(RETRY, code, parse_retry_after(response.headers.get("retry-after"), now), f"HTTP {code}")
    return Verdict(FATAL, code, reason=f"HTTP {code}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils  # 8 ms on the start-up path of every command; only a dated Retry-After needs it

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]; `rand` in [0, 1).
    The exponent stops at 64, so a huge base or retry count cannot overflow (the cap applies long before)."""
    return rand * min(cap, base * 2.0 ** min(attempt, 64))


def next_delay(
    verdict: Verdict, attempt: int, stalls: int, settings: HttpSettings, rand: float | None = None
) -> float | None:
    """Seconds to wait before trying again, or None to give up. `attempt` counts the failures that spent a
    retry (this one included), `stalls` the stalls; a stall is retried at once, up to `stall_retries`; a
    RETRY waits the server's Retry-After (giving up when it is above `retry_after_max`) or the backoff,
    up to `retries` times; any other verdict is final."""
    if verdict.kind == STALL:
        return 0.0 if stalls <= settings.stall_retries else None
    if verdict.kind != RETRY or attempt > settings.retries:
        return None
    if verdict.after is not None:
        return verdict.after if verdict.after <= settings.retry_after_max else None
    rand = random.random() if rand is None else rand
    return backoff_delay(attempt - 1, settings.backoff_base, settings.backoff_max, rand)


def give_up(verdict: Verdict, attempt: int, stalls: int, settings: HttpSettings) -> str:
    """Why `next_delay` said None, for the message: too many stalls, retries spent, or a wait too long."""
    if verdict.kind == STALL:
        return f"stalled {stalls} times; giving up"
    if verdict.kind != RETRY:
        return verdict.reason
    if attempt > settings.retries:
        return f"{verdict.reason} (after {settings.retries} retries)" if settings.retries else verdict.reason
    return f"{verdict.reason}; the server asks to wait {verdict.after:.0f} s"
