"""The engine tells the adaptive pace what each throttled answer was, end to end over real
HTTPS against the simulator: busy 503s pause a tenant without teaching it a lower rate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _support import FAST_RETRY, make_rows, run_rows

from batchsync import _engine
from batchsync._engine import EngineSettings
from batchsync._pacing import AdaptivePace, TenantRate, ThrottleKind
from batchsync.simulator import FaultConfig, SimulatorConfig, ThrottleConfig, run_simulator


@dataclasses.dataclass(frozen=True, slots=True)
class _Seen:
    now: float
    wait_s: float
    kind: ThrottleKind
    started_at: float | None
    rate_before: float | None
    rate_after: float | None


class _Watched(AdaptivePace):
    """The engine's pace, recording what each throttled answer told it (no behaviour change)."""

    __slots__ = ()
    seen: list[_Seen] = []  # noqa: RUF012 - one list per test, reset by the fixture

    def on_throttled(
        self,
        now: float,
        wait_s: float,
        *,
        kind: ThrottleKind = ThrottleKind.LIMIT,
        started_at: float | None = None,
    ) -> None:
        before = self.rate_rps
        super().on_throttled(now, wait_s, kind=kind, started_at=started_at)
        _Watched.seen.append(_Seen(now, wait_s, kind, started_at, before, self.rate_rps))


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> list[_Seen]:
    """Every lane's pace records its throttled answers into the returned list."""
    _Watched.seen = []
    monkeypatch.setattr(_engine, "AdaptivePace", _Watched)
    return _Watched.seen


async def test_early_503s_pause_but_never_slow_a_tenant(
    tmp_path: Path, watched: list[_Seen]
) -> None:
    """Each tenant's first two requests meet 503 + Retry-After: the tenant pauses as told
    (no request inside the pause), every row ends ok, and the pace learns no lower rate."""
    rows = make_rows(4, 25)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, retry_after="float"),
        faults=FaultConfig(http_503_first=2, retry_after_s=0.3),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=8, tenant_rate=TenantRate(50, 1.0), retry=FAST_RETRY, timeout_s=5.0
        )
        out = await run_rows(sim, rows, report, engine=engine)
        during_pause = sim.stats.requests_during_pause
        early = sim.stats.faults["http_503_first"]
    assert sorted(int(r["line"]) for r in out) == list(range(1, 101))
    assert {r["status"] for r in out} == {"ok"}
    assert early == 8
    assert during_pause == 0
    assert len(watched) >= 8
    assert {s.kind for s in watched} == {ThrottleKind.BUSY}
    assert all(s.rate_after is None for s in watched)
    assert all(s.started_at is not None and s.started_at <= s.now for s in watched)


async def test_the_issue_fault_mix_finishes_every_row(tmp_path: Path, watched: list[_Seen]) -> None:
    """10 tenants x 20 rows with 5% 500, 5% 503 + Retry-After, 3% dropped connections:
    every row ends ok, none starts inside a pause, and no busy answer teaches a rate."""
    rows = make_rows(10, 20)
    cfg = SimulatorConfig(
        graph_latency_s=0.01,
        throttle=ThrottleConfig(write_limit=0, retry_after="float"),
        faults=FaultConfig(
            seed=9, http_500=0.05, http_503_retry_after=0.05, drop=0.03, retry_after_s=0.3
        ),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=16, tenant_rate=TenantRate(20, 1.0), retry=FAST_RETRY, timeout_s=5.0
        )
        out = await run_rows(sim, rows, report, engine=engine)
        during_pause = sim.stats.requests_during_pause
        busy = sim.stats.faults["http_503_retry_after"]
    assert sorted(int(r["line"]) for r in out) == list(range(1, 201))
    assert {r["status"] for r in out} == {"ok"}
    assert during_pause == 0
    assert busy > 0, "the test must actually meet busy answers"
    assert {s.kind for s in watched} == {ThrottleKind.BUSY}
    assert all(s.rate_after is None for s in watched)


async def test_tenant_429s_teach_once_per_event(tmp_path: Path, watched: list[_Seen]) -> None:
    """A tenant over its limit (10 per 1 s, ceiling 1000/1): its 429s are told as the tenant's
    limit with their start times, the pace learns a rate, 429s of requests already on their
    way at a cut do not cut again, and every row ends ok with no request inside a pause."""
    rows = make_rows(1, 60)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=10, window_s=1.0, retry_after="float"),
        faults=FaultConfig(retry_after_s=0.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=8, tenant_rate=TenantRate(1000, 1.0), retry=FAST_RETRY, timeout_s=5.0
        )
        out = await run_rows(sim, rows, report, engine=engine)
        during_pause = sim.stats.requests_during_pause
    assert {r["status"] for r in out} == {"ok"}
    assert during_pause == 0
    assert watched, "the test must actually throttle"
    assert {s.kind for s in watched} == {ThrottleKind.LIMIT}
    assert any(s.rate_after is not None for s in watched)
    cut_at = None
    for s in watched:
        assert s.started_at is not None
        assert s.started_at <= s.now
        if cut_at is not None and s.started_at < cut_at:
            assert s.rate_after == s.rate_before, "a 429 of the same event cut again"
        if s.rate_after != s.rate_before:
            cut_at = s.now
