"""Pace: the adaptive pace policy alone, against a sliding-window model, beside alternatives.

``python benchmarks/pace.py [--quick]``

No sockets and no clock: ``tests/_pace_model.py`` drives a policy against a model of one
tenant's sliding-window limit (429 with Retry-After until a slot frees, in whole seconds
or exact) in simulated time, with the engine's ceiling bucket, 10 requests in flight and
120 ms answers. Each alternative changes one rule of ``AdaptivePace`` (its docstring says
why the chosen rule holds): the measure without the announced wait, botocore's cubic
regrowth (cut to 0.7, ``0.4 (t - K)^3 + W_max``, no hold), botocore's 0.7 cut, a floor at
10% of the ceiling, probes tied to the ceiling (+5% of it a window), a hold of 2 windows
only. Reported: accepted requests / what a client told the limit could have had, and
the share of starts answered 429, median of seeds (latency varied by seed).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from typing import Any

from _common import REPO_DIR, base_parser, format_table, save_results

sys.path.insert(0, str(REPO_DIR / "tests"))  # the model the pure tests use, unchanged

from _pace_model import SlidingWindow, drive, ideal_starts

import batchsync._pacing as pacing
from batchsync._pacing import AdaptivePace, TenantRate, ThrottleKind

Policy = Callable[[TenantRate], AdaptivePace]


class _NoWait(AdaptivePace):
    """The measure over time spent sending only, without the wait the 429 announces."""

    __slots__ = ()

    def _measured_rps(self, sent: float, now: float, wait_s: float) -> float | None:
        if self._first_start is None:
            return None
        horizon = max(sent - self._window_s, self._first_start)
        n = sum(1 for t in self._starts if horizon <= t < sent)
        span = self._active_s(horizon, sent)
        return n / span if n >= pacing._MIN_STARTS and span > 0 else None


class _Cubic(AdaptivePace):
    """botocore's adaptive mode after a cut: 0.7 of the rate, then cubic regrowth, no hold."""

    __slots__ = ("_k", "_w_max")

    def on_throttled(
        self,
        now: float,
        wait_s: float,
        *,
        kind: ThrottleKind = ThrottleKind.LIMIT,
        started_at: float | None = None,
    ) -> None:
        cut_at = self._cut_at
        super().on_throttled(now, wait_s, kind=kind, started_at=started_at)
        if self._cut_at != cut_at:
            self._w_max = self._bad_rps
            self._k = (self._w_max * 0.3 / 0.4) ** (1 / 3)
            self._rate_rps = max(self._floor_rps, 0.7 * self._bad_rps)

    def _step(self, now: float) -> None:
        return  # the cubic curve replaces recovery, hold and probes

    def on_start(self, now: float) -> None:
        if self._rate_rps is not None and now >= self.paused_until:
            rate = max(self._floor_rps, 0.4 * (now - self._cut_at - self._k) ** 3 + self._w_max)
            self._rate_rps = None if rate >= self._ceiling_rps else rate
        super().on_start(now)


class _CeilingProbe(AdaptivePace):
    """Probes that add 5% of the ceiling a window, instead of doubling growth."""

    __slots__ = ()

    def _step(self, now: float) -> None:
        assert self._rate_rps is not None
        target = (1.0 - pacing._MARGIN) * self._bad_rps
        if self._rate_rps < target:
            self._rate_rps = target
        elif now >= self._hold_until:
            self._rate_rps += 0.05 * self._ceiling_rps
        if self._rate_rps >= self._ceiling_rps:
            self._rate_rps, self._bad_rps = None, math.inf


def _with(**constants: float) -> Policy:
    """AdaptivePace with some of ``_pacing``'s constants changed while it decides."""

    class _Changed(AdaptivePace):
        __slots__ = ()

        def __init__(self, ceiling: TenantRate) -> None:
            super().__init__(ceiling)
            share = constants.get("_FLOOR_SHARE")
            if share is not None:
                self._floor_rps = share * self._ceiling_rps

        def on_start(self, now: float) -> None:
            with _patched(constants):
                super().on_start(now)

        def on_throttled(self, *args: Any, **kwargs: Any) -> None:
            with _patched(constants):
                super().on_throttled(*args, **kwargs)

    return _Changed


