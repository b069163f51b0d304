"""Pure pacing policy: Retry-After parsing, backoff, retry decisions, adaptive pace."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsync._errors import ErrorKind
from batchsync._pacing import (
    AdaptivePace,
    Decision,
    GiveUp,
    Refresh,
    Retry,
    RetryPolicy,
    Success,
    TenantRate,
    Tries,
    assess,
    backoff_s,
    parse_retry_after,
    token_retry_wait,
)

NOW = 1_800_000_000.0
POLICY = RetryPolicy(max_attempts=3, max_throttled=4, max_retry_after_s=60.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("10", 10.0),
        ("2.128", 2.128),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
    ],
)
def test_parse_retry_after_forms(header: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds (integer or fractional) or as an HTTP date."""
    assert parse_retry_after(header, now_epoch=NOW) == expected


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_date_round_trips(seconds: int) -> None:
    """An HTTP-date Retry-After converts back to the seconds it was made from."""
    header = email.utils.formatdate(NOW + seconds, usegmt=True)
    assert parse_retry_after(header, now_epoch=NOW) == pytest.approx(seconds, abs=1.0)


@given(st.text(max_size=40))
def test_retry_after_never_negative_or_raises(header: str) -> None:
    """Any header text yields None or a finite wait >= 0."""
    value = parse_retry_after(header, now_epoch=NOW)
    assert value is None or value >= 0


@given(
    attempt=st.integers(min_value=-3, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=600),
    draw=st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_bounds(attempt: int, base: float, cap: float, draw: float) -> None:
    """A backoff wait is never negative and never exceeds its cap."""
    wait = backoff_s(attempt, base_s=base, cap_s=cap, draw=draw)
    assert 0 <= wait <= cap


def test_backoff_grows_exponentially() -> None:
    """The ceiling doubles per attempt until the cap (draw near 1 shows the ceiling)."""
    waits = [backoff_s(n, base_s=0.5, cap_s=4, draw=0.999999) for n in range(1, 6)]
    assert waits == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0], rel=1e-5)


def _assess(
    status: int | None,
    *,
    failures: int = 0,
    throttled: int = 0,
    refreshed: bool = False,
    **kw: Any,
) -> Decision:
    """``assess`` with the row's tries *before* this answer."""
    decision, _ = assess(
        POLICY,
        Tries(failures=failures, throttled=throttled, refreshed=refreshed),
        status=status,
        draw=kw.pop("draw", 0.5),
        **kw,
    )
    return decision


def test_success() -> None:
    """An answer the action accepts ends the row ok."""
    assert _assess(204, ok=True) == Success()


def test_first_401_refreshes_then_fails_auth() -> None:
    """A first 401 asks for a fresh token without costing a try; a second is an auth failure."""
    decision, tries = assess(POLICY, Tries(), status=401, draw=0.5, message="expired")
    assert decision == Refresh()
    assert tries == Tries(refreshed=True)
    decision, tries = assess(POLICY, tries, status=401, draw=0.5, message="expired")
    assert isinstance(decision, GiveUp)
    assert decision.error.kind is ErrorKind.AUTH
    assert "even after a refresh: expired" in decision.error.message
    assert tries.failures == 1


def test_assess_counts_tries() -> None:
    """Throttled answers and other failures are counted apart; success counts nothing."""
    _, tries = assess(POLICY, Tries(), status=429, retry_after_s=1.0, draw=0.5)
    _, tries = assess(POLICY, tries, status=500, draw=0.5)
    _, tries = assess(POLICY, tries, status=503, retry_after_s=2.0, draw=0.5)
    _, tries = assess(POLICY, tries, status=204, ok=True, draw=0.5)
    assert tries == Tries(failures=1, throttled=2)


def test_429_with_retry_after_pauses_tenant() -> None:
    """429 with Retry-After waits exactly that long and pauses the whole tenant."""
    d = _assess(429, retry_after_s=12.0)
    assert d == Retry(wait_s=12.0, pause_tenant=True, throttled=True)


def test_429_without_retry_after_backs_off() -> None:
    """429 without Retry-After (Intune's habit) still pauses the tenant, with a positive backoff."""
    d = _assess(429, throttled=1, draw=0.0)
    assert isinstance(d, Retry)
    assert d.pause_tenant
    assert d.wait_s > 0


def test_503_with_retry_after_is_throttling() -> None:
    """503 carrying Retry-After counts as throttled, not as a failed attempt."""
    d = _assess(503, retry_after_s=3.0)
    assert d == Retry(wait_s=3.0, pause_tenant=True, throttled=True)


def test_huge_retry_after_gives_up() -> None:
    """A Retry-After beyond --max-retry-after ends the row throttled instead of sleeping."""
    d = _assess(429, retry_after_s=3600.0)
    assert isinstance(d, GiveUp)
    assert d.error.kind is ErrorKind.THROTTLED
    assert "3600" in d.error.message


def test_too_many_throttled_answers_give_up() -> None:
    """More throttled answers than --max-throttled end the row throttled, the pause kept."""
    d = _assess(429, retry_after_s=1.0, throttled=4)
    assert isinstance(d, GiveUp)
    assert d.error.kind is ErrorKind.THROTTLED
    assert d.pause_s == 1.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_transient_status_retries_row_only(status: int) -> None:
    """5xx without Retry-After backs off this row alone."""
    d = _assess(status)
    assert isinstance(d, Retry)
    assert not d.pause_tenant


