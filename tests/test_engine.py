"""The engine end to end over real HTTPS against the simulator, with real MSAL and aiohttp."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _support import (
    FAST_RETRY,
    connector_id,
    make_rows,
    read_report,
    run_rows,
    sim_config,
    tenant_id,
    write_csv,
)

from batchsync._auth import AccessToken, AuthMode
from batchsync._engine import EngineSettings
from batchsync._pacing import RetryPolicy, TenantRate
from batchsync._report import Outcome
from batchsync._runner import run_batch
from batchsync._summary import RunStats, exit_status
from batchsync.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    run_simulator,
)


def _assert_one_line_per_row(report: list[dict[str, Any]], rows: int) -> None:
    lines = sorted(int(r["line"]) for r in report)
    assert lines == list(range(1, rows + 1))


async def test_throttled_run_every_row_ok_no_request_in_pause(tmp_path: Path) -> None:
    """200 rows, 20 tenants, throttled: all ok, no request inside a pause, one token each."""
    rows = make_rows(20, 10)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=4, window_s=0.5, retry_after="float"),
        # Pauses of 1 s or more: the simulator excuses the first 0.2 s (requests already on
        # their way), so 0.75 s of each pause is watched.
        faults=FaultConfig(retry_after_s=1.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        stats = await run_batch(sim_config(sim, write_csv(tmp_path / "in.csv", rows), report))
        out = read_report(report)
        _assert_one_line_per_row(out, 200)
        assert {r["status"] for r in out} == {"ok"}
        assert sum(sim.stats.throttled.values()) > 0, "the test must actually throttle"
        assert sim.stats.requests_during_pause == 0
        token_requests = Counter(t for (t, _grant) in sim.stats.token_requests)
        assert set(token_requests.values()) == {1}
        assert len(token_requests) == 20
    assert stats.throttled_answers == sum(int(r["throttled"]) for r in out)
    assert exit_status(stats) == 0


async def test_faults_end_every_row_with_a_precise_line(tmp_path: Path) -> None:
    """With 5% of each fault injected, every row ends ok or failed with a kind, never missing."""
    rows = make_rows(20, 10)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0),
        faults=FaultConfig(
            seed=3,
            http_500=0.05,
            http_502=0.05,
            http_503=0.05,
            http_503_retry_after=0.05,
            http_504=0.05,
            drop=0.05,
            malformed=0.05,
            slow=0.02,
            slow_s=3.0,
            retry_after_s=0.05,
        ),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=16, tenant_rate=TenantRate(1000, 1.0), retry=FAST_RETRY, timeout_s=1.0
        )
        out = await run_rows(sim, rows, report, engine=engine)
    _assert_one_line_per_row(out, 200)
    for r in out:
        assert r["status"] in ("ok", "failed")
        if r["status"] == "failed":
            assert r["error"]["kind"] in ("http", "network", "timeout")
    assert sum(1 for r in out if int(r["attempts"]) > 1) > 0


async def test_max_attempts_bounds_a_failing_row(tmp_path: Path) -> None:
    """A row that always meets a 500 fails with kind http after --max-attempts tries."""
    rows = make_rows(2, 2)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), faults=FaultConfig(http_500=1.0))
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_attempts=3),
        )
        stats = await run_batch(
            sim_config(sim, write_csv(tmp_path / "in.csv", rows), report, engine=engine)
        )
        out = read_report(report)
    assert [r["attempts"] for r in out] == [3, 3, 3, 3]
    assert {r["error"]["kind"] for r in out} == {"http"}
    assert {r["http_status"] for r in out} == {500}
    assert exit_status(stats) == 1


async def test_request_timeout_is_kind_timeout(tmp_path: Path) -> None:
    """An answer slower than --timeout counts as an attempt of kind timeout."""
    rows = make_rows(1, 2)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0), faults=FaultConfig(slow=1.0, slow_s=5.0)
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_attempts=2),
            timeout_s=0.3,
        )
        out = await run_rows(sim, rows, report, engine=engine)
    assert [(r["status"], r["error"]["kind"], r["attempts"]) for r in out] == [
        ("failed", "timeout", 2),
        ("failed", "timeout", 2),
    ]


async def test_huge_retry_after_fails_row_throttled(tmp_path: Path) -> None:
    """A Retry-After beyond --max-retry-after ends the row throttled instead of sleeping, and
    the tenant's next row is not sent into that pause."""
    rows = make_rows(1, 3)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=1, window_s=3600.0, retry_after="seconds"),
        faults=FaultConfig(retry_after_s=3600.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            # Starts 1/3 s apart: the 429 of the second row is in before the third is due
            # (at 1 ms apart both could be on the wire before the pause was announced).
            tenant_rate=TenantRate(4, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_retry_after_s=5.0),
        )
        out = await run_rows(sim, rows, report, engine=engine)
        assert sim.stats.snapshot().requests_during_pause == 0
    statuses = Counter(r["status"] for r in out)
    assert statuses == {"ok": 1, "failed": 2}
    failed = [r for r in out if r["status"] == "failed"]
    assert {r["error"]["kind"] for r in failed} == {"throttled"}
    assert sorted((r["http_status"] or 0, r["attempts"]) for r in failed) == [(0, 0), (429, 1)]


