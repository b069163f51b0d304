"""AdaptivePace as a pure policy: unit rules, then minutes of simulated traffic against a
sliding-window server model (``_pace_model``) in milliseconds, with no sleeps."""

from __future__ import annotations

import math

import pytest
from _pace_model import SlidingWindow, drive, ideal_starts
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from batchsync._pacing import AdaptivePace, TenantRate, ThrottleKind, throttle_kind

LIMIT = ThrottleKind.LIMIT
BUSY = ThrottleKind.BUSY
COOLDOWN = ThrottleKind.COOLDOWN
SIMULATION = settings(max_examples=30, deadline=None)


def _steady(pace: AdaptivePace, *, rps: float, start: float, end: float) -> float:
    """Start requests at ``rps`` (or the pace's own spacing, if slower) from ``start``."""
    t = start
    while t < end:
        t = pace.ready_at(t)
        pace.on_start(t)
        t += 1.0 / rps
    return t


# -- rules ------------------------------------------------------------------------------------


def test_throttle_kind_tells_limit_busy_and_cooldown() -> None:
    """A 429 is the tenant's limit unless other rows succeeded meanwhile; a 503/504 is busy."""
    assert throttle_kind(429, others_succeeded=False) is LIMIT
    assert throttle_kind(429, others_succeeded=True) is COOLDOWN
    assert throttle_kind(503, others_succeeded=False) is BUSY
    assert throttle_kind(504, others_succeeded=True) is BUSY


def test_a_503_on_the_first_request_pauses_but_teaches_nothing() -> None:
    """The issue's collapse: a 503 + Retry-After 1 on a tenant's first request pauses it 1 s
    and leaves it at the ceiling (it used to start one request every 10 s after)."""
    pace = AdaptivePace(TenantRate(100, 20.0))
    pace.on_start(0.0)
    pace.on_throttled(0.02, 1.0, kind=BUSY, started_at=0.0)
    assert pace.is_paused(0.5)
    assert pace.ready_at(0.5) == pytest.approx(1.02)
    assert pace.rate_rps is None
    end = _steady(pace, rps=5.0, start=1.02, end=30.0)
    assert end < 30.5
    assert pace.rate_rps is None


def test_a_cooldown_429_pauses_but_teaches_nothing() -> None:
    """A per-object cooldown 429 holds the pause it announces and leaves the rate alone."""
    pace = AdaptivePace(TenantRate(100, 10.0))
    _steady(pace, rps=8.0, start=0.0, end=10.0)
    pace.on_throttled(10.0, 3.0, kind=COOLDOWN, started_at=9.99)
    assert pace.rate_rps is None
    assert pace.ready_at(10.0) == pytest.approx(13.0)


def test_the_measured_rate_counts_only_time_spent_sending() -> None:
    """After a long pause, 40 starts in 2 s of sending then a 429 (Retry-After 1) measure
    40 / 3 s, not 40 over the 20 s window (which would read a tenth of the room)."""
    pace = AdaptivePace(TenantRate(1000, 20.0))
    pace.on_start(0.0)
    pace.on_throttled(0.01, 15.0, kind=BUSY, started_at=0.0)
    _steady(pace, rps=20.0, start=15.01, end=17.0)
    pace.on_throttled(17.0, 1.0, kind=LIMIT, started_at=16.99)
    assert pace.rate_rps == pytest.approx(0.95 * 40 / 3.0, rel=0.05)


def test_the_announced_wait_is_part_of_the_measure() -> None:
    """A burst of 25 in 0.25 s answered "wait 4.75 s" is 25 per 5 s: a sliding window's room."""
    pace = AdaptivePace(TenantRate(500, 5.0))
    _steady(pace, rps=100.0, start=0.0, end=0.245)
    pace.on_throttled(0.255, 4.745, kind=LIMIT, started_at=0.25)
    assert pace.rate_rps == pytest.approx(0.95 * 5.0, rel=0.02)


