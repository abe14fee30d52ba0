"""The one retry policy, table by table: what an answer means, how long to wait, when to give up, and when a
failing mirror hands a variant over to its own source."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from catalog.errors import (
    DiskFullError,
    DownloadError,
    IntegrityError,
    NotFoundError,
    SettingError,
    SourceError,
)
from catalog.schema import Source, Variant
from catalog.sources.http import classify_error
from catalog.sources.mirror import hands_over
from catalog.sources.retry import (
    CHANGED,
    DENIED,
    FATAL,
    NOT_FOUND,
    OK,
    RETRY,
    STALL,
    HttpSettings,
    Verdict,
    backoff_delay,
    classify,
    give_up,
    next_delay,
    parse_retry_after,
)

NOW = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()


@pytest.mark.parametrize(
    ("status", "headers", "kind", "after"),
    [
        (200, {}, OK, None),
        (206, {}, OK, None),
        (204, {}, FATAL, None),  # no body where one is needed
        (304, {}, FATAL, None),
        (404, {}, NOT_FOUND, None),
        (410, {}, NOT_FOUND, None),
        (401, {}, DENIED, None),
        (403, {}, DENIED, None),
        (416, {}, CHANGED, None),  # the range no longer fits: the file changed under us
        (400, {}, FATAL, None),
        (429, {}, RETRY, None),
        (429, {"Retry-After": "7"}, RETRY, 7.0),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, RETRY, 10.0),
        (503, {"Retry-After": "soon"}, RETRY, None),  # unreadable: our own backoff
        (500, {}, RETRY, None),
        (501, {}, RETRY, None),
    ],
)
def test_classify_says_what_an_answer_means(status: int, headers: dict, kind: str, after: float | None) -> None:
    verdict = classify(httpx.Response(status, headers=headers), now=NOW)
    assert (verdict.kind, verdict.status, verdict.after) == (kind, status, after)


SETTINGS = HttpSettings(retries=5, backoff_base=0.5, backoff_max=2.0, retry_after_max=60.0, stall_retries=2)
BUSY = Verdict(RETRY, 503, reason="HTTP 503")


@pytest.mark.parametrize(
    ("case", "verdict", "attempt", "stalls", "rand", "expected"),
    [
        ("first retry: full jitter below the base", BUSY, 1, 0, 0.5, 0.25),
        ("exponential", BUSY, 3, 0, 1.0, 2.0),
        ("capped at backoff_max", BUSY, 5, 0, 0.99, 1.98),
        ("jitter can be zero", BUSY, 2, 0, 0.0, 0.0),
        ("retries spent", BUSY, 6, 0, 0.5, None),
        ("Retry-After is obeyed instead of the backoff", Verdict(RETRY, 429, after=7.0), 1, 0, 0.5, 7.0),
        ("Retry-After at the cap is obeyed", Verdict(RETRY, 429, after=60.0), 1, 0, 0.5, 60.0),
        ("Retry-After above the cap gives up at once", Verdict(RETRY, 429, after=61.0), 1, 0, 0.5, None),
        ("Retry-After does not outlast the retries", Verdict(RETRY, 429, after=1.0), 6, 0, 0.5, None),
        ("a stall is retried at once", Verdict(STALL), 3, 1, 0.5, 0.0),
        ("a stall does not look at the retries", Verdict(STALL), 99, 2, 0.5, 0.0),
        ("stalls are capped", Verdict(STALL), 0, 3, 0.5, None),
        ("not found is final", Verdict(NOT_FOUND, 404), 1, 0, 0.5, None),
        ("denied is final", Verdict(DENIED, 403), 1, 0, 0.5, None),
        ("changed is the caller's to handle", Verdict(CHANGED, 416), 1, 0, 0.5, None),
        ("a certificate that does not verify is final", Verdict(FATAL), 1, 0, 0.5, None),
    ],
)
def test_next_delay(case: str, verdict: Verdict, attempt: int, stalls: int, rand: float, expected) -> None:
    delay = next_delay(verdict, attempt, stalls, SETTINGS, rand)
    assert delay == (pytest.approx(expected) if expected is not None else None), case


def test_zero_retries_means_one_try() -> None:
    assert next_delay(BUSY, 1, 0, HttpSettings(retries=0), 0.5) is None


@pytest.mark.parametrize(
    ("verdict", "attempt", "stalls", "message"),
    [
        (BUSY, 6, 0, "HTTP 503 (after 5 retries)"),
        (Verdict(RETRY, 503, after=3600.0, reason="HTTP 503"), 1, 0, "HTTP 503; the server asks to wait 3600 s"),
        (Verdict(STALL, reason="ReadTimeout"), 0, 3, "stalled 3 times; giving up"),
        (Verdict(FATAL, reason="ConnectError: CERTIFICATE_VERIFY_FAILED"), 1, 0,
         "ConnectError: CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_give_up_says_why(verdict: Verdict, attempt: int, stalls: int, message: str) -> None:
    assert give_up(verdict, attempt, stalls, SETTINGS) == message


def test_give_up_without_retries_does_not_count_them() -> None:
    assert give_up(BUSY, 1, 0, HttpSettings(retries=0)) == "HTTP 503"


@pytest.mark.parametrize(
    ("verdict", "failure", "error", "words"),
    [
        (Verdict(NOT_FOUND, 404, reason="not found (404)"), DownloadError, NotFoundError,
         "http://h/f: not found (404): no model"),
        (Verdict(NOT_FOUND, 410), SourceError, NotFoundError, "http://h/f: not found (410): no model"),
        (Verdict(DENIED, 403), DownloadError, SourceError, "http://h/f: access denied (HTTP 403); check the token"),
        (Verdict(FATAL, 400, reason="HTTP 400"), DownloadError, DownloadError, "http://h/f: HTTP 400"),
        (Verdict(CHANGED, 416, reason="HTTP 416"), SourceError, SourceError, "http://h/f: HTTP 416"),
    ],
)
def test_a_final_verdict_is_an_error_of_the_one_tree(verdict: Verdict, failure, error, words: str) -> None:
    raised = verdict.error("http://h/f", failure, what="no model")
    assert type(raised) is error and str(raised).startswith(words)


@pytest.mark.parametrize(
    ("error", "in_body", "kind", "words"),
    [
        (httpx.ReadTimeout("timed out"), True, STALL, "ReadTimeout"),  # the body stopped flowing
        (httpx.ReadTimeout("timed out"), False, RETRY, "ReadTimeout"),  # no answer in time: spends a retry
        (httpx.RemoteProtocolError("peer closed connection"), True, RETRY, "RemoteProtocolError"),
        (httpx.ConnectError("[Errno 111] Connection refused"), False, RETRY, "cannot reach h: this machine looks "
                                                                             "offline"),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"), False, FATAL, "TOOLKIT_CA_BUNDLE"),
    ],
)
def test_classify_error_says_what_a_failure_below_http_means(error, in_body: bool, kind: str, words: str) -> None:
    verdict = classify_error("https://h/f", error, in_body=in_body)
    assert verdict.kind == kind and words in verdict.reason


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.5, 0.25), (3, 1.0, 4.0), (10, 1.0, 30.0), (2, 0.0, 0.0), (10**6, 1.0, 30.0)],
)
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int, rand: float, expected: float) -> None:
    assert backoff_delay(attempt, 0.5, 30.0, rand) == pytest.approx(expected)


def test_backoff_with_a_huge_base_does_not_overflow() -> None:
    assert backoff_delay(1000, 1e300, 0.01, 1.0) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 0 ", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
     ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0)],  # a date in the past: no wait
)
def test_retry_after_seconds_and_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


MIRROR = "http://mirror:8765"


def variant(kind: str, base_url: str | None = None) -> Variant:
    source = {"huggingface": Source(type="huggingface", repo="org/tiny"),
              "mirror": Source(type="mirror", base_url=base_url),
              "local": Source(type="local", path="/models/tiny")}[kind]
    return Variant(id="tiny-cpu:1", device="cpu", vendor="any", execution_provider="CPUExecutionProvider",
                   format="onnx-genai", quantization="int4", source=source)


@pytest.mark.parametrize(
    ("case", "own", "error", "expected"),
    [
        ("the mirror does not have it", variant("huggingface"), NotFoundError("404"), True),
        ("the mirror cannot be reached", variant("huggingface"), SourceError("ConnectError"), True),
        ("the mirror fails mid-transfer", variant("huggingface"), DownloadError("HTTP 503 (after 4 retries)"), True),
        ("the origin contradicts the mirror", variant("huggingface"), IntegrityError("sha256"), True),
        ("a local variant", variant("local"), SourceError("refused"), True),
        ("a full disk is not the mirror's fault", variant("huggingface"), DiskFullError("full"), False),
        ("a bad setting is not the mirror's fault", variant("huggingface"), SettingError("HF_TOKEN"), False),
        ("not an error of the tree", variant("huggingface"), KeyError("x"), False),
        ("the variant's own source is this mirror", variant("mirror", MIRROR + "/"), SourceError("x"), False),
        ("the variant's own source is another mirror", variant("mirror", "http://other"), SourceError("x"), True),
    ],
)
def test_a_failing_mirror_hands_over_to_the_variants_own_source(case: str, own: Variant, error, expected) -> None:
    assert hands_over(own, MIRROR, error) is expected, case