async def test_fairness_small_tenant_not_starved(tmp_path: Path) -> None:
    """A 1-row tenant after a big, slowly paced tenant finishes long before the big one."""
    big = tenant_id(0)
    rows = [r for r in make_rows(1, 60)] + [(tenant_id(1), make_rows(2, 1)[1][1], "deltaSync")]
    assert rows[-1][0] != big
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(concurrency=4, tenant_rate=TenantRate(20, 1.0), retry=FAST_RETRY)
        out = await run_rows(sim, rows, report, engine=engine)
    position = next(i for i, r in enumerate(out) if r["tenant"] == tenant_id(1))
    assert position < 10, f"the small tenant ended at position {position} of {len(out)}"


async def test_per_tenant_auth_error_fails_only_that_tenant(tmp_path: Path) -> None:
    """AADSTS700016 in one tenant fails its rows with kind auth, once; other tenants go on."""
    rows = make_rows(4, 3)
    bad = tenant_id(2)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), tenant_errors={bad: 700016})
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        stats = await run_batch(sim_config(sim, write_csv(tmp_path / "in.csv", rows), report))
        out = read_report(report)
        bad_requests = sum(n for (t, _g), n in sim.stats.token_requests.items() if t == bad)
    _assert_one_line_per_row(out, 12)
    for r in out:
        if r["tenant"] == bad:
            assert r["status"] == "failed"
            assert r["error"]["kind"] == "auth"
            assert r["error"]["code"] == "AADSTS700016"
            assert r["attempts"] == 0
        else:
            assert r["status"] == "ok"
    assert bad_requests == 1, "a permanent error must not be retried"
    assert bad in stats.failed_tenants


async def test_run_stopping_error_fails_every_row(tmp_path: Path) -> None:
    """A wrong client secret stops the run: every row fails auth and the reason is kept."""
    rows = make_rows(5, 4)
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        report = tmp_path / "r.jsonl"
        config = sim_config(
            sim,
            write_csv(tmp_path / "in.csv", rows),
            report,
            mode=AuthMode.APP,
            auth_overrides={"client_secret": "wrong-secret-value"},
        )
        stats = await run_batch(config)
        out = read_report(report)
        graph_requests = sum(sim.stats.graph_requests.values())
    _assert_one_line_per_row(out, 20)
    assert {r["status"] for r in out} == {"failed"}
    assert {r["error"]["code"] for r in out} == {"AADSTS7000215"}
    assert graph_requests == 0
    assert stats.stop_reason
    assert "secret" in stats.stop_reason.lower()
    assert "wrong-secret-value" not in report.read_text()