def test_too_few_starts_teach_nothing() -> None:
    """Seven starts then a 429: the pause is the whole answer, no rate is learned."""
    pace = AdaptivePace(TenantRate(1000, 10.0))
    _steady(pace, rps=100.0, start=0.0, end=0.065)
    pace.on_throttled(0.07, 1.0, kind=LIMIT, started_at=0.069)
    assert pace.rate_rps is None
    assert pace.is_paused(0.5)


def test_one_cut_per_event() -> None:
    """429s for requests that started before the cut are the same event; the first 429 for
    a request started after it is a new one, even right after an increase."""
    pace = AdaptivePace(TenantRate(1000, 2.0))
    _steady(pace, rps=50.0, start=0.0, end=2.0)
    pace.on_throttled(2.0, 1.0, kind=LIMIT, started_at=1.99)
    first = pace.rate_rps
    assert first is not None
    for started in (1.992, 1.995, 1.999):  # in flight when the first 429 came
        pace.on_throttled(2.01, 1.0, kind=LIMIT, started_at=started)
    assert pace.rate_rps == first
    t = _steady(pace, rps=100.0, start=3.0, end=5.2)  # past one window: back near the target
    recovered = pace.rate_rps
    assert recovered is not None
    assert recovered > first
    pace.on_throttled(t, 1.0, kind=LIMIT, started_at=t - 0.01)
    assert pace.rate_rps is not None
    assert pace.rate_rps < recovered


def test_recovery_holds_just_under_the_limit_then_probes() -> None:
    """After a cut the rate is back to 98% of the rate that drew the 429 one window later,
    stays there while the hold lasts (20 Retry-Afters here), then probes upwards."""
    pace = AdaptivePace(TenantRate(100, 1.0))
    _steady(pace, rps=20.0, start=0.0, end=1.0)
    pace.on_throttled(1.0, 0.5, kind=LIMIT, started_at=0.999)
    bad = 20.0
    assert pace.rate_rps == pytest.approx(0.95 * bad)
    seen: list[tuple[float, float | None]] = []
    t = 1.5
    while t < 20.0:
        t = pace.ready_at(t)
        pace.on_start(t)
        seen.append((t, pace.rate_rps))
        t += 0.01  # the ceiling's own spacing
    held = [when for when, rate in seen if rate == pytest.approx(0.98 * bad)]
    assert held[0] < 2.6, "back just under the limit within a window"
    assert held[-1] >= 1.5 + 10.0 - 1.1, "held there for 20 Retry-Afters"
    assert max(r or math.inf for _, r in seen) > bad, "then probing beyond it"


def test_a_cut_never_goes_below_the_floor() -> None:
    """However low the measure, a cut keeps at least 2% of the ceiling."""
    pace = AdaptivePace(TenantRate(1000, 10.0))
    _steady(pace, rps=1.0, start=0.0, end=10.0)
    pace.on_throttled(10.0, 10.0, kind=LIMIT, started_at=9.99)
    assert pace.rate_rps == pytest.approx(0.02 * 100.0)


def test_a_barely_used_window_does_not_step() -> None:
    """A tenant starting far below its learned rate learns nothing: no growth while the
    room is barely used (Netflix's concurrency-limits rule)."""
    pace = AdaptivePace(TenantRate(1000, 2.0))
    _steady(pace, rps=50.0, start=0.0, end=2.0)
    pace.on_throttled(2.0, 1.0, kind=LIMIT, started_at=1.99)
    cut = pace.rate_rps
    assert cut is not None
    _steady(pace, rps=2.0, start=3.0, end=30.0)
    assert pace.rate_rps == cut