@pytest.mark.parametrize(
    ("failure", "status", "kind"),
    [
        (ErrorKind.NETWORK, None, ErrorKind.NETWORK),
        (ErrorKind.TIMEOUT, None, ErrorKind.TIMEOUT),
        (None, 500, ErrorKind.HTTP),
    ],
)
def test_max_attempts_bounds_failures(
    failure: ErrorKind | None, status: int | None, kind: ErrorKind
) -> None:
    """The --max-attempts-th failure gives up with the failure's kind."""
    assert isinstance(_assess(status, failure=failure, failures=1, draw=0.1), Retry)
    d = _assess(status, failure=failure, failures=2, draw=0.1)
    assert isinstance(d, GiveUp)
    assert d.error.kind is kind


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_permanent_status_gives_up_at_once(status: int) -> None:
    """Client errors are not retried; the Graph code is kept."""
    d = _assess(status, code="Forbidden")
    assert isinstance(d, GiveUp)
    assert d.error.kind is ErrorKind.HTTP
    assert d.error.code == "Forbidden"


@given(
    status=st.sampled_from([None, 200, 204, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504]),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=10_000)),
    failures=st.integers(min_value=0, max_value=10),
    throttled=st.integers(min_value=0, max_value=40),
    refreshed=st.booleans(),
    draw=st.floats(min_value=0, max_value=0.999),
)
def test_waits_are_bounded(
    status: int | None,
    retry_after: float | None,
    failures: int,
    throttled: int,
    refreshed: bool,
    draw: float,
) -> None:
    """Every retry waits >= 0 and never longer than --max-retry-after; so does a kept pause."""
    d = _assess(
        status,
        ok=status in (200, 204),
        failure=ErrorKind.NETWORK if status is None else None,
        retry_after_s=retry_after,
        failures=failures,
        throttled=throttled,
        refreshed=refreshed,
        draw=draw,
    )
    if isinstance(d, Retry):
        assert 0 <= d.wait_s <= POLICY.max_retry_after_s
    if isinstance(d, GiveUp) and d.pause_s is not None:
        assert d.pause_s == retry_after  # the announced pause is kept as announced
        assert d.pause_s >= 0


@given(
    attempt=st.integers(min_value=1, max_value=50),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    elapsed=st.floats(min_value=0, max_value=100),
    draw=st.floats(min_value=0, max_value=0.999),
)
def test_token_retry_wait_bounds(
    attempt: int, retry_after: float | None, elapsed: float, draw: float
) -> None:
    """A token retry waits at least Retry-After and half the ceiling, never past the budget."""
    wait = token_retry_wait(
        attempt,
        retry_after_s=retry_after,
        elapsed_s=elapsed,
        base_s=0.5,
        cap_s=8.0,
        total_s=60.0,
        draw=draw,
    )
    if wait is None:
        return
    assert elapsed + wait <= 60.0
    assert wait >= min(8.0, 0.5 * 2 ** (attempt - 1)) / 2
    if retry_after is not None:
        assert wait >= retry_after


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/20", TenantRate(100, 20.0)),
        ("5 / 1.5", TenantRate(5, 1.5)),
        ("50/2s", TenantRate(50, 2.0)),
    ],
)
def test_tenant_rate_parse(text: str, rate: TenantRate) -> None:
    """--tenant-rate reads N/SECONDS."""
    assert TenantRate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "100", "0/20", "10/0", "a/b", "-1/5"])
def test_tenant_rate_rejects(text: str) -> None:
    """A malformed --tenant-rate is refused with the expected form in the message."""
    with pytest.raises(ValueError, match="N/SECONDS"):
        TenantRate.parse(text)


@given(n=st.integers(min_value=1, max_value=500), period=st.floats(min_value=0.1, max_value=100))
def test_limiter_params_never_exceed_window(n: int, period: float) -> None:
    """The leaky bucket admits at most N starts in any window (capacity + drain x period <= N)."""
    capacity, time_period = TenantRate(n, period).limiter_params()
    drained_per_window = capacity / time_period * period
    assert capacity + drained_per_window <= n + 1e-6 or n == 1


def test_adaptive_pace_pauses_and_learns() -> None:
    """A 429 pauses the tenant and then spaces starts below the rate that drew it."""
    pace = AdaptivePace(TenantRate(100, 10.0), window_s=10.0)
    now = 0.0
    for _ in range(40):  # 4 req/s, unthrottled: no spacing
        assert pace.ready_at(now) == now
        pace.on_start(now)
        now += 0.25
    pace.on_throttled(now, wait_s=2.0)
    assert pace.is_paused(now + 1.0)
    assert pace.ready_at(now) == pytest.approx(now + 2.0)
    assert pace.rate_rps is not None
    assert pace.rate_rps < 4.0
    t = now + 2.0
    pace.on_start(t)
    assert pace.ready_at(t) > t  # spaced


def test_adaptive_pace_recovers() -> None:
    """Without further 429s the learned rate climbs back to the ceiling and spacing ends."""
    pace = AdaptivePace(TenantRate(10, 1.0), window_s=1.0)
    pace.on_start(0.0)
    pace.on_throttled(0.1, wait_s=0.1)
    t = 0.2
    for _ in range(10_000):
        t = pace.ready_at(t)
        pace.on_start(t)
        if pace.rate_rps is None:
            break
    assert pace.rate_rps is None