async def test_run_stop_wakes_a_tenant_sleeping_out_a_retry_after(tmp_path: Path) -> None:
    """A run-stopping auth error ends a tenant's 120 s Retry-After pause at once: its row
    fails ``auth`` now, not when the pause would have run out."""
    from batchsync._auth import TokenProvider
    from batchsync._engine import run_engine
    from batchsync._graph import GraphClient
    from batchsync._net import open_session
    from batchsync._rows import Row, SyncType
    from batchsync.actions import ACTIONS, DEFAULT_ACTION

    a, b = tenant_id(0), tenant_id(1)
    gate = threading.Event()

    def rows() -> Iterator[Row]:
        yield Row(1, a, connector_id(a, 0), SyncType.DELTA)
        yield Row(2, a, connector_id(a, 1), SyncType.DELTA)
        gate.wait(30)  # on the engine's reader thread: tenant b's row comes later
        yield Row(3, b, connector_id(b, 0), SyncType.DELTA)

    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=1, window_s=120.0))
    async with run_simulator(cfg) as sim:
        config = sim_config(sim, tmp_path / "unused.csv", tmp_path / "r.jsonl")
        outcomes: list[Outcome] = []
        async with (
            TokenProvider(config.auth, config.endpoints, ca_bundle=sim.ca_pem_path) as provider,
            open_session(ca_bundle=sim.ca_pem_path, limit=8, user_agent="t") as session,
        ):

            async def revoke_once_paused() -> None:
                while not sim.stats.throttled[a]:  # noqa: ASYNC110 - polls the simulator
                    await asyncio.sleep(0.01)
                sim.set_config(dataclasses.replace(sim.config, revoked_refresh_tokens=True))
                gate.set()

            async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
                tg.create_task(revoke_once_paused())
                await run_engine(
                    rows(),
                    action=ACTIONS[DEFAULT_ACTION],
                    settings=config.engine,
                    emit=outcomes.append,
                    tokens=provider,
                    graph=GraphClient(session, config.endpoints.graph_base),
                )
    by_line = {o.line: o for o in outcomes}
    assert sorted(by_line) == [1, 2, 3]
    assert by_line[1].status.value == "ok"
    for line in (2, 3):
        error = by_line[line].error
        assert by_line[line].status.value == "failed"
        assert error is not None
        assert (error.kind.value, error.code) == ("auth", "AADSTS700082")


class _StaleUntilInvalidated:
    """Serves a token Graph refuses until the engine invalidates it, then real ones."""

    mode = None  # tokens from elsewhere: 403 messages use the generic hint

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.invalidated: list[str] = []

    async def get(self, tenant: str) -> AccessToken:
        if tenant not in self.invalidated:
            return AccessToken(value="not-a-valid-token", expires_at=1e12, tenant=tenant)
        return await self.inner.get(tenant)  # type: ignore[attr-defined,no-any-return]

    def invalidate(self, token: AccessToken) -> None:
        self.invalidated.append(token.tenant)

    def forget(self, tenant: str) -> None:
        self.inner.forget(tenant)  # type: ignore[attr-defined]


async def test_graph_401_refreshes_token_once(tmp_path: Path) -> None:
    """A Graph 401 makes the row fetch a fresh token and try again; the row ends ok."""
    from batchsync._engine import run_engine
    from batchsync._graph import GraphClient
    from batchsync._net import open_session
    from batchsync._runner import build_items

    rows = make_rows(2, 1)
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), tmp_path / "r.jsonl")
        from batchsync._auth import TokenProvider
        from batchsync.actions import ACTIONS, DEFAULT_ACTION

        outcomes: list[Outcome] = []
        provider = TokenProvider(config.auth, config.endpoints, ca_bundle=sim.ca_pem_path)
        await provider.open()
        tokens = _StaleUntilInvalidated(provider)
        async with open_session(ca_bundle=sim.ca_pem_path, limit=8, user_agent="t") as session:
            with Path(config.input_path).open("rb") as fh:  # noqa: ASYNC230 - a tiny local file
                await run_engine(
                    build_items(config, fh),
                    action=ACTIONS[DEFAULT_ACTION],
                    settings=config.engine,
                    emit=outcomes.append,
                    tokens=tokens,
                    graph=GraphClient(session, config.endpoints.graph_base),
                )
        await provider.aclose()
        assert sim.stats.unauthorized == 2
    assert [o.status.value for o in outcomes] == ["ok", "ok"]
    assert [o.attempts for o in outcomes] == [2, 2]
    assert sorted(tokens.invalidated) == sorted({r[0] for r in rows})


async def test_graph_401_forever_refreshes_once_per_tenant(tmp_path: Path) -> None:
    """Graph refusing every token of a tenant costs one refresh for the tenant, not one per
    row or two: 40 rows, 2 token requests, every row failed ``auth``."""
    tenant = tenant_id(0)
    rows = make_rows(1, 40)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0), refused_token_tenants=frozenset({tenant})
    )
    async with run_simulator(cfg) as sim:
        config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), tmp_path / "r.jsonl")
        async with asyncio.timeout(30):
            await run_batch(config)
        stats = sim.stats.snapshot()
    out = read_report(tmp_path / "r.jsonl")
    _assert_one_line_per_row(out, 40)
    assert Counter((r["status"], r["error"]["kind"]) for r in out) == {("failed", "auth"): 40}
    assert stats.token_requests[(tenant, "refresh_token")] == 2
    assert stats.unauthorized <= 40 + config.engine.concurrency