@given(
    events=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5.0),  # gap before the event
            st.sampled_from([None, LIMIT, BUSY, COOLDOWN]),  # None: a start
            st.floats(min_value=0.0, max_value=30.0),  # wait
            st.floats(min_value=0.0, max_value=2.0),  # how long before the answer it started
        ),
        max_size=200,
    ),
    n=st.integers(min_value=1, max_value=500),
    period=st.floats(min_value=0.5, max_value=60.0),
)
def test_waits_never_negative_and_only_a_limit_teaches(
    events: list[tuple[float, ThrottleKind | None, float, float]], n: int, period: float
) -> None:
    """Any sequence: the next start is never before now nor inside a pause; busy and
    cooldown answers never change the learned rate; a rate stays within (0, ceiling)."""
    pace = AdaptivePace(TenantRate(n, period))
    now = 0.0
    for gap, kind, wait, age in events:
        now += gap
        if kind is None:
            now = pace.ready_at(now)
            pace.on_start(now)
        else:
            before = pace.rate_rps
            pace.on_throttled(now, wait, kind=kind, started_at=now - age)
            assert pace.paused_until >= now + wait - 1e-9
            if kind is not LIMIT:
                assert pace.rate_rps == before
        ready = pace.ready_at(now)
        assert ready >= now
        assert ready >= pace.paused_until
        rate = pace.rate_rps
        assert rate is None or 0 < rate < n / period


# -- simulated traffic --------------------------------------------------------------------------


@SIMULATION
@given(
    n=st.integers(min_value=2, max_value=300),
    period=st.sampled_from([1.0, 2.0, 5.0, 10.0, 20.0]),
    status=st.sampled_from([429, 503]),
    wait=st.floats(min_value=0.1, max_value=5.0),
)
def test_a_single_spurious_throttle_is_forgotten_within_three_windows(
    n: int, period: float, status: int, wait: float
) -> None:
    """No limit at the server, one throttle at t = 0.1 s: three windows after its pause the
    pace is back to >= 90% of the ceiling (a 503 teaches nothing; a 429 after fewer than 8
    starts neither), and no start fell inside the pause."""
    ceiling = TenantRate(n, period)
    _, every_s = ceiling.limiter_params()
    if status == 429:
        assume(1 + math.floor(0.1 / every_s) < 8)
    pace = AdaptivePace(ceiling)
    server = SlidingWindow(limit=lambda _: 10**9, window_s=period)
    out = drive(
        pace,
        server,
        ceiling=ceiling,
        duration_s=0.2 + wait + 4 * period,
        concurrency=64,
        latency_s=0.05,
        inject={0.1: (status, wait)},
    )
    ceiling_rps = n / period
    assert out.rate_at(0.1 + wait + 3 * period, ceiling_rps) >= 0.9 * ceiling_rps
    assert out.inside_pause == 0
    assert out.negative_waits == 0


@pytest.mark.parametrize(("ceiling", "wait"), [((500, 2.0), 1.0), ((1000, 10.0), 5.0)])
def test_a_wrong_lesson_is_forgotten(ceiling: tuple[int, float], wait: float) -> None:
    """A spurious 429 after many starts teaches a wrong limit; with no limit at the server
    the pace is back at the ceiling after the hold (20 Retry-Afters) and a few probes."""
    rate = TenantRate(*ceiling)
    pace = AdaptivePace(rate)
    server = SlidingWindow(limit=lambda _: 10**9, window_s=rate.period_s)
    hold_s = max(2 * rate.period_s, 20 * wait)
    out = drive(
        pace,
        server,
        ceiling=rate,
        duration_s=hold_s + 8 * rate.period_s,
        concurrency=64,
        latency_s=0.05,
        inject={0.5: (429, wait)},
    )
    learned = [t for t, r in out.starts if r is not None]
    assert learned, "the 429 must have taught a (wrong) rate"
    assert out.starts[-1][1] is None
    assert out.throttled == 1


@pytest.mark.parametrize("back_at", [40.0, 41.0, 43.0, 47.0])
def test_a_room_that_shrank_is_tried_again_first(back_at: float) -> None:
    """50 per 2 s, halved from 20 s to ``back_at``: the probes jump straight back to 98% of
    the old room (not x1.25 a window), so within 3 windows of its return the pace has it."""

    def limit(t: float) -> int:
        return 25 if 20.0 <= t < back_at else 50

    ceiling = TenantRate(1000, 2.0)
    server = SlidingWindow(limit=limit, window_s=2.0, whole_seconds=False)
    out = drive(AdaptivePace(ceiling), server, ceiling=ceiling, duration_s=back_at + 10)
    assert out.max_rate_between(back_at, back_at + 6.0, 500.0) == pytest.approx(0.98 * 25)
    assert out.inside_pause == 0


