"""Pure pacing policy: Retry-After, backoff, retry decisions and tenant pauses.

Rules of this module:

1. Every retry decision lives here (a row's attempts in ``assess``, a token acquisition's in
   ``token_retry_wait``, a tenant's pace in ``AdaptivePace``); nothing here sleeps, reads a
   clock or does I/O. Callers pass ``now`` (seconds on their own monotonic clock), elapsed
   times and random draws in ``[0, 1)``.
2. A throttled answer (429, or 503/504 carrying Retry-After) pauses the whole tenant and is
   bounded by ``max_throttled``; any other retryable failure backs off that row alone and is
   bounded by ``max_attempts``. A wait longer than ``max_retry_after_s`` is never slept: the
   row gives up with kind ``throttled``.
3. Waits are never negative and never exceed their caps.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections import deque

from ._errors import ErrorKind, ReportError

__all__ = [
    "AdaptivePace",
    "Decision",
    "GiveUp",
    "Refresh",
    "Retry",
    "RetryPolicy",
    "Success",
    "TenantRate",
    "ThrottleKind",
    "Tries",
    "assess",
    "backoff_s",
    "is_throttle",
    "parse_retry_after",
    "throttle_kind",
    "token_retry_wait",
]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(?:s|sec|seconds)?\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class TenantRate:
    """At most ``max_requests`` request starts per tenant in any window of ``period_s``."""

    max_requests: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> TenantRate:
        """Parse ``N/SECONDS`` (e.g. ``100/20``); raises ValueError with a usable message."""
        m = _RATE.match(text)
        if not m or int(m.group(1)) < 1 or float(m.group(2)) <= 0:
            raise ValueError(f"{text!r} is not N/SECONDS with N >= 1 and SECONDS > 0 (e.g. 100/20)")
        return cls(int(m.group(1)), float(m.group(2)))

    def limiter_params(self) -> tuple[float, float]:
        """``(max_rate, time_period)`` for an ``AsyncLimiter`` that keeps this promise.

        A leaky bucket of capacity ``c`` draining at ``r`` per second admits ``c + r * T``
        starts in a window ``T``; aiolimiter's natural ``(N, T)`` would admit ``2N``. A
        capacity of one request draining every ``T / (N - 1)`` seconds admits exactly ``N``
        per window and keeps the long-run rate at ``(N - 1) / T``.
        """
        if self.max_requests <= 1:
            return 1.0, self.period_s
        return 1.0, self.period_s / (self.max_requests - 1)

    def __str__(self) -> str:
        return f"{self.max_requests}/{self.period_s:g}"


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on one row's tries (the contract's ``--max-*`` options)."""

    max_attempts: int = 5
    max_throttled: int = 30
    max_retry_after_s: float = 300.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unreadable.

    Accepts delta-seconds, including the fractional form older Graph pages show (``2.128``),
    and an HTTP date (converted against ``now_epoch``, seconds since the Unix epoch).
    Never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        import email.utils  # HTTP dates are rare: not every start pays for the module

        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_epoch
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_s(attempt: int, *, base_s: float, cap_s: float, draw: float) -> float:
    """Full-jitter exponential backoff: ``draw * min(cap_s, base_s * 2 ** (attempt - 1))``.

    ``attempt`` counts from 1; ``draw`` is a uniform random number in ``[0, 1)``. Full
    jitter spreads the retries of many rows that failed together (AWS architecture blog).
    """
    return max(0.0, min(cap_s, draw * _ceiling_s(attempt, base_s, cap_s)))


def token_retry_wait(
    attempt: int,
    *,
    retry_after_s: float | None,
    elapsed_s: float,
    base_s: float,
    cap_s: float,
    total_s: float,
    draw: float,
) -> float | None:
    """Seconds before token attempt ``attempt + 1``, or None when the budget is spent.

    Equal jitter, ``min(cap_s, base_s * 2 ** (attempt - 1)) * (0.5 + draw)``, at least
    Entra's Retry-After, and never past ``total_s`` since the acquisition began
    (``elapsed_s`` ago). Equal rather than full jitter: a token request backs off one
    tenant's acquisition, not a crowd of rows, and must not retry at once.
    """
    wait = _ceiling_s(attempt, base_s, cap_s) * (0.5 + draw)
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    if elapsed_s + wait > total_s:
        return None
    return wait


