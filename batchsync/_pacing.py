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
    "Tries",
    "assess",
    "backoff_s",
    "is_throttle",
    "parse_retry_after",
    "token_retry_wait",
]

_PROBE_MARGIN = 0.03  # AdaptivePace climbs fast to this far under the rate that drew a 429
_HOLD_WINDOWS = 5  # ...and holds there this many windows before probing beyond it
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
    """The decision for a throttled answer, the row's ``throttled``-th."""
    code = code or "TooManyRequests"
    # A row out of tries still leaves the tenant paused for what the server announced.
    pause = (
        retry_after_s
        if retry_after_s is not None and retry_after_s <= policy.max_retry_after_s
        else None
    )
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
        base = max(policy.backoff_base_s, 1.0)
        wait = backoff_s(throttled, base_s=base, cap_s=policy.backoff_cap_s, draw=draw)
        # Keep a floor of half the un-jittered ceiling: a throttled tenant needs real rest.
        wait = max(wait, min(policy.backoff_cap_s, base) / 2)
    else:
        wait = retry_after_s
    if wait > policy.max_retry_after_s:
        return GiveUp(
            ReportError(
                ErrorKind.THROTTLED,
                code,
                f"Retry-After {wait:g} s exceeds --max-retry-after {policy.max_retry_after_s:g} s",
            )
        )
    return Retry(wait_s=wait, pause_tenant=True, throttled=True)


class AdaptivePace:
    """Learns a tenant's real request room from its 429s (AIMD: additive increase, multiplicative
    decrease).

    The configured ``TenantRate`` is a hard ceiling enforced elsewhere; this adds spacing
    between starts only after the tenant has been throttled: on a 429 the allowed rate drops
    to ``decrease`` times the rate actually achieved over the last ``window_s`` (the rate
    that drew the 429). Each ``window_s`` without a 429 raises it by the fraction
    ``increase`` (of itself, not of the ceiling: a ceiling far above the real limit must not
    undo the lesson in one step) up to just under the rate that drew the last 429, holds there
    for ``_HOLD_WINDOWS`` windows, then probes beyond it ten times slower, since each 429
    costs a whole Retry-After pause.
    Reaching the ceiling drops the spacing. It also holds the tenant-wide pause set by
    Retry-After.
    """

    __slots__ = (
        "_bad_rps",
        "_calm_windows",
        "_ceiling_rps",
        "_decrease",
        "_increase",
        "_last_change",
        "_next_start",
        "_rate_rps",
        "_starts",
        "_window_s",
        "paused_until",
    )

    def __init__(
        self,
        ceiling: TenantRate,
        *,
        window_s: float | None = None,
        decrease: float = 0.95,
        increase: float = 0.05,
    ) -> None:
        self._ceiling_rps = ceiling.max_requests / ceiling.period_s
        self._window_s = window_s if window_s is not None else min(ceiling.period_s, 10.0)
        self._decrease = decrease
        self._increase = increase
        self._rate_rps: float | None = None  # None: no learned limit (only the ceiling)
        self._bad_rps = math.inf  # the achieved rate that drew the last 429
        self._calm_windows = 0  # windows held just under it since
        self._next_start = 0.0
        self._last_change = 0.0
        self._starts: deque[float] = deque()
        self.paused_until = 0.0

    @property
    def rate_rps(self) -> float | None:
        """The learned rate in requests per second, or None while unthrottled."""
        return self._rate_rps

    def ready_at(self, now: float) -> float:
        """The earliest time the next request of this tenant may start (>= now)."""
        return max(now, self.paused_until, self._next_start if self._rate_rps else now)

    def is_paused(self, now: float) -> bool:
        return now < self.paused_until

    def on_start(self, now: float) -> None:
        """Record a request start and space the next one by the learned rate."""
        self._starts.append(now)
        horizon = now - self._window_s
        while self._starts and self._starts[0] < horizon:
            self._starts.popleft()
        if self._rate_rps is None:
            return
        if now - self._last_change >= self._window_s:
            below_bad = self._bad_rps * (1.0 - _PROBE_MARGIN)
            if self._rate_rps < below_bad:
                self._rate_rps = min(self._rate_rps * (1.0 + self._increase), below_bad)
            elif self._calm_windows < _HOLD_WINDOWS:
                self._calm_windows += 1  # hold just under the known limit a while first
            else:
                self._rate_rps *= 1.0 + self._increase / 10
            self._last_change = now
            if self._rate_rps >= self._ceiling_rps:
                self._rate_rps = None
                return
        self._next_start = max(self._next_start, now) + 1.0 / self._rate_rps

    def on_throttled(self, now: float, wait_s: float) -> None:
        """A throttled answer: pause the tenant for ``wait_s`` and lower the learned rate."""
        self.paused_until = max(self.paused_until, now + wait_s)
        if now - self._last_change < 0.5 and self._rate_rps is not None:
            return  # answers to requests already in flight: decrease once per burst
        horizon = now - self._window_s
        achieved = sum(1 for t in self._starts if t >= horizon) / self._window_s
        current = self._rate_rps if self._rate_rps is not None else self._ceiling_rps
        base = min(current, achieved) if achieved > 0 else current
        self._bad_rps = base
        self._calm_windows = 0
        self._rate_rps = max(base * self._decrease, 1.0 / max(self._window_s, 1.0) / 10)
        self._last_change = now
        self._next_start = self.paused_until
