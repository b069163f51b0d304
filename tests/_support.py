"""Shared helpers for tests that run batchsync against the simulator."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import orjson

from batchsync._auth import AuthMode, AuthSettings
from batchsync._clouds import resolve_endpoints
from batchsync._engine import EngineSettings
from batchsync._pacing import RetryPolicy, TenantRate
from batchsync._runner import RunConfig
from batchsync.simulator import Simulator

NS = uuid.UUID("12345678-1234-5678-1234-567812345678")


def tenant_id(i: int) -> str:
    return str(uuid.uuid5(NS, f"tenant-{i}"))


def connector_id(tenant: str, j: int) -> str:
    return str(uuid.uuid5(NS, f"{tenant}/connector-{j}"))


def make_rows(tenants: int, per_tenant: int) -> list[tuple[str, str, str]]:
    """Rows interleaved across tenants, as a real export would be."""
    rows = []
    for j in range(per_tenant):
        for i in range(tenants):
            t = tenant_id(i)
            rows.append((t, connector_id(t, j), "fullSync" if j % 2 else "deltaSync"))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["tenant,connector,syncType"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_report(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


FAST_RETRY = RetryPolicy(backoff_base_s=0.01, backoff_cap_s=0.2)


def sim_config(
    sim: Simulator,
    input_path: Path | str,
    report: Path | str,
    *,
    mode: AuthMode = AuthMode.REFRESH_TOKEN,
    engine: EngineSettings | None = None,
    **kw: Any,
) -> RunConfig:
    """A RunConfig pointed at the simulator (refresh-token auth by default)."""
    if mode is AuthMode.APP:
        auth = AuthSettings(
            mode=mode, client_id=sim.config.client_id, client_secret=sim.config.client_secret
        )
    else:
        auth = AuthSettings(
            mode=mode, client_id=sim.config.client_id, refresh_token=sim.refresh_token
        )
    auth = dataclasses.replace(auth, **kw.pop("auth_overrides", {}))
    return RunConfig(
        input_path=str(input_path),
        report_path=str(report),
        endpoints=resolve_endpoints(graph_url=sim.url, authority_host=sim.url),
        auth=auth,
        ca_bundle=sim.ca_pem_path,
        engine=engine
        or EngineSettings(
            concurrency=16, tenant_rate=TenantRate(1000, 1.0), retry=FAST_RETRY, timeout_s=5.0
        ),
        **kw,
    )