@contextlib.contextmanager
def _patched(constants: dict[str, float]) -> Iterator[None]:
    old = {name: getattr(pacing, name) for name in constants}
    for name, value in constants.items():
        setattr(pacing, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(pacing, name, value)


POLICIES: dict[str, Policy] = {
    "chosen (AdaptivePace)": AdaptivePace,
    "measure without the wait": _NoWait,
    "cubic regrowth (botocore)": _Cubic,
    "cut to 0.7 (botocore)": _with(_BETA=0.7),
    "floor 10% of the ceiling": _with(_FLOOR_SHARE=0.10),
    "probes +5% of the ceiling": _CeilingProbe,
    "hold 2 windows only": _with(_HOLD_PER_PAUSE=0.0),
}


def _fixed(
    policy: Policy,
    *,
    n: int,
    window: float,
    ceiling: TenantRate,
    duration: float,
    whole: bool,
    latency: float,
) -> tuple[float, float]:
    server = SlidingWindow(limit=lambda _: n, window_s=window, whole_seconds=whole)
    out = drive(policy(ceiling), server, ceiling=ceiling, duration_s=duration, latency_s=latency)
    ideal = ideal_starts(lambda _: n, window, 0.0, duration)
    return len(server.accepted) / ideal, out.throttled / len(out.starts)


def _shift(
    policy: Policy, *, n: int, window: float, ceiling: TenantRate, whole: bool, latency: float
) -> tuple[float, float]:
    halves, back, duration = 20 * window, 40 * window, 60 * window

    def limit(t: float) -> int:
        return n // 2 if halves <= t < back else n

    server = SlidingWindow(limit=limit, window_s=window, whole_seconds=whole)
    out = drive(policy(ceiling), server, ceiling=ceiling, duration_s=duration, latency_s=latency)
    return len(server.accepted) / ideal_starts(limit, window, 0, duration), out.throttled / len(
        out.starts
    )


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    seeds = range(2 if args.quick else 7)
    unknown = TenantRate(1000, 2.0)  # 20x the limit, as throttle.py's unknown case
    scenarios: dict[str, Callable[[Policy, float], tuple[float, float]]] = {
        "50/2, 20x ceiling, 20 s": lambda p, lat: _fixed(
            p, n=50, window=2.0, ceiling=unknown, duration=20.0, whole=True, latency=lat
        ),
        "50/2, 20x ceiling, 120 s": lambda p, lat: _fixed(
            p, n=50, window=2.0, ceiling=unknown, duration=120.0, whole=True, latency=lat
        ),
        "50/2 exact Retry-After, 120 s": lambda p, lat: _fixed(
            p, n=50, window=2.0, ceiling=unknown, duration=120.0, whole=False, latency=lat
        ),
        "50/2 halves, back, 120 s": lambda p, lat: _shift(
            p, n=50, window=2.0, ceiling=unknown, whole=True, latency=lat
        ),
        "100/20 (told) halves, back": lambda p, lat: _shift(
            p, n=100, window=20.0, ceiling=TenantRate(100, 20.0), whole=True, latency=lat
        ),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for name, policy in POLICIES.items():
        results[name] = {}
        row: list[object] = [name]
        for label, scenario in scenarios.items():
            got = [scenario(policy, 0.1 + 0.01 * seed) for seed in seeds]
            used = statistics.median(g[0] for g in got)
            share = statistics.median(g[1] for g in got)
            results[name][label] = {"of_ideal": round(used, 4), "share_429": round(share, 4)}
            row.append(f"{100 * used:.0f}% / {100 * share:.1f}%")
        rows.append(row)
    print(f"\npace: accepted / ideal and 429 share of starts, median of {len(seeds)} seeds")
    print(format_table(["policy", *scenarios], rows))
    path = save_results("pace", {"seeds": len(seeds), "policies": results}, quick=args.quick)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
