"""Shared helpers for tests that run batchsync against the simulator."""

from __future__ import annotations

import dataclasses
import datetime
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from batchsync._auth import AuthMode, AuthSettings
from batchsync._clouds import resolve_endpoints
from batchsync._engine import EngineSettings
from batchsync._pacing import RetryPolicy, TenantRate
from batchsync._runner import RunConfig, run_batch
from batchsync.simulator import Simulator

# Tests of POSIX signals, process groups, /proc, ptys or file modes: not run on Windows
# (the CI matrix file runs the rest there).
posix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals, /proc, ptys or file modes"
)

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


def client_certificate_pem(path: Path, *, password: str | None = None) -> bytes:
    """Write a PEM with an RSA key (encrypted with ``password``) and its self-signed
    certificate, as ``--certificate`` takes it; returns the certificate's PEM (to register)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchsync-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key_pem + cert_pem)
    return cert_pem


async def run_rows(
    sim: Simulator,
    rows: list[tuple[str, str, str]],
    report: Path,
    *,
    engine: EngineSettings | None = None,
) -> list[dict[str, Any]]:
    """``rows`` (written to ``in.csv`` beside ``report``) run against the simulator; the
    report's lines."""
    await run_batch(
        sim_config(sim, write_csv(report.with_name("in.csv"), rows), report, engine=engine)
    )
    return read_report(report)