def _ceiling_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The un-jittered exponential ceiling ``min(cap_s, base_s * 2 ** (attempt - 1))``."""
    return min(cap_s, base_s * (2.0 ** min(max(attempt, 1) - 1, 62)))


@dataclasses.dataclass(frozen=True, slots=True)
class Tries:
    """What one row's attempts have used up so far (``assess`` returns it updated)."""

    failures: int = 0  # failed tries other than throttling (bounded by max_attempts)
    throttled: int = 0  # throttled answers (bounded by max_throttled)
    refreshed: bool = False  # the token was refreshed once after a Graph 401


@dataclasses.dataclass(frozen=True, slots=True)
class Success:
    """The action succeeded."""


@dataclasses.dataclass(frozen=True, slots=True)
class Refresh:
    """Graph refused the token (401): get a fresh one and try again at once, once."""


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``wait_s``; ``pause_tenant`` holds every request of the tenant."""

    wait_s: float
    pause_tenant: bool
    throttled: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GiveUp:
    """The row ends ``failed`` with ``error``.

    ``pause_s``: the answer still announced a tenant-wide pause (a throttled row out of
    tries): the tenant's other rows must not start inside it.
    """

    error: ReportError
    pause_s: float | None = None


Decision = Success | Refresh | Retry | GiveUp

_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_THROTTLE_WITH_RETRY_AFTER = frozenset({503, 504})


def is_throttle(status: int | None, retry_after_s: float | None) -> bool:
    """A throttled answer: 429, or 503/504 carrying Retry-After (graph-notes, Throttling)."""
    return status == 429 or (status in _THROTTLE_WITH_RETRY_AFTER and retry_after_s is not None)


def assess(
    policy: RetryPolicy,
    tries: Tries,
    *,
    status: int | None,
    ok: bool = False,
    failure: ErrorKind | None = None,
    retry_after_s: float | None = None,
    draw: float,
    code: str | None = None,
    message: str = "",
) -> tuple[Decision, Tries]:
    """What follows one attempt, and the row's tries counting it.

    ``failure`` is set (network or timeout) when no HTTP status came back; ``ok`` says the
    action accepted the status. A first 401 asks for a fresh token and costs no try; a 401
    after that is an ``auth`` failure. Throttled answers count against ``max_throttled``,
    everything else against ``max_attempts`` (rule 2).
    """
    if ok:
        return Success(), tries
    if status == 401 and not tries.refreshed:
        return Refresh(), dataclasses.replace(tries, refreshed=True)
    if is_throttle(status, retry_after_s):
        tries = dataclasses.replace(tries, throttled=tries.throttled + 1)
        return _throttled(policy, tries.throttled, retry_after_s, draw, code, message), tries
    tries = dataclasses.replace(tries, failures=tries.failures + 1)
    if status == 401:
        return GiveUp(
            ReportError(
                ErrorKind.AUTH, code, f"Graph refused the token even after a refresh: {message}"
            )
        ), tries
    if failure is not None or status in _RETRYABLE_STATUSES:
        kind = failure if failure is not None else ErrorKind.HTTP
        if tries.failures >= policy.max_attempts:
            what = f"HTTP {status}" if status is not None else kind.value
            return GiveUp(
                ReportError(
                    kind,
                    code,
                    f"{what} on each of {tries.failures} attempts (--max-attempts "
                    f"{policy.max_attempts})" + (f": {message}" if message else ""),
                )
            ), tries
        wait = backoff_s(
            tries.failures, base_s=policy.backoff_base_s, cap_s=policy.backoff_cap_s, draw=draw
        )
        return Retry(wait_s=wait, pause_tenant=False, throttled=False), tries
    return GiveUp(ReportError(ErrorKind.HTTP, code, message or f"HTTP {status}")), tries


def _throttled(
    policy: RetryPolicy,
    throttled: int,
    retry_after_s: float | None,
    draw: float,
    code: str | None,
    message: str,
) -> Decision:
    """The decision for a throttled answer, the row's ``throttled``-th.

    Rule 2's pause is kept whatever becomes of the row: a row out of tries, or told to wait
    longer than ``max_retry_after_s``, gives up, but the announced wait still holds every
    other request of the tenant (``GiveUp.pause_s``): Graph counts requests made inside it.
    A Retry-After shorter than the floor of a 429 without one (``0`` is common) is treated
    as no Retry-After: it would otherwise retry at once, again and again.
    """
    code = code or "TooManyRequests"
    base = max(policy.backoff_base_s, 1.0)
    floor = min(policy.backoff_cap_s, base) / 2  # a throttled tenant needs real rest
    if retry_after_s is not None and retry_after_s < floor:
        retry_after_s = None
    pause = retry_after_s
    if throttled > policy.max_throttled:
        return GiveUp(
            ReportError(
                ErrorKind.THROTTLED,
                code,
                f"still throttled after {throttled} throttled answers (--max-throttled "
                f"{policy.max_throttled}); {message}".rstrip("; "),
            ),
            pause_s=pause,
        )
    if retry_after_s is None:
        wait = backoff_s(throttled, base_s=base, cap_s=policy.backoff_cap_s, draw=draw)
        wait = max(wait, floor)
    else:
        wait = retry_after_s
    if wait > policy.max_retry_after_s:
        return GiveUp(
            ReportError(
                ErrorKind.THROTTLED,
                code,
                f"Retry-After {wait:g} s exceeds --max-retry-after {policy.max_retry_after_s:g} s",
            ),
            pause_s=pause,
        )
    return Retry(wait_s=wait, pause_tenant=True, throttled=True)


def too_long_a_pause(paused_for: float, policy: RetryPolicy) -> ReportError:
    """The error of a row whose tenant is paused beyond ``max_retry_after_s``: it is never
    sent into the pause, and says when running it again can work."""
    return ReportError(
        ErrorKind.THROTTLED,
        "TooManyRequests",
        f"the tenant is paused {paused_for:.0f} s more (the Retry-After Graph announced), "
        f"longer than --max-retry-after {policy.max_retry_after_s:g} s: not sent; "
        "run again with --resume after the pause",
    )


class ThrottleKind(enum.StrEnum):
    """What a throttled answer says about the tenant (graph-notes.md, "Throttling")."""

    LIMIT = "limit"  # a 429 for the tenant: over its request room; the only kind that teaches
    BUSY = "busy"  # a 503/504 with Retry-After: the service is busy, not the tenant over quota
    COOLDOWN = "cooldown"  # a 429 for one object (synced too recently), not for the tenant


def throttle_kind(status: int | None, *, others_succeeded: bool) -> ThrottleKind:
    """Classify a throttled answer: a 429 after other rows of the tenant succeeded is that
    object's cooldown; any other 429 is the tenant's limit; a 503/504 is the service busy."""
    if status == 429:
        return ThrottleKind.COOLDOWN if others_succeeded else ThrottleKind.LIMIT
    return ThrottleKind.BUSY


# AdaptivePace's constants; its docstring says why each holds.
_BETA = 0.95  # a cut keeps this share of the measured rate
_MARGIN = 0.02  # recovery stops this far under the rate that drew the 429
_MIN_STARTS = 8  # starts a measure needs to be trusted
_FLOOR_SHARE = 0.02  # no cut goes under this share of the ceiling
_HOLD_WINDOWS = 2  # no probe before this many windows after a cut's pause...
_HOLD_PER_PAUSE = 20.0  # ...nor before this many of the shortest Retry-After seen
_MAX_HOLDS = 16  # the hold doubles at most this often (2**16 windows: always the cap)
_PROBE_FIRST = 0.25  # the first probe's growth; each next one doubles it
_USED_SHARE = 0.5  # a window is judged if its starts reached this share of the rate
_MIN_JUDGED = 2  # ...and at least this many


class AdaptivePace:
    """Learns a tenant's real request room from its 429s, below a configured ceiling.

    The ``TenantRate`` ceiling is enforced elsewhere (aiolimiter); this adds a spacing of
    ``1 / rate`` between starts once a 429 has shown the room is smaller, and holds the
    tenant-wide pause each throttled answer announces. AIMD in shape (botocore's adaptive
    retry mode, Netflix's concurrency-limits); its inputs are what decide, so:

    **Only a tenant-wide 429 teaches** (``ThrottleKind.LIMIT``). A 503/504 with Retry-After
    (``BUSY``: the service is busy) and a per-object cooldown (``COOLDOWN``: one object
    synced too recently) pause as told and leave the rate alone (botocore lowers its rate
    only on throttling codes and retries 5xx without).

    **The measured rate** at a 429 for a request started at ``s``, told to wait ``R``::

        n      = starts in [s - w, s), none before the tenant's first start
        active = the time of [max(s - w, first start), s) not spent paused
        span   = min(w, active + (now - s) + R)
        rate   = n / span, trusted only if n >= 8

    ``w`` is the ceiling's period, the user's statement of the server's window (Graph:
    100 per 20 s). Only time spent sending counts: one start after a pause is not a tiny
    rate (one start over a 10 s window read as 0.1 rps and collapsed a tenant). The wait
    the server announces counts too: a sliding window that took a burst of N in 0.2 s
    and answers "wait 4.8 s" allows N per 5 s, not N per 0.2 s (measured without it, the
    unknown-limit case fell from 95% to 80% of ideal with 4x the 429s); ``min(w, ...)``
    keeps a Retry-After rounded up to whole seconds from understating a full window.
    Starts from ``s`` on are left out: they met the full window too. Fewer than 8 starts
    (Netflix waits for 10 samples) decide nothing: the pause is the whole answer.

    **One cut per event.** A 429 answering a request that started before the last cut
    belongs to it: it extends the pause but does not cut again. A cut sets::

        bad  = min(measured, current rate or ceiling)
        rate = max(0.02 * ceiling, 0.95 * bad)

    0.95: the measure already is the room, so the cut only absorbs its error; botocore's
    0.7 cost 3-10% of throughput on every event, and a dropped limit is found by the next
    event anyway, whose span then holds the pause. The floor, 2% of the ceiling, keeps a
    wrong lesson from driving the pace to nothing while leaving a ceiling 20x above the
    room learnable (at 10% the pace could not go under twice the room there: it ran into
    the limit and paused every window, 2-4% of starts answered 429).

    **Recover, hold, probe**: one step per window of ``w`` seconds spent sending, taken
    only if that window's starts reached half what the rate allowed (and 2): a tenant with
    little work, or held back by the global slots, learns nothing (Netflix: no growth while
    the limit is barely used).

    1. Recover: back to ``0.98 * bad`` in one window, a step of the cut itself, however
       small the rate (not +5% of a possibly tiny one).
    2. Hold, from the end of the cut's pause, ``min(2 * w * 2**k, max(2 * w, 20 * R_min))``:
       ``R_min`` is the shortest Retry-After a cut has met, what a failed probe costs in
       sending, so probing at most once per 20 of them keeps that near 5% (a 2-window
       hold alone: 79% of ideal with whole-second Retry-Afters in a 2 s window); ``k``
       counts the probes that failed since the room last shrank, so a room that stays
       put is probed ever less often, up to that cap (where a first lesson starts).
    3. Probe: each window multiplies the rate by ``1 + p``, ``p`` doubling from 0.25
       (x1.25, x1.5, x2, x3): a limit that doubled back is found within 5 windows, a
       wrong lesson from the floor is forgotten in 5 more. Cubic regrowth (botocore),
       which climbs back fast right after the cut, answered 3.5x more starts with 429 and
       lost a fifth of the throughput here, each 429 costing a whole pause.

    **A room that shrank** (a 429 while recovering or holding, not probing: another app
    spending the tenant's shared budget) is cut like any other, the hold restarts from
    ``k = 0``, and the room before it is remembered: the first probes jump straight back
    to it (to ``0.98`` of it), since the other app stopping is the likeliest change; one
    window there without a 429 makes it the lesson again, held the longest. In the limit
    shifts benchmark (the limit halves for 8 s) this finished in 77% of the ideal
    time, against 64% with a fixed 20-pause hold and geometric probes only.

    Reaching the ceiling drops the spacing (``rate_rps`` None) and the lesson.
    """

    __slots__ = (
        "_bad_rps",
        "_ceiling_rps",
        "_cut_at",
        "_first_start",
        "_floor_rps",
        "_hold_until",
        "_holds",
        "_next_start",
        "_pauses",
        "_probe_share",
        "_probing",
        "_rate_rps",
        "_regain_rps",
        "_starts",
        "_step_at",
        "_step_starts",
        "_wait_s",
        "_window_s",
        "paused_until",
    )

    def __init__(self, ceiling: TenantRate, *, window_s: float | None = None) -> None:
        self._ceiling_rps = ceiling.max_requests / ceiling.period_s
        self._window_s = window_s if window_s is not None else ceiling.period_s
        self._floor_rps = _FLOOR_SHARE * self._ceiling_rps
        self._rate_rps: float | None = None  # None: no lesson (only the ceiling)
        self._bad_rps = math.inf  # the measured rate that drew the last cut
        self._wait_s = math.inf  # the shortest Retry-After a cut has met: what a probe costs
        self._cut_at = -math.inf
        self._hold_until = math.inf  # no probing before (the lesson's hold)
        self._holds = 0  # failed probes since the room last shrank: the hold doubles with each
        self._regain_rps: float | None = None  # the room before it last shrank, to try again
        self._probe_share = 0.0  # the last probe's growth (doubles each window)
        self._probing = False  # the rate is above the lesson, testing for more room
        self._step_at = 0.0  # start of the window being judged
        self._step_starts = 0
        self._first_start: float | None = None
        self._next_start = 0.0
        self._starts: deque[float] = deque()  # starts of the last window
        self._pauses: deque[tuple[float, float]] = deque()  # disjoint (from, until), in order
        self.paused_until = 0.0

    def __repr__(self) -> str:
        rate = "ceiling" if self._rate_rps is None else f"{self._rate_rps:.3g}/s"
        return (
            f"<AdaptivePace rate={rate} ceiling={self._ceiling_rps:.3g}/s "
            f"bad={self._bad_rps:.3g}/s paused_until={self.paused_until:.1f}>"
        )

    @property
    def rate_rps(self) -> float | None:
        """The learned rate in requests per second, or None while only the ceiling holds."""
        return self._rate_rps

    def ready_at(self, now: float) -> float:
        """The earliest time the next request of this tenant may start (>= now)."""
        spaced = self._next_start if self._rate_rps is not None else now
        return max(now, self.paused_until, spaced)

    def is_paused(self, now: float) -> bool:
        return now < self.paused_until

    def on_start(self, now: float) -> None:
        """Record a request start, judge a finished window, space the next start."""
        if self._first_start is None:
            self._first_start = self._step_at = now
        starts = self._starts
        starts.append(now)
        horizon = now - self._window_s
        while starts[0] < horizon:
            starts.popleft()
        kept = min(horizon, self._step_at)  # pauses still inside a window being measured
        while self._pauses and self._pauses[0][1] < kept:
            self._pauses.popleft()
        self._step_starts += 1
        if self._rate_rps is None:
            return
        active = self._active_s(self._step_at, now)
        if active >= self._window_s:
            used = max(_MIN_JUDGED, _USED_SHARE * self._rate_rps * active)
            if self._step_starts > used:  # this start belongs to the next window
                self._step(now)
            self._step_at, self._step_starts = now, 1
            if self._rate_rps is None:
                return
        self._next_start = max(self._next_start, now) + 1.0 / self._rate_rps

    def on_throttled(
        self,
        now: float,
        wait_s: float,
        *,
        kind: ThrottleKind = ThrottleKind.LIMIT,
        started_at: float | None = None,
    ) -> None:
        """A throttled answer at ``now`` to a request started at ``started_at``: pause the
        tenant for ``wait_s``; a tenant-wide 429 (``kind`` LIMIT) may also cut the rate."""
        self._pause(now, now + max(0.0, wait_s))
        if kind is not ThrottleKind.LIMIT:
            return
        sent = now if started_at is None else min(started_at, now)
        if sent < self._cut_at:
            return  # answers a request already on its way at the last cut: the same event
        measured = self._measured_rps(sent, now, wait_s)
        if measured is None:
            return  # too few starts to tell a limit from chance
        if self._rate_rps is None:
            self._holds = _MAX_HOLDS  # a first lesson: hold it the longest
        elif self._probing:
            self._holds += 1  # a probe failed: the lesson stands, probe it half as often
        else:
            # Throttled at or under the lesson: the room shrank (another app took part of a
            # shared budget); it may come back, so the probes first try the old room again.
            self._holds = 0
            self._regain_rps = max(self._regain_rps or 0.0, self._bad_rps)
        current = self._rate_rps if self._rate_rps is not None else self._ceiling_rps
        self._bad_rps = min(measured, current)
        self._rate_rps = max(self._floor_rps, _BETA * self._bad_rps)
        self._probing = False
        self._wait_s = min(self._wait_s, wait_s)
        self._cut_at = now
        hold = self._hold_s()
        self._hold_until = self.paused_until + hold
        self._probe_share = 0.0
        self._step_at, self._step_starts = self.paused_until, 0
        self._next_start = self.paused_until

    # -- internals ----------------------------------------------------------------------------

    def _pause(self, start: float, until: float) -> None:
        if until <= self.paused_until:
            return
        start = max(start, self.paused_until)
        if self._pauses and self._pauses[-1][1] >= start:
            start = self._pauses.pop()[0]
        self._pauses.append((start, until))
        self.paused_until = until

    def _active_s(self, since: float, until: float) -> float:
        """Seconds of ``[since, until)`` the tenant was not paused."""
        paused = 0.0
        for start, end in self._pauses:
            overlap = min(until, end) - max(since, start)
            if overlap > 0:
                paused += overlap
        return max(0.0, until - since - paused)

    def _measured_rps(self, sent: float, now: float, wait_s: float) -> float | None:
        if self._first_start is None:
            return None
        horizon = max(sent - self._window_s, self._first_start)
        n = sum(1 for t in self._starts if horizon <= t < sent)
        if n < _MIN_STARTS:
            return None
        span = min(self._window_s, self._active_s(horizon, sent) + (now - sent) + wait_s)
        return n / span if span > 0 else None

    def _hold_s(self) -> float:
        base = _HOLD_WINDOWS * self._window_s
        doubled = base * 2.0 ** min(self._holds, _MAX_HOLDS)
        return max(base, min(doubled, _HOLD_PER_PAUSE * self._wait_s))

    def _step(self, now: float) -> None:
        assert self._rate_rps is not None
        target = (1.0 - _MARGIN) * self._bad_rps
        regain = self._regain_rps
        if self._rate_rps < target:
            self._rate_rps = target  # back in one window: a step of the cut itself
        elif now < self._hold_until:
            pass
        elif regain is not None and self._rate_rps < (1.0 - _MARGIN) * regain:
            self._rate_rps = (1.0 - _MARGIN) * regain  # try the room before it shrank
            self._probing = True
        elif regain is not None:
            # A window at the old room drew no 429: it is back, and is the lesson again.
            self._bad_rps, self._regain_rps, self._probing = regain, None, False
            self._holds = _MAX_HOLDS
            self._hold_until = now + self._hold_s()
        else:
            self._probe_share = max(2.0 * self._probe_share, _PROBE_FIRST)
            self._rate_rps *= 1.0 + self._probe_share
            self._probing = True
        if self._rate_rps >= self._ceiling_rps:
            self._rate_rps = self._regain_rps = None
            self._bad_rps = math.inf
            self._probing = False
