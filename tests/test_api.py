"""The Python API: ``batchsync.run(rows, settings)`` yields one outcome per row."""

from __future__ import annotations

import dataclasses

import pytest
from _support import make_rows, tenant_id

import batchsync
from batchsync.simulator import Simulator, SimulatorConfig, ThrottleConfig, run_simulator


def _settings(sim: Simulator, **engine: object) -> batchsync.Settings:
    return batchsync.Settings(
        auth=batchsync.AuthSettings(
            mode=batchsync.AuthMode.APP,
            client_id=sim.config.client_id,
            client_secret=sim.config.client_secret,
        ),
        endpoints=batchsync.resolve_endpoints(graph_url=sim.url, authority_host=sim.url),
        ca_bundle=sim.ca_pem_path,
        engine=dataclasses.replace(
            batchsync.EngineSettings(tenant_rate=batchsync.TenantRate(1000, 1.0)),
            **engine,  # type: ignore[arg-type]
        ),
    )


async def test_run_yields_one_outcome_per_row() -> None:
    """Mappings and Row objects go in; one typed Outcome per row comes out, as rows end."""
    rows = make_rows(3, 2)
    mappings = [{"tenantId": t, "connectorId": c, "syncType": s} for t, c, s in rows]
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        async with batchsync.run(mappings, _settings(sim)) as outcomes:
            got = [o async for o in outcomes]
    assert sorted(o.line for o in got) == list(range(1, 7))
    assert {o.status for o in got} == {batchsync.Status.OK}
    assert {o.fields["tenant"] for o in got} == {tenant_id(i) for i in range(3)}


async def test_run_reports_bad_and_duplicate_rows() -> None:
    """A bad mapping comes back invalid and a repeat skipped, as in a file run."""
    ((t, c, _),) = make_rows(1, 1)
    rows: list[object] = [
        {"tenant": t, "connector": c},
        {"tenant": t, "connector": "nope"},
        {"tenant": t, "connector": c},
    ]
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        async with batchsync.run(rows, _settings(sim)) as outcomes:  # type: ignore[arg-type]
            got = sorted([o async for o in outcomes], key=lambda o: o.line)
    assert [o.status.value for o in got] == ["ok", "invalid", "skipped"]
    assert got[1].error is not None
    assert got[1].error.kind is batchsync.ErrorKind.INPUT


async def test_leaving_early_cancels_cleanly() -> None:
    """Breaking out of the loop ends the run without hanging or leaking tasks."""
    rows = make_rows(5, 40)
    mappings = [{"tenant": t, "connector": c} for t, c, _ in rows]
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), graph_latency_s=0.05)
    async with run_simulator(cfg) as sim:
        async with batchsync.run(mappings, _settings(sim, concurrency=2)) as outcomes:
            async for _ in outcomes:
                break
        assert sum(sim.stats.sync_requests.values()) < 200


async def test_bad_settings_fail_before_sending() -> None:
    """Settings that cannot work raise ConfigError before any request."""
    settings = batchsync.Settings(auth=batchsync.AuthSettings(mode=batchsync.AuthMode.APP))
    with pytest.raises(batchsync.ConfigError, match="client id"):
        async with batchsync.run([], settings):
            pass