def test_verbose_logs_one_line_per_attempt(tmp_path: Path) -> None:
    """``-v`` logs each attempt on one line: tenant, connector, status, client-request-id and
    what follows (the pause of a 429), and never a token or a secret."""
    from click.testing import CliRunner

    from batchsync.cli import main
    from batchsync.simulator import start_in_thread

    rows = make_rows(2, 3)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=2, window_s=0.5, retry_after="float"))
    with start_in_thread(cfg) as sim:
        inp = write_csv(tmp_path / "in.csv", rows)
        env: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith(("BATCHSYNC_", "AZURE_"))
        }
        env.update(sim.env(), BATCHSYNC_TOKEN_CACHE=str(tmp_path / "cache.json"))
        args = ["run", str(inp), "-v", "--tenant-rate", "1000/1", "--concurrency", "4"]
        result = CliRunner().invoke(main, args, env=env)
        throttled = sim.stats.snapshot().throttled.total()
    assert result.exit_code == 0, result.stderr
    attempts = [line for line in result.stderr.splitlines() if "client-request-id" in line]
    report = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(attempts) == sum(r["attempts"] for r in report) == len(rows) + throttled
    for r in report:
        ok = [a for a in attempts if r["client_request_id"] in a]
        assert len(ok) == 1, ok
        assert r["tenant"] in ok[0]
        assert r["connector"] in ok[0]
        assert "HTTP 204" in ok[0]
    assert throttled > 0
    assert any("HTTP 429" in a and "pausing the tenant" in a for a in attempts)
    assert sim.refresh_token not in result.stderr
    assert "sim." not in result.stderr  # the simulator's access tokens start with "sim."


async def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    """--dry-run writes planned lines and contacts neither Entra nor Graph."""
    rows = make_rows(3, 2)
    async with run_simulator() as sim:
        report = tmp_path / "r.jsonl"
        config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), report)
        config = dataclasses.replace(
            config, engine=dataclasses.replace(config.engine, dry_run=True)
        )
        stats = await run_batch(config)
        assert sum(sim.stats.token_requests.values()) == 0
        assert sum(sim.stats.graph_requests.values()) == 0
    assert {r["status"] for r in read_report(report)} == {"planned"}
    assert exit_status(stats) == 0


async def test_invalid_and_duplicate_rows_get_lines(tmp_path: Path) -> None:
    """Bad rows become invalid lines, repeats become skipped lines, the rest are synced."""
    t = tenant_id(0)
    good = make_rows(1, 2)
    text = (
        "tenant,connector,syncType\n"
        f"{good[0][0]},{good[0][1]},fullSync\n"
        f"{t},not-a-guid,fullSync\n"
        f"{good[0][0]},{good[0][1]},FULLSYNC\n"
        f"../etc,{good[1][1]},deltaSync\n"
        f"{good[1][0]},{good[1][1]},sometimes\n"
    )
    (tmp_path / "in.csv").write_text(text)
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        report = tmp_path / "r.jsonl"
        stats = await run_batch(sim_config(sim, tmp_path / "in.csv", report))
        assert sum(sim.stats.sync_requests.values()) == 1
    out = sorted(read_report(report), key=lambda r: int(r["line"]))
    assert [r["status"] for r in out] == ["ok", "invalid", "skipped", "invalid", "invalid"]
    assert out[2]["error"]["kind"] == "duplicate"
    assert "connector" in out[1]["error"]["message"]
    assert exit_status(stats) == 1


async def test_interrupt_gives_interrupted_lines(tmp_path: Path) -> None:
    """On interrupt, rows taken in but unfinished get interrupted lines; nothing is lost or torn."""
    rows = make_rows(4, 25)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), graph_latency_s=0.2)
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=4,
            tenant_rate=TenantRate(1000, 1.0),
            retry=RetryPolicy(),
            grace_s=0.05,
            lookahead=10,  # rows not yet read when interrupted get no line
        )
        config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), report, engine=engine)
        stats = RunStats()

        async def interrupt_soon() -> None:
            while stats.statuses.get("ok", 0) < 8:  # noqa: ASYNC110 - polling a plain counter
                await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(interrupt_soon())
            await run_batch(config, stats=stats, handle_signals=True)
        out = read_report(report)
    assert stats.interrupted
    assert exit_status(stats) == 130
    lines = [int(r["line"]) for r in out]
    assert len(lines) == len(set(lines))
    statuses = Counter(r["status"] for r in out)
    assert statuses["ok"] >= 8
    assert statuses["failed"] > 0
    assert {r["error"]["kind"] for r in out if r["status"] == "failed"} == {"interrupted"}
    assert len(out) < 100