@SIMULATION
@given(
    n=st.integers(min_value=20, max_value=200),
    window=st.sampled_from([1.0, 2.0, 5.0, 10.0, 20.0]),
    factor=st.floats(min_value=1.5, max_value=20.0),
    whole_seconds=st.booleans(),
    concurrency=st.integers(min_value=4, max_value=32),
    latency=st.floats(min_value=0.005, max_value=0.2),
)
def test_an_unknown_fixed_limit_is_used_at_90_percent(
    n: int, window: float, factor: float, whole_seconds: bool, concurrency: int, latency: float
) -> None:
    """A ceiling 1.5-20x above a fixed limit, 40 windows: >= 90% of the limit's throughput,
    fewer than 5% of starts answered 429, none inside an announced pause."""
    assume(concurrency / latency >= 1.5 * n / window)  # the client can exceed the limit
    assume(not (whole_seconds and window < 2))  # Retry-After 1 s as long as the window
    ceiling = TenantRate(max(2, int(n * factor)), window)
    server = SlidingWindow(limit=lambda _: n, window_s=window, whole_seconds=whole_seconds)
    duration = 40 * window
    out = drive(
        AdaptivePace(ceiling),
        server,
        ceiling=ceiling,
        duration_s=duration,
        concurrency=concurrency,
        latency_s=latency,
    )
    assert len(server.accepted) >= 0.9 * ideal_starts(lambda _: n, window, 0.0, duration)
    assert out.throttled < 0.05 * len(out.starts)
    assert out.inside_pause == 0
    assert out.negative_waits == 0


@SIMULATION
@given(
    n=st.integers(min_value=20, max_value=200),
    window=st.sampled_from([2.0, 5.0, 10.0, 20.0]),
    factor=st.floats(min_value=1.5, max_value=20.0),
    whole_seconds=st.booleans(),
    halves_at=st.floats(min_value=10.0, max_value=20.0),  # in windows
    halved_for=st.floats(min_value=10.0, max_value=20.0),
)
def test_a_limit_that_halves_and_doubles_back_is_tracked(
    n: int,
    window: float,
    factor: float,
    whole_seconds: bool,
    halves_at: float,
    halved_for: float,
) -> None:
    """The limit halves mid-run (another app spends the shared budget), then doubles back:
    two windows after the drop, >= 85% of the new limit with few 429s (under 5% of starts,
    or 3 plus one per two windows); within 5 windows of the return the pace is back to
    >= 85% of the old limit (where a failed probe is cheap: an exact Retry-After, or whole
    seconds in a window of 10 s or more)."""
    t1 = halves_at * window
    t2 = t1 + halved_for * window

    def limit(t: float) -> int:
        return n // 2 if t1 <= t < t2 else n

    ceiling = TenantRate(max(2, int(n * factor)), window)
    server = SlidingWindow(limit=limit, window_s=window, whole_seconds=whole_seconds)
    out = drive(
        AdaptivePace(ceiling),
        server,
        ceiling=ceiling,
        duration_s=t2 + 6 * window,
        concurrency=32,
        latency_s=0.05,
    )
    halved = server.accepted_between(t1 + 2 * window, t2)
    assert halved >= 0.85 * ideal_starts(limit, window, t1 + 2 * window, t2)
    starts_halved = sum(1 for t, _ in out.starts if t1 <= t < t2)
    throttled_halved = sum(1 for t in out.throttled_at if t1 <= t < t2)
    assert throttled_halved <= max(0.05 * starts_halved, 3 + halved_for / 2)
    if not whole_seconds or window >= 10:
        ceiling_rps = ceiling.max_requests / window
        back = out.max_rate_between(t2, t2 + 5 * window, ceiling_rps)
        assert back >= 0.85 * n / window
    assert out.inside_pause == 0
    assert out.negative_waits == 0
