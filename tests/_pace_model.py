"""A plain-Python model of one tenant's traffic, to drive ``AdaptivePace`` in simulated time.

The server is a sliding window (at most N accepted starts in any W seconds, N may change
with time), as Graph's per-tenant limits are: beyond it a 429 whose Retry-After is the
time until a slot frees (whole seconds rounded up, as Graph sends, or exact), and a 429
again for any request inside a pause it announced (Graph keeps counting). It may also
answer a share of requests 503 with a Retry-After, and it records every start that
arrives inside a pause it announced.

The client mimics the engine's lane: the ceiling's leaky bucket (``limiter_params``), a
bound on requests in flight, ``ready_at`` before each start and ``on_start`` at it; an
answer reaches the policy ``latency_s`` (204) or ``throttle_latency_s`` (429/503) after
its start, with the start time. Minutes of traffic take milliseconds.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections import deque
from collections.abc import Callable

from batchsync._pacing import AdaptivePace, TenantRate, ThrottleKind

__all__ = ["Drive", "SlidingWindow", "drive", "ideal_starts"]


@dataclasses.dataclass
class SlidingWindow:
    """One tenant's limit: ``limit(now)`` starts per ``window_s``; see the module docstring."""

    limit: Callable[[float], int]
    window_s: float
    whole_seconds: bool = True
    busy_share: float = 0.0
    busy_wait_s: float = 1.0
    seed: int = 0
    accepted: list[float] = dataclasses.field(default_factory=list)
    throttled: int = 0
    busy: int = 0
    inside_pause: int = 0

    def __post_init__(self) -> None:
        self._window: deque[float] = deque()
        self._enforced_until = 0.0
        self._announced_until = 0.0
        self._rng = random.Random(self.seed)

    def _retry_after(self, wait_s: float) -> float:
        if self.whole_seconds:
            return float(max(1, math.ceil(wait_s - 1e-9)))
        return max(math.ceil(wait_s * 1000), 1) / 1000

    def answer(self, now: float) -> tuple[int, float | None]:
        """(status, Retry-After seconds) for a request arriving at ``now``."""
        if now < self._announced_until:
            self.inside_pause += 1
        if now < self._enforced_until:
            self.throttled += 1
            return 429, self._retry_after(self._enforced_until - now)
        window = self._window
        while window and window[0] <= now - self.window_s:
            window.popleft()
        limit = self.limit(now)
        if len(window) >= limit:
            free_at = window[len(window) - limit] + self.window_s if limit else now + 1
            wait = self._retry_after(free_at - now)
            self.throttled += 1
            self._enforced_until = self._announced_until = max(self._announced_until, now + wait)
            return 429, wait
        window.append(now)
        if self.busy_share and self._rng.random() < self.busy_share:
            self.busy += 1
            self._announced_until = max(self._announced_until, now + self.busy_wait_s)
            return 503, self.busy_wait_s
        self.accepted.append(now)
        return 204, None

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.accepted if start <= t < end)


@dataclasses.dataclass
class Drive:
    """What the client did: its starts with the learned rate then, and the answers."""

    starts: list[tuple[float, float | None]]
    throttled: int  # 429s answered
    throttled_at: list[float]  # the start times of the requests answered 429
    busy: int  # 503s answered
    inside_pause: int  # starts inside a pause the client had already been told about
    negative_waits: int

    def count(self, started: float, status: int) -> None:
        if status == 429:
            self.throttled += 1
            self.throttled_at.append(started)
        elif status == 503:
            self.busy += 1

    def rate_at(self, t: float, ceiling_rps: float) -> float:
        """The learned rate (the ceiling while unlearned) at the first start from ``t`` on."""
        for when, rate in self.starts:
            if when >= t:
                return ceiling_rps if rate is None else rate
        return math.nan

    def max_rate_between(self, start: float, end: float, ceiling_rps: float) -> float:
        rates = [ceiling_rps if r is None else r for t, r in self.starts if start <= t <= end]
        return max(rates, default=math.nan)


def drive(
    pace: AdaptivePace,
    server: SlidingWindow,
    *,
    ceiling: TenantRate,
    duration_s: float,
    concurrency: int = 10,
    latency_s: float = 0.12,
    throttle_latency_s: float = 0.005,
    inject: dict[float, tuple[int, float]] | None = None,
) -> Drive:
    """Run the client against ``server`` for ``duration_s`` simulated seconds.

    ``inject`` maps a time to an answer (status, Retry-After) given to the first request
    started from then on instead of the server's (a spurious throttle).
    """
    capacity, every_s = ceiling.limiter_params()
    del capacity  # always 1: one start per ``every_s``
    bucket_free = 0.0
    pending: list[tuple[float, float, int, float | None]] = []  # (answered, started, ...)
    injected = sorted((inject or {}).items())
    told_until = 0.0  # the end of the pauses the client has been told about
    out = Drive(starts=[], throttled=0, throttled_at=[], busy=0, inside_pause=0, negative_waits=0)
    now = 0.0
    while now < duration_s:
        while pending and pending[0][0] <= now:
            answered, started, status, wait = heapq.heappop(pending)
            if status in (429, 503) and wait is not None:
                kind = ThrottleKind.LIMIT if status == 429 else ThrottleKind.BUSY
                pace.on_throttled(answered, wait, kind=kind, started_at=started)
                told_until = max(told_until, answered + wait)
        ready = pace.ready_at(now)
        if ready < now:
            out.negative_waits += 1
        at = max(ready, bucket_free)
        if len(pending) >= concurrency:
            at = max(at, pending[0][0])
        if pending and pending[0][0] <= at:
            now = pending[0][0]  # an answer comes first: it may change the decision
            continue
        now = at
        if now >= duration_s:
            break
        if pace.is_paused(now):
            continue
        bucket_free = max(bucket_free, now) + every_s
        if now < told_until:
            out.inside_pause += 1
        pace.on_start(now)
        out.starts.append((now, pace.rate_rps))
        if injected and now >= injected[0][0]:
            status, wait = injected.pop(0)[1]
            out.count(now, status)
            heapq.heappush(pending, (now + throttle_latency_s, now, status, wait))
            continue
        status, retry_after = server.answer(now)
        out.count(now, status)
        delay = latency_s if status == 204 else throttle_latency_s
        heapq.heappush(pending, (now + delay, now, status, retry_after))
    return out


def ideal_starts(limit: Callable[[float], int], window_s: float, start: float, end: float) -> float:
    """What a client told the limit could have had accepted in ``[start, end)``."""
    steps = max(1, round((end - start) * 100))
    dt = (end - start) / steps
    return sum(limit(start + (i + 0.5) * dt) / window_s * dt for i in range(steps))