@pytest.mark.parametrize("form", ["seconds", "date", "none"])
async def test_retry_after_forms_absorbed(tmp_path: Path, form: str) -> None:
    """Each Retry-After form (and none, Intune's habit) is honoured and every row ends ok."""
    rows = make_rows(2, 6)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=3, window_s=1.0, retry_after=form),  # type: ignore[arg-type]
        faults=FaultConfig(retry_after_s=1.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, backoff_base_s=0.5, backoff_cap_s=2.0),
        )
        out = await run_rows(sim, rows, report, engine=engine)
        throttled = sum(sim.stats.throttled.values())
    assert {r["status"] for r in out} == {"ok"}
    assert throttled > 0


async def test_per_connector_cooldown_is_named(tmp_path: Path) -> None:
    """A connector in cooldown fails throttled, bounded, and the message says it was the object."""
    rows = make_rows(1, 8)
    t, c, _ = rows[0]
    rows.insert(1, (t, c, "fullSync" if rows[0][2] == "deltaSync" else "deltaSync"))
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, connector_cooldown_s=600.0, retry_after="none")
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=1,
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_throttled=2),
        )
        out = await run_rows(sim, rows, report, engine=engine)
    failed = [r for r in out if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["connector"] == c
    assert failed[0]["throttled"] == 3
    assert "per-object cooldown" in failed[0]["error"]["message"]
    assert sum(1 for r in out if r["status"] == "ok") == 8


async def _run_engine_with(
    sim: Simulator,
    tmp_path: Path,
    rows: list[tuple[str, str, str]],
    *,
    clock: Any = None,
    rng: Any = None,
    engine: EngineSettings | None = None,
) -> list[Outcome]:
    """run_engine over real HTTPS to the simulator, with the engine's clock and rng given."""
    from batchsync._connect import connect
    from batchsync._engine import run_engine
    from batchsync._runner import build_items
    from batchsync.actions import ACTIONS, DEFAULT_ACTION

    config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), tmp_path / "r.jsonl")
    if engine is not None:
        config = dataclasses.replace(config, engine=engine)
    outcomes: list[Outcome] = []
    async with connect(config, check_reach=False) as (tokens, graph):
        with Path(config.input_path).open("rb") as fh:  # noqa: ASYNC230 - a tiny local file
            await run_engine(
                build_items(config, fh),
                action=ACTIONS[DEFAULT_ACTION],
                settings=config.engine,
                emit=outcomes.append,
                tokens=tokens,
                graph=graph,
                clock=clock,
                rng=rng,
            )
    return outcomes


async def test_engine_reads_time_only_from_its_clock(tmp_path: Path) -> None:
    """A clock a billion seconds ahead of the loop's changes nothing: pauses, the learned pace
    and idle lanes are all measured on the injected clock, never mixed with another one."""
    loop = asyncio.get_running_loop()
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=3, window_s=0.5, retry_after="float"),
        faults=FaultConfig(retry_after_s=1.0),
    )
    async with run_simulator(cfg) as sim:
        outcomes = await _run_engine_with(
            sim, tmp_path, make_rows(3, 6), clock=lambda: loop.time() + 1e9
        )
        throttled = sum(sim.stats.throttled.values())
        early = sim.stats.requests_during_pause
    assert sorted(o.line for o in outcomes) == list(range(1, 19))
    assert {o.status.value for o in outcomes} == {"ok"}
    assert throttled > 0, "the test must actually throttle"
    assert early == 0  # each announced pause waited out on the injected clock


class _Draws:
    """An rng whose draws are all one value (what ``random.Random.random`` would give)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.value


@pytest.mark.parametrize("draw", [0.0, 0.999])
async def test_engine_draws_every_backoff_from_its_rng(tmp_path: Path, draw: float) -> None:
    """Each retry's jitter comes from the injected rng, once per answer assessed: the run's
    randomness is the caller's to seed (here rows meet 500s and 503s and still end ok)."""
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0),
        faults=FaultConfig(seed=5, http_500=0.3, http_503=0.2),
    )
    rng = _Draws(draw)
    engine = EngineSettings(
        concurrency=8,
        tenant_rate=TenantRate(1000, 1.0),
        retry=RetryPolicy(max_attempts=10, backoff_base_s=0.01, backoff_cap_s=0.05),
        timeout_s=5.0,
    )
    async with run_simulator(cfg) as sim:
        outcomes = await _run_engine_with(sim, tmp_path, make_rows(2, 5), rng=rng, engine=engine)
        answers = sum(sim.stats.sync_requests.values())
    assert {o.status.value for o in outcomes} == {"ok"}
    assert sum(o.attempts for o in outcomes) == answers > 10  # some rows were retried
    assert rng.calls == answers  # one draw per answer, none from anywhere else


async def test_a_pause_longer_than_max_retry_after_holds_the_tenant(tmp_path: Path) -> None:
    """Retry-After 40 s with --max-retry-after 10: the rows end throttled, none is sent into
    the announced pause (each would draw another 429), and the run does not wait it out."""
    rows = make_rows(1, 12)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=5, window_s=20.0, retry_after="seconds"),
        faults=FaultConfig(retry_after_s=40.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=1,
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_retry_after_s=10.0),
        )
        async with asyncio.timeout(30):  # a run that slept out the 40 s would not end here
            await run_batch(
                sim_config(sim, write_csv(tmp_path / "in.csv", rows), report, engine=engine)
            )
        out = read_report(report)
        during = sim.stats.requests_during_pause
        throttled = sum(sim.stats.throttled.values())
    statuses = Counter(r["status"] for r in out)
    assert statuses == {"ok": 5, "failed": 7}
    assert {r["error"]["kind"] for r in out if r["error"]} == {"throttled"}
    assert throttled == 1  # one 429 announced the pause; nothing after it asked for another
    assert during == 0
    unsent = [r for r in out if r["status"] == "failed" and r["attempts"] == 0]
    assert len(unsent) == 6
    assert "longer than --max-retry-after 10 s: not sent" in unsent[0]["error"]["message"]


@pytest.mark.parametrize("form", ["zero", "none"])
async def test_retry_after_zero_gets_the_backoff_of_no_retry_after(
    tmp_path: Path, form: str
) -> None:
    """``Retry-After: 0`` is rested like a 429 without one: no storm of 429s, every row ok, as
    with no header at all."""
    rows = make_rows(1, 15)
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=5, window_s=2.0, retry_after=form),  # type: ignore[arg-type]
        faults=FaultConfig(retry_after_s=0.0),
    )
    async with run_simulator(cfg) as sim:
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(concurrency=4, tenant_rate=TenantRate(1000, 1.0), retry=FAST_RETRY)
        out = await run_rows(sim, rows, report, engine=engine)
        throttled = sum(sim.stats.throttled.values())
    assert {r["status"] for r in out} == {"ok"}
    assert throttled < 40  # without the floor: a retry loop with no rest (195 in the issue)


async def test_an_object_in_cooldown_does_not_starve_its_tenant(tmp_path: Path) -> None:
    """One connector always answers 429 without Retry-After (its own cooldown): it backs off
    alone, bounded, and its 20 siblings of the tenant go on and end ok."""
    rows = make_rows(1, 21)
    c = rows[0][1]
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, connector_cooldown_s=600.0, retry_after="none")
    )
    async with run_simulator(cfg) as sim:
        # The first connector was synced a moment ago: it is in its cooldown for 10 minutes.
        prime = write_csv(tmp_path / "prime.csv", [rows[0]])
        await run_batch(sim_config(sim, prime, tmp_path / "prime.jsonl"))
        report = tmp_path / "r.jsonl"
        engine = EngineSettings(
            concurrency=1,
            tenant_rate=TenantRate(1000, 1.0),
            retry=dataclasses.replace(FAST_RETRY, max_throttled=4),
        )
        async with asyncio.timeout(60):
            await run_batch(
                sim_config(sim, write_csv(tmp_path / "in.csv", rows), report, engine=engine)
            )
        out = read_report(report)
    by_connector = {r["connector"]: r for r in out}
    assert by_connector[c]["status"] == "failed"
    assert by_connector[c]["error"]["kind"] == "throttled"
    assert "per-object cooldown" in by_connector[c]["error"]["message"]
    assert sum(r["status"] == "ok" for r in out) == 20
