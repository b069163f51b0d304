"""Faults end to end: every row ends with the right status and kind, and nothing hangs.

Each scenario runs the real runner (or the CLI) over real HTTPS against the simulator, a
hostile relay in front of it, or a tiny local server; each is bounded by ``asyncio.timeout``
or a subprocess wait, never by a wall-clock assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _support import (
    FAST_RETRY,
    connector_id,
    make_rows,
    posix_only,
    read_report,
    sim_config,
    tenant_id,
    write_csv,
)
from aiohttp import web
from click.testing import CliRunner

from batchsync._auth import AccessToken, AuthMode, AuthSettings, login_device_code
from batchsync._clouds import Endpoints, resolve_endpoints
from batchsync._engine import EngineSettings, run_engine
from batchsync._errors import ConfigError, InputError
from batchsync._graph import GraphClient
from batchsync._input import read_items
from batchsync._net import open_session
from batchsync._pacing import TenantRate
from batchsync._report import Outcome
from batchsync._rows import InputFormat
from batchsync._runner import run_batch
from batchsync._summary import RunStats, exit_status
from batchsync.actions import ACTIONS, DEFAULT_ACTION
from batchsync.cli import main
from batchsync.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    run_simulator,
    start_in_thread,
)

BOUND_S = 30.0  # a run that needs longer than this is hung, not slow
NO_THROTTLE = ThrottleConfig(write_limit=0)


def _engine(**retry: Any) -> EngineSettings:
    return EngineSettings(
        concurrency=8,
        tenant_rate=TenantRate(1000, 1.0),
        retry=dataclasses.replace(FAST_RETRY, **retry),
        timeout_s=5.0,
    )


async def _run(
    sim: Simulator,
    tmp_path: Path,
    rows: list[tuple[str, str, str]],
    *,
    engine: EngineSettings,
    on_outcome: Callable[[Outcome], None] | None = None,
    **config: Any,
) -> tuple[RunStats, list[dict[str, Any]]]:
    """One bounded run; returns its stats and its report, one line per row checked."""
    report = tmp_path / "r.jsonl"
    report.unlink(missing_ok=True)
    run_config = sim_config(sim, write_csv(tmp_path / "in.csv", rows), report, engine=engine)
    run_config = dataclasses.replace(run_config, **config)
    async with asyncio.timeout(BOUND_S):
        stats = await run_batch(run_config, on_outcome=on_outcome)
    out = read_report(report)
    assert sorted(int(r["line"]) for r in out) == list(range(1, len(rows) + 1))
    return stats, out


def _kinds(out: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((r["status"], r["error"]["kind"] if r["error"] else None) for r in out)


# --------------------------------------------------------------------------- hostile relay


class Relay:
    """A TCP relay on 127.0.0.1 in front of the simulator that can turn hostile mid-run.

    Modes for new connections: ``forward`` (relay bytes), ``reset`` (RST at once), ``close``
    (read the TLS ClientHello, then close), ``garbage`` (answer the ClientHello with bytes
    that are not TLS), ``hang`` (accept, then never answer). Turning away from ``forward``
    resets the connections already open.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.mode = "forward"
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            _reset(writer)
        await self._server.wait_closed()

    def turn(self, mode: str) -> None:
        self.mode = mode
        if mode != "forward":
            for writer in list(self._open):
                _reset(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            if self.mode == "reset":
                _reset(writer)
            elif self.mode == "close":
                await reader.read(1024)  # the ClientHello
                writer.close()
            elif self.mode == "garbage":
                await reader.read(1024)  # the ClientHello
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not TLS\r\n" * 4)
                await writer.drain()
                writer.close()
            elif self.mode == "hang":
                await reader.read()  # until the client gives up
            else:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
                self._open.add(up_writer)
                try:
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                finally:
                    self._open.discard(up_writer)
                    _reset(up_writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a middlebox dropping the flow does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()


@contextlib.asynccontextmanager
async def _sim_behind_relay(
    config: SimulatorConfig,
) -> AsyncIterator[tuple[Simulator, Relay]]:
    async with run_simulator(config) as sim:
        port = int(sim.url.rsplit(":", 1)[1])
        async with Relay(port) as relay:
            yield sim, relay


@dataclasses.dataclass(frozen=True, slots=True)
class _GraphVia(Endpoints):
    """Endpoints whose Graph requests go through a middlebox at ``via``.

    The token scope and the preflight keep naming the real Graph root, as they do behind a
    transparent proxy; the simulator's certificate names 127.0.0.1, so TLS to the relay
    verifies as it would to the simulator.
    """

    via: str = ""

    @property
    def graph_base(self) -> str:
        return f"{self.via}/{self.api_version}"


def _via_relay(sim: Simulator, relay: Relay) -> dict[str, Any]:
    """RunConfig overrides: Graph calls through the relay, Entra direct."""
    return {"endpoints": _GraphVia(graph_url=sim.url, authority_host=sim.url, via=relay.url)}


def _relay_as_graph(sim: Simulator, relay: Relay) -> dict[str, Any]:
    """RunConfig overrides: the relay is the Graph root itself (what preflight checks)."""
    return {"endpoints": resolve_endpoints(graph_url=relay.url, authority_host=sim.url)}


# --------------------------------------------------------------------------- drops and resets


async def test_dropped_connections_fail_network_after_max_attempts(tmp_path: Path) -> None:
    """A server that closes every connection without answering fails rows with kind network."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(drop=1.0))
    async with run_simulator(cfg) as sim:
        stats, out = await _run(sim, tmp_path, make_rows(3, 2), engine=_engine(max_attempts=3))
        assert sim.stats.faults["drop"] == 18
    assert _kinds(out) == {("failed", "network"): 6}
    assert {(r["attempts"], r["http_status"], r["throttled"]) for r in out} == {(3, None, 0)}
    assert all("connection" in r["error"]["message"].lower() for r in out)
    assert exit_status(stats) == 1


async def test_occasional_drops_are_retried_to_ok(tmp_path: Path) -> None:
    """Drops on a third of requests are retried: rows end ok, some after several attempts."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(seed=5, drop=0.3))
    async with run_simulator(cfg) as sim:
        _, out = await _run(sim, tmp_path, make_rows(4, 5), engine=_engine(max_attempts=8))
        drops = sim.stats.faults["drop"]
    assert drops > 0
    assert _kinds(out) == {("ok", None): 20}
    assert sum(int(r["attempts"]) - 1 for r in out) == drops


async def test_connections_reset_mid_run_then_network_recovers(tmp_path: Path) -> None:
    """Open connections reset mid-run (and new ones refused with RST for a moment): affected
    rows retry and recover; none is lost, and nothing but ok or network appears."""
    async with _sim_behind_relay(SimulatorConfig(throttle=NO_THROTTLE, graph_latency_s=0.02)) as (
        sim,
        relay,
    ):
        loop = asyncio.get_running_loop()
        oks = 0

        def flap(outcome: Outcome) -> None:
            nonlocal oks
            oks += outcome.status.value == "ok"
            if oks == 5:
                relay.turn("reset")
                loop.call_later(0.3, relay.turn, "forward")

        engine = dataclasses.replace(
            _engine(max_attempts=8, backoff_base_s=0.2, backoff_cap_s=1.0), concurrency=4
        )
        _, out = await _run(
            sim,
            tmp_path,
            make_rows(4, 10),
            engine=engine,
            on_outcome=flap,
            **_via_relay(sim, relay),
        )
    kinds = _kinds(out)
    assert set(kinds) <= {("ok", None), ("failed", "network")}
    recovered = [r for r in out if r["status"] == "ok" and int(r["attempts"]) > 1]
    assert recovered, "the reset must have hit requests that then succeeded on a retry"


@pytest.mark.parametrize("mode", ["garbage", "close"])
async def test_tls_handshake_failure_mid_run_fails_network(tmp_path: Path, mode: str) -> None:
    """A middlebox that starts answering the TLS handshake with garbage, or hanging up on
    it: the rows still running fail network (a TLS error for garbage); none is lost."""
    async with _sim_behind_relay(SimulatorConfig(throttle=NO_THROTTLE, graph_latency_s=0.02)) as (
        sim,
        relay,
    ):
        oks = 0

        def sabotage(outcome: Outcome) -> None:
            nonlocal oks
            oks += outcome.status.value == "ok"
            if oks == 4:
                relay.turn(mode)

        engine = dataclasses.replace(_engine(max_attempts=2), concurrency=2)
        stats, out = await _run(
            sim,
            tmp_path,
            make_rows(3, 8),
            engine=engine,
            on_outcome=sabotage,
            **_via_relay(sim, relay),
        )
    kinds = _kinds(out)
    assert set(kinds) == {("ok", None), ("failed", "network")}
    assert kinds[("ok", None)] >= 4
    assert exit_status(stats) == 1
    if mode == "garbage":
        codes = Counter(r["error"]["code"] for r in out if r["status"] == "failed")
        assert codes["TLSError"] > 0, codes
        tls = next(r for r in out if r["error"] and r["error"]["code"] == "TLSError")
        assert "--ca-bundle" in tls["error"]["message"]


async def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    """A peer that accepts TCP and then says nothing: each attempt ends timeout, run ends."""
    async with _sim_behind_relay(SimulatorConfig(throttle=NO_THROTTLE)) as (sim, relay):

        def hang(outcome: Outcome) -> None:
            relay.turn("hang")

        engine = dataclasses.replace(_engine(max_attempts=2), concurrency=1, timeout_s=0.3)
        _, out = await _run(
            sim, tmp_path, make_rows(2, 2), engine=engine, on_outcome=hang, **_via_relay(sim, relay)
        )
    assert _kinds(out) == {("ok", None): 1, ("failed", "timeout"): 3}
    failed = [r for r in out if r["status"] == "failed"]
    assert {(r["attempts"], r["error"]["code"]) for r in failed} == {(2, "Timeout")}


async def test_slow_answers_past_timeout_some_rows(tmp_path: Path) -> None:
    """Answers slower than --timeout on some requests: those retry; the run ends promptly."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(seed=2, slow=0.3, slow_s=60.0))
    async with run_simulator(cfg) as sim:
        engine = dataclasses.replace(_engine(max_attempts=6), timeout_s=0.3)
        _, out = await _run(sim, tmp_path, make_rows(4, 4), engine=engine)
        slow = sim.stats.faults["slow"]
    assert slow > 0
    assert set(_kinds(out)) <= {("ok", None), ("failed", "timeout")}
    assert sum(int(r["attempts"]) - 1 for r in out if r["status"] == "ok") > 0


# --------------------------------------------------------------------------- DNS


class _FixedTokens:
    """Tokens that never need Entra (the requests fail before any server sees them)."""

    mode = None  # tokens from elsewhere: 403 messages use the generic hint

    async def get(self, tenant: str) -> AccessToken:
        return AccessToken(value="unused", expires_at=1e12, tenant=tenant)

    def invalidate(self, token: AccessToken) -> None:
        pass

    def forget(self, tenant: str) -> None:
        pass


async def test_dns_failure_mid_run_is_kind_network(tmp_path: Path) -> None:
    """A Graph host that does not resolve: every attempt is network/DNSError; the run ends."""
    rows = make_rows(2, 2)
    outcomes: list[Outcome] = []
    settings = _engine(max_attempts=2)
    with write_csv(tmp_path / "in.csv", rows).open("rb") as fh:
        items = read_items(fh, fmt=InputFormat.CSV)
        async with open_session(ca_bundle=None, limit=4, user_agent="test") as session:
            graph = GraphClient(session, "https://nonexistent.invalid/v1.0")
            async with asyncio.timeout(BOUND_S):
                await run_engine(
                    items,
                    action=ACTIONS[DEFAULT_ACTION],
                    settings=settings,
                    emit=outcomes.append,
                    tokens=_FixedTokens(),
                    graph=graph,
                )
    assert [(o.status.value, o.error.kind.value if o.error else None) for o in outcomes] == [
        ("failed", "network")
    ] * 4
    assert {(o.attempts, o.error.code if o.error else None) for o in outcomes} == {(2, "DNSError")}
    assert all(o.error and "nonexistent.invalid" in o.error.message for o in outcomes)


def test_dns_failure_at_preflight_exit_2(tmp_path: Path, simulator_in_thread: Simulator) -> None:
    """A --graph-url whose host does not resolve is a one-line configuration error (exit 2)."""
    sim = simulator_in_thread
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 2))
    env = _runner_env(sim, tmp_path, BATCHSYNC_GRAPH_URL="https://nonexistent.invalid")
    result = CliRunner().invoke(main, ["run", str(inp)], env=env)
    assert result.exit_code == 2, result.output
    assert "cannot reach https://nonexistent.invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    stats = sim.stats.snapshot()
    assert sum(stats.sync_requests.values()) == 0
    # The first tenant's token may be asked for while the endpoints are reached (it goes
    # alone, so at most one), never more; no row is sent.
    assert stats.token_requests.total() <= 1


async def test_tls_garbage_at_preflight_exit_2(tmp_path: Path) -> None:
    """A Graph URL answering garbage instead of TLS stops the run before any row (exit 2)."""
    async with _sim_behind_relay(SimulatorConfig(throttle=NO_THROTTLE)) as (sim, relay):
        relay.turn("garbage")
        config = sim_config(
            sim, write_csv(tmp_path / "in.csv", make_rows(1, 2)), tmp_path / "r.jsonl"
        )
        config = dataclasses.replace(config, **_relay_as_graph(sim, relay))
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(ConfigError, match="TLS") as info:
                await run_batch(config)
        assert info.value.exit_code == 2
        assert sim.stats.sync_requests.total() == 0
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").stat().st_size == 0


async def test_silent_graph_at_preflight_exit_2(tmp_path: Path) -> None:
    """A Graph URL that accepts but never answers stops the run at preflight (exit 2)."""
    async with _sim_behind_relay(SimulatorConfig(throttle=NO_THROTTLE)) as (sim, relay):
        relay.turn("hang")
        config = sim_config(
            sim,
            write_csv(tmp_path / "in.csv", make_rows(1, 2)),
            tmp_path / "r.jsonl",
            engine=dataclasses.replace(_engine(), timeout_s=0.3),
        )
        config = dataclasses.replace(config, **_relay_as_graph(sim, relay))
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(ConfigError, match="no answer") as info:
                await run_batch(config)
        assert info.value.exit_code == 2


# --------------------------------------------------------------------------- 5xx and throttling

_FAULT_OF = {500: "http_500", 502: "http_502", 503: "http_503", 504: "http_504"}
_CODE_OF = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def _always(fault: str) -> dict[str, Any]:
    """FaultConfig keywords that inject ``fault`` into every sync request."""
    return {fault: 1.0}


@pytest.mark.parametrize("form", ["none", "seconds", "date"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_with_and_without_retry_after(tmp_path: Path, status: int, form: str) -> None:
    """5xx without Retry-After (and 500/502 with it) back off per row and end http after
    --max-attempts; 503/504 with Retry-After (seconds or HTTP-date) pause the tenant for
    it, count as throttled and end throttled after --max-throttled."""
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, retry_after="seconds" if form == "none" else form),  # type: ignore[arg-type]
        faults=FaultConfig(
            **_always(_FAULT_OF[status]), retry_after_s=0.01, retry_after_on_5xx=form != "none"
        ),
    )
    async with run_simulator(cfg) as sim:
        stats, out = await _run(
            sim, tmp_path, make_rows(2, 2), engine=_engine(max_attempts=2, max_throttled=1)
        )
        during_pause = sim.stats.requests_during_pause
    throttled = status in (503, 504) and form != "none"
    kind = "throttled" if throttled else "http"
    assert _kinds(out) == {("failed", kind): 4}
    for r in out:
        assert r["http_status"] == status
        assert r["attempts"] == 2
        assert r["throttled"] == (2 if throttled else 0)
        assert r["error"]["code"] == _CODE_OF[status]
    if throttled:
        assert during_pause == 0, "a request was sent while Retry-After held the tenant"
        assert stats.throttled_answers == 8
        assert "--max-throttled" in out[0]["error"]["message"]
    else:
        assert stats.throttled_answers == 0
        assert "--max-attempts" in out[0]["error"]["message"]


async def test_429_storm_longer_than_max_throttled(tmp_path: Path) -> None:
    """A 429 on every request: rows end throttled after --max-throttled + 1 answers, each
    Retry-After honoured, and the run ends."""
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, retry_after="float"),
        faults=FaultConfig(http_429=1.0, retry_after_s=0.05),
    )
    async with run_simulator(cfg) as sim:
        # A short rate window keeps the pace learned from the 429s short too.
        engine = dataclasses.replace(_engine(max_throttled=3), tenant_rate=TenantRate(100, 0.1))
        stats, out = await _run(sim, tmp_path, make_rows(3, 2), engine=engine)
        during_pause = sim.stats.requests_during_pause
        storm = sim.stats.throttled.total()
    assert _kinds(out) == {("failed", "throttled"): 6}
    assert {(r["attempts"], r["throttled"], r["http_status"]) for r in out} == {(4, 4, 429)}
    assert {r["error"]["code"] for r in out} == {"TooManyRequests"}
    assert storm == 24
    assert during_pause == 0
    assert exit_status(stats) == 1


@pytest.mark.parametrize("form", ["seconds", "date"])
@pytest.mark.parametrize("status", [429, 503, 504, 500])
async def test_huge_retry_after_is_never_slept(tmp_path: Path, status: int, form: str) -> None:
    """Retry-After of two hours: throttled answers end the row throttled at once (not after an
    hour of sleep), and the tenant's rows not yet sent are not sent into that pause; on a 500
    it is ignored and the row backs off as usual."""
    fault = "http_429" if status == 429 else _FAULT_OF[status]
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0, retry_after=form),  # type: ignore[arg-type]
        faults=FaultConfig(**_always(fault), retry_after_s=7200.0, retry_after_on_5xx=True),
    )
    async with run_simulator(cfg) as sim:
        _, out = await _run(
            sim, tmp_path, make_rows(2, 2), engine=_engine(max_attempts=2, max_retry_after_s=60.0)
        )
    if status == 500:
        assert _kinds(out) == {("failed", "http"): 4}
        assert {r["attempts"] for r in out} == {2}
    else:
        assert _kinds(out) == {("failed", "throttled"): 4}
        sent = [r for r in out if r["attempts"]]
        assert {(r["attempts"], r["throttled"], r["http_status"]) for r in sent} == {(1, 1, status)}
        assert {r["tenant"] for r in sent} == {r["tenant"] for r in out}  # one answer a tenant
        unsent = [r for r in out if not r["attempts"]]
        assert {(r["throttled"], r["http_status"]) for r in unsent} <= {(0, None)}
        assert all("--max-retry-after" in r["error"]["message"] for r in out)


# --------------------------------------------------------------------------- malformed answers

_GUIDS = [connector_id(tenant_id(90 + i), 0) for i in range(16)]


@dataclasses.dataclass(frozen=True, slots=True)
class _Bad:
    """One malformed answer and how its row must end."""

    status: int
    body: bytes
    expect_kind: str
    expect_attempts: int
    content_type: str = "application/json"
    retry_after: str | None = None
    short_body: bool = False  # promise more bytes than are sent, then close


_BAD_ANSWERS = [
    _Bad(
        500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "http", 2, "text/html"
    ),
    _Bad(502, b"", "http", 2),
    _Bad(503, b"[]", "http", 2),
    _Bad(500, b'{"error": "boom"}', "http", 2),
    _Bad(500, b'{"error": {"code": 5, "message": ["x"]}}', "http", 2),
    _Bad(400, b'{"error": {"code": "Bad', "http", 1),
    _Bad(500, b"\xff\xfe\x00\x81 not utf-8", "http", 2),
    _Bad(500, b"x" * 200_000, "http", 2, "text/plain"),
    _Bad(403, b"null", "http", 1),
    _Bad(503, b"{}", "http", 2, retry_after="soon"),
    _Bad(503, b"{}", "http", 2, retry_after="Fri, 99 Foo 2020 99:99:99 GMT"),
    _Bad(429, b"not json", "throttled", 2, "text/plain", retry_after="-5"),
    _Bad(429, b"{", "throttled", 2, retry_after="nan"),
    _Bad(500, b'{"error": {"code": "X", "message": "cut short', "http", 2, short_body=True),
]


async def test_malformed_answers_end_rows_cleanly(tmp_path: Path) -> None:
    """Error bodies that are not Graph's JSON (HTML, truncated, not UTF-8, huge, wrong shape),
    unreadable Retry-After values and short bodies: each row ends failed with the right kind,
    the right attempt count and a short message; nothing raises or hangs."""
    cases = dict(zip(_GUIDS, _BAD_ANSWERS, strict=False))

    async def answer(request: web.Request) -> web.StreamResponse:
        bad = cases[request.match_info["connector"]]
        headers = {"Retry-After": bad.retry_after} if bad.retry_after else {}
        if bad.short_body:
            resp = web.StreamResponse(status=bad.status, headers=headers)
            resp.content_length = len(bad.body) + 1000
            await resp.prepare(request)
            await resp.write(bad.body)
            assert request.transport is not None
            request.transport.close()
            return resp
        return web.Response(
            status=bad.status, body=bad.body, content_type=bad.content_type, headers=headers
        )

    app = web.Application()
    app.router.add_post("/v1.0/deviceManagement/exchangeConnectors/{connector}/sync", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rows = [(tenant_id(90 + i), guid, "deltaSync") for i, guid in enumerate(cases)]
    outcomes: list[Outcome] = []
    try:
        with write_csv(tmp_path / "in.csv", rows).open("rb") as fh:
            async with open_session(ca_bundle=None, limit=8, user_agent="test") as session:
                async with asyncio.timeout(BOUND_S):
                    await run_engine(
                        read_items(fh, fmt=InputFormat.CSV),
                        action=ACTIONS[DEFAULT_ACTION],
                        settings=_engine(max_attempts=2, max_throttled=1),
                        emit=outcomes.append,
                        tokens=_FixedTokens(),
                        graph=GraphClient(session, f"http://127.0.0.1:{port}/v1.0"),
                    )
    finally:
        await runner.cleanup()
    assert len(outcomes) == len(cases)
    for outcome in outcomes:
        bad = cases[str(outcome.fields["connector"])]
        assert outcome.status.value == "failed", bad
        assert outcome.error is not None
        assert (outcome.error.kind.value, outcome.attempts) == (
            bad.expect_kind,
            bad.expect_attempts,
        ), bad
        if bad.expect_kind != "network":
            assert outcome.http_status == bad.status
        assert 0 < len(outcome.error.message) <= 500
        assert "\ufffd" not in outcome.error.message


async def test_malformed_bodies_from_the_simulator(tmp_path: Path) -> None:
    """The simulator's HTML 500s end rows http with no Graph code and say why."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(malformed=1.0))
    async with run_simulator(cfg) as sim:
        _, out = await _run(sim, tmp_path, make_rows(2, 2), engine=_engine(max_attempts=2))
    assert _kinds(out) == {("failed", "http"): 4}
    for r in out:
        assert (r["http_status"], r["attempts"], r["error"]["code"]) == (500, 2, None)
        assert "not a Graph error" in r["error"]["message"]


# --------------------------------------------------------------------------- the token endpoint


async def test_token_endpoint_down_for_a_while(tmp_path: Path) -> None:
    """Entra answers 503 to each tenant's first two token requests: tokens are retried and
    every row ends ok, one token per tenant in the end."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(token_unavailable_first=2))
    async with run_simulator(cfg) as sim:
        _, out = await _run(sim, tmp_path, make_rows(3, 2), engine=_engine())
        per_tenant = Counter(t for (t, _grant) in sim.stats.token_requests.elements())
    assert _kinds(out) == {("ok", None): 6}
    assert set(per_tenant.values()) == {3}


async def test_token_endpoint_down_for_good_fails_rows_auth(tmp_path: Path) -> None:
    """Entra down longer than the token retries: rows fail auth with Entra's code, no Graph
    request is sent, and the run ends."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, faults=FaultConfig(token_unavailable_first=1000))
    async with run_simulator(cfg) as sim:
        stats, out = await _run(sim, tmp_path, make_rows(2, 3), engine=_engine())
        graph = sim.stats.graph_requests.total()
    assert _kinds(out) == {("failed", "auth"): 6}
    assert {r["error"]["code"] for r in out} == {"AADSTS90033"}
    assert all("HTTP 503" in r["error"]["message"] for r in out)
    assert {r["attempts"] for r in out} == {0}
    assert graph == 0
    assert exit_status(stats) == 1


async def test_token_wait_in_queue_is_not_a_timeout(tmp_path: Path) -> None:
    """Tenants waiting their turn for one of --token-concurrency token slots are not timed out
    meanwhile: each acquisition takes half of --timeout, so every tenant gets its token."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, token_latency_s=0.15)
    async with run_simulator(cfg) as sim:
        engine = dataclasses.replace(_engine(), timeout_s=0.3)
        _, out = await _run(sim, tmp_path, make_rows(20, 1), engine=engine, token_concurrency=1)
    assert _kinds(out) == {("ok", None): 20}


# --------------------------------------------------------------------------- bad input, end to end


async def test_missing_column_exit_2_before_any_request(tmp_path: Path) -> None:
    """A header without a connector column stops a real run before any token or sync request,
    and creates no report."""
    (tmp_path / "in.csv").write_text(f"tenant,syncType\n{tenant_id(0)},fullSync\n")
    async with run_simulator() as sim:
        config = sim_config(sim, tmp_path / "in.csv", tmp_path / "r.jsonl")
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(InputError, match="connector") as info:
                await run_batch(config)
        assert info.value.exit_code == 2
        assert sim.stats.token_requests.total() == 0
        assert sim.stats.discovery_requests.total() == 0
        assert sim.stats.graph_requests.total() == 0
    assert not (tmp_path / "r.jsonl").exists()


_HOSTILE_TENANTS = [
    "../../etc/passwd",
    "contoso.onmicrosoft.com/oauth2/v2.0/token?x=",
    "contoso.onmicrosoft.com#frag",
    "contoso .onmicrosoft.com",
    "%2e%2e%2fcommon",
    "organizations",
    "..",
]
_HOSTILE_CONNECTORS = [
    "../../tenantRelationships/delegatedAdminCustomers",
    "6f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c/../../x",
    "6f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c?$select=id",
    "6f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c#x",
    "6f1c0e2a 4b3d 4c6e 9a7b 0d1e2f3a4b5c",
    "6f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c%2F..",
    "..",
]


async def test_injection_attempts_never_reach_a_url(tmp_path: Path) -> None:
    """Tenants and connectors with path characters are rejected as invalid rows; the
    simulator sees only the valid tenants and connectors, in every URL it was sent."""
    good = make_rows(2, 1)
    t0 = good[0][0]
    rows = list(good)
    rows += [(bad, connector_id(t0, 5), "deltaSync") for bad in _HOSTILE_TENANTS]
    rows += [(t0, bad, "deltaSync") for bad in _HOSTILE_CONNECTORS]
    lines = ["tenant,connector,syncType"] + [
        ",".join('"' + v.replace('"', '""') + '"' for v in row) for row in rows
    ]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    async with run_simulator(SimulatorConfig(throttle=NO_THROTTLE)) as sim:
        report = tmp_path / "r.jsonl"
        async with asyncio.timeout(BOUND_S):
            await run_batch(sim_config(sim, tmp_path / "in.csv", report))
        stats = sim.stats.snapshot()
    out = sorted(read_report(report), key=lambda r: int(r["line"]))
    assert [r["status"] for r in out] == ["ok"] * 2 + ["invalid"] * (len(rows) - 2)
    assert {r["error"]["kind"] for r in out[2:]} == {"input"}
    valid_tenants = {t for t, _, _ in good}
    seen_tenants = (
        {t for t, _ in stats.token_requests}
        | set(stats.discovery_requests)
        | set(stats.graph_requests)
    )
    assert seen_tenants - {"organizations", "common"} <= valid_tenants
    assert {t for t, _ in stats.token_requests} == valid_tenants
    assert {e.connector for e in stats.sync_log} == {c for _, c, _ in good}
    assert stats.unauthorized == 0


async def test_resume_matches_rows_not_line_numbers(tmp_path: Path) -> None:
    """--resume after the input was re-sorted and edited (rows moved, added, re-cased): rows
    already ok are skipped by tenant, connector and syncType, new ones run, lines follow the
    new input, and no connector is synced twice."""
    first = make_rows(3, 4)
    async with run_simulator(SimulatorConfig(throttle=NO_THROTTLE)) as sim:
        report = tmp_path / "r.jsonl"
        config = sim_config(sim, write_csv(tmp_path / "a.csv", first[:8]), report)
        async with asyncio.timeout(BOUND_S):
            await run_batch(config)
        edited = [(t.upper(), c.upper(), s) for t, c, s in reversed(first)]  # all 12, re-sorted
        config = sim_config(sim, write_csv(tmp_path / "b.csv", edited), report, resume=True)
        async with asyncio.timeout(BOUND_S):
            await run_batch(config)
        syncs = sim.stats.syncs
        assert set(syncs.values()) == {1}
        assert len(syncs) == 12
    out = read_report(report)
    assert len(out) == 12
    resumed = out[8:]
    assert {(r["connector"], r["line"]) for r in resumed} == {
        (c, edited.index((t.upper(), c.upper(), s)) + 1) for t, c, s in first[8:]
    }
    assert {r["status"] for r in out} == {"ok"}


async def test_100000_duplicates_sync_once(tmp_path: Path) -> None:
    """100,000 copies of one row: one sync, 99,999 skipped lines naming the first line."""
    row = make_rows(1, 1)[0]
    async with run_simulator(SimulatorConfig(throttle=NO_THROTTLE)) as sim:
        stats, out = await _run(sim, tmp_path, [row] * 100_000, engine=_engine())
        assert sim.stats.sync_requests.total() == 1
    assert _kinds(out) == {("ok", None): 1, ("skipped", "duplicate"): 99_999}
    assert next(r for r in out if r["status"] == "ok")["line"] == 1
    assert all("line 1" in r["error"]["message"] for r in out if r["status"] == "skipped")
    assert exit_status(stats) == 0


def test_utf16_excel_file_through_the_cli(tmp_path: Path, simulator_in_thread: Simulator) -> None:
    """An Excel "Unicode text" export (UTF-16 LE with BOM, tab-separated, CRLF) runs to ok."""
    sim = simulator_in_thread
    sim.set_config(dataclasses.replace(sim.config, throttle=NO_THROTTLE))
    rows = make_rows(2, 2)
    text = "Tenant\tConnector\tsyncType\r\n" + "".join(f"{t}\t{c}\t{s}\r\n" for t, c, s in rows)
    inp = tmp_path / "export.csv"
    inp.write_bytes(text.encode("utf-16"))
    assert inp.read_bytes()[:2] == b"\xff\xfe"
    result = CliRunner().invoke(
        main, ["run", str(inp), "--tenant-rate", "1000/1"], env=_runner_env(sim, tmp_path)
    )
    assert result.exit_code == 0, result.stderr
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["line"], r["tenant"], r["connector"], r["status"]) for r in out) == [
        (i + 1, t, c, "ok") for i, (t, c, _) in enumerate(rows)
    ]


# --------------------------------------------------------------------------- signals and crashes


def _cli_env(sim: Simulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A child's whole environment: the simulator's, and no stray batchsync or Azure value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSYNC_", "AZURE_"))}
    env.update(sim.env())
    env["BATCHSYNC_TOKEN_CACHE"] = str(tmp_path / "token_cache.json")
    env.update(extra)
    return env


def _runner_env(sim: Simulator, tmp_path: Path, **extra: str) -> dict[str, str | None]:
    """``_cli_env`` for CliRunner, which overlays os.environ: stray values are unset."""
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("BATCHSYNC_", "AZURE_"))
    }
    return {**unset, **_cli_env(sim, tmp_path, **extra)}


@contextlib.contextmanager
def _batchsync(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m batchsync`` in a child process (stderr to a file, never a full pipe)."""
    with (tmp_path / "stderr.txt").open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchsync", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=BOUND_S)


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Poll until ``condition`` holds; fail if the child exits or the bound passes first."""
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert proc.poll() is None, "the run ended before the moment the test waits for"
        assert time.monotonic() < deadline, "the moment the test waits for never came"
        time.sleep(0.01)


def _report_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _assert_whole_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the report ends with a torn line"
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture
def slow_graph() -> Iterator[Simulator]:
    """A simulator whose Graph answers take 30 s: requests stay in flight until cancelled."""
    with start_in_thread(SimulatorConfig(throttle=NO_THROTTLE, graph_latency_s=30.0)) as sim:
        yield sim


def test_second_sigint_ends_the_grace_at_once(tmp_path: Path, slow_graph: Simulator) -> None:
    """First Ctrl-C starts a long grace; the second ends it at once: exit 130, every row
    taken in has one whole line, in-flight rows end interrupted."""
    sim = slow_graph
    rows = make_rows(4, 5)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.jsonl"
    args = ["run", str(inp), "-o", str(report), "--grace", "600", "--concurrency", "8"]
    with _batchsync(args, _cli_env(sim, tmp_path), tmp_path) as proc:
        _wait_for(lambda: sim.stats.max_concurrent_graph >= 8, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None, "the first Ctrl-C must leave in-flight requests their grace"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=BOUND_S) == 130
    out = _assert_whole_lines(report)
    assert sorted(int(r["line"]) for r in out) == list(range(1, 21))
    assert _kinds(out) == {("failed", "interrupted"): 20}
    assert "--resume" in out[0]["error"]["message"]
    assert "interrupted" in (tmp_path / "stderr.txt").read_text()


def test_first_sigint_lets_in_flight_finish_and_starts_nothing(tmp_path: Path) -> None:
    """After Ctrl-C, requests already sent finish within the grace (ok); queued rows are
    never sent and end interrupted with 0 attempts; the run then exits 130 by itself."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, graph_latency_s=2.0)
    with start_in_thread(cfg) as sim:
        inp = write_csv(tmp_path / "in.csv", make_rows(4, 5))
        report = tmp_path / "r.jsonl"
        args = ["run", str(inp), "-o", str(report), "--grace", "600", "--concurrency", "8"]
        with _batchsync(args, _cli_env(sim, tmp_path), tmp_path) as proc:
            _wait_for(lambda: sim.stats.max_concurrent_graph >= 8, proc)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=BOUND_S) == 130
        sent = sim.stats.snapshot().sync_requests.total()
    out = _assert_whole_lines(report)
    assert sorted(int(r["line"]) for r in out) == list(range(1, 21))
    assert _kinds(out) == {("ok", None): 8, ("failed", "interrupted"): 12}
    assert {r["attempts"] for r in out if r["status"] == "failed"} == {0}
    assert sent == 8


@posix_only
def test_sigterm_after_grace_gives_interrupted_lines(tmp_path: Path, slow_graph: Simulator) -> None:
    """SIGTERM acts like Ctrl-C: in-flight requests get --grace, then every unfinished row
    gets an interrupted line; exit 130."""
    sim = slow_graph
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 3))
    report = tmp_path / "r.jsonl"
    args = ["run", str(inp), "-o", str(report), "--grace", "0.2"]
    with _batchsync(args, _cli_env(sim, tmp_path), tmp_path) as proc:
        _wait_for(lambda: sim.stats.max_concurrent_graph >= 6, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND_S) == 130
    out = _assert_whole_lines(report)
    assert _kinds(out) == {("failed", "interrupted"): 6}
    assert {r["attempts"] for r in out} == {1}


@contextlib.contextmanager
def _batchsync_on_stdin(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m batchsync run - --format csv`` whose stdin the test writes and holds open."""
    with (tmp_path / "stderr.txt").open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchsync", "run", "-", "--format", "csv", "--grace", "0.1"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=BOUND_S)


def test_trickling_stdin_rows_start_before_the_input_ends(
    tmp_path: Path, simulator_in_thread: Simulator
) -> None:
    """Rows piped in slowly (``discover | run -``) are synced as they arrive, not after 512
    more rows or the end of input; closing stdin then ends the run normally."""
    sim = simulator_in_thread
    rows = make_rows(3, 1)
    with _batchsync_on_stdin(_cli_env(sim, tmp_path), tmp_path) as proc:
        assert proc.stdin is not None
        proc.stdin.write(b"tenant,connector,syncType\n")
        for row in rows:
            proc.stdin.write((",".join(row) + "\n").encode())
            proc.stdin.flush()
        _wait_for(lambda: sim.stats.sync_requests.total() == 3, proc)
        out, _ = proc.communicate(timeout=BOUND_S)  # closes stdin: the end of input
        assert proc.returncode == 0
    assert [orjson.loads(line)["status"] for line in out.splitlines()] == ["ok"] * 3


@posix_only
def test_sigterm_with_stdin_still_open_exits(
    tmp_path: Path, simulator_in_thread: Simulator
) -> None:
    """SIGTERM while stdin is open and silent: the run ends (130) instead of waiting for
    input that never comes, and the interpreter shuts down cleanly."""
    sim = simulator_in_thread
    row = make_rows(1, 1)[0]
    with _batchsync_on_stdin(_cli_env(sim, tmp_path), tmp_path) as proc:
        assert proc.stdin is not None
        proc.stdin.write(f"tenant,connector,syncType\n{','.join(row)}\n".encode())
        proc.stdin.flush()
        _wait_for(lambda: sim.stats.sync_requests.total() == 1, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND_S) == 130
        assert proc.stdout is not None
        assert orjson.loads(proc.stdout.read())["status"] == "ok"
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Fatal Python error" not in stderr
    assert "interrupted" in stderr


@posix_only
def test_sigterm_while_waiting_for_the_first_row_exits_130(
    tmp_path: Path, simulator_in_thread: Simulator
) -> None:
    """SIGTERM before the engine has started (no row yet): exit 130 like Ctrl-C, not 143."""
    with _batchsync_on_stdin(_cli_env(simulator_in_thread, tmp_path), tmp_path) as proc:
        _wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) >= 2, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND_S) == 130
    assert "Fatal Python error" not in (tmp_path / "stderr.txt").read_text()


@posix_only
def test_ctrl_c_while_waiting_for_the_first_row_exits(
    tmp_path: Path, simulator_in_thread: Simulator
) -> None:
    """Ctrl-C while stdin has not sent a single row yet: exit 130, no hang on the read."""
    with _batchsync_on_stdin(_cli_env(simulator_in_thread, tmp_path), tmp_path) as proc:
        # A second thread means asyncio runs and the first read has begun.
        _wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) >= 2, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=BOUND_S) == 130
    assert "Fatal Python error" not in (tmp_path / "stderr.txt").read_text()


def test_interrupt_saves_the_delegated_token_cache(tmp_path: Path, slow_graph: Simulator) -> None:
    """In delegated mode, the tokens acquired before Ctrl-C are written back to the cache."""
    sim = slow_graph
    cache = tmp_path / "token_cache.json"
    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=sim.config.client_id, token_cache_path=str(cache)
    )
    endpoints = resolve_endpoints(graph_url=sim.url, authority_host=sim.url)
    asyncio.run(
        login_device_code(settings, endpoints, ca_bundle=sim.ca_pem_path, echo=lambda _: None)
    )
    before = set(_cached_realms(cache))
    rows = make_rows(3, 1)
    inp = write_csv(tmp_path / "in.csv", rows)
    env = _cli_env(sim, tmp_path)
    del env["BATCHSYNC_REFRESH_TOKEN"]
    args = ["run", str(inp), "-o", str(tmp_path / "r.jsonl"), "--auth", "delegated", "--grace", "0"]
    with _batchsync(args, env, tmp_path) as proc:
        _wait_for(lambda: sim.stats.max_concurrent_graph >= 3, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=BOUND_S) == 130
    tenants = {t for t, _, _ in rows}
    assert not tenants & before
    assert tenants <= set(_cached_realms(cache)), (tmp_path / "stderr.txt").read_text()


def _cached_realms(cache: Path) -> list[str]:
    doc = orjson.loads(cache.read_bytes())
    return [str(entry.get("realm", "")).lower() for entry in doc.get("AccessToken", {}).values()]


@posix_only
def test_kill_9_then_resume_finishes_the_job(tmp_path: Path) -> None:
    """kill -9 mid-run leaves only whole lines (plus, at worst, one torn line, which --resume
    cuts off with a warning); --resume then finishes every row, syncing none twice."""
    cfg = SimulatorConfig(throttle=NO_THROTTLE, graph_latency_s=0.05)
    with start_in_thread(cfg) as sim:
        rows = make_rows(5, 30)
        inp = write_csv(tmp_path / "in.csv", rows)
        report = tmp_path / "r.jsonl"
        args = ["run", str(inp), "-o", str(report), "--concurrency", "4", "--tenant-rate", "1000/1"]
        env = _cli_env(sim, tmp_path)
        with _batchsync(args, env, tmp_path) as proc:
            _wait_for(lambda: _report_lines(report) >= 20, proc)
            proc.kill()
            assert proc.wait(timeout=BOUND_S) == -signal.SIGKILL
        data = report.read_bytes()
        whole, _, torn = data.rpartition(b"\n")
        first = [orjson.loads(line) for line in whole.splitlines()]  # all whole lines parse
        assert torn.count(b"\n") == 0
        assert 20 <= len(first) < len(rows)
        # What a crash in the middle of a write would leave: one torn last line.
        with report.open("ab") as fh:
            fh.write(b'{"line": 9999, "tenant": "' + rows[0][0].encode())
        result = subprocess.run(
            [sys.executable, "-m", "batchsync", "run", *args[1:], "--resume"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert b"torn" in result.stderr
        log = sim.stats.snapshot().sync_log
    out = _assert_whole_lines(report)
    oks = Counter((r["tenant"], r["connector"]) for r in out if r["status"] == "ok")
    assert set(oks) == {(t, c) for t, c, _ in rows}
    assert set(oks.values()) == {1}
    ok_at = {
        r["client_request_id"]: (r["tenant"], r["connector"]) for r in out if r["status"] == "ok"
    }
    _assert_no_sync_after_ok(log, ok_at)


def _assert_no_sync_after_ok(log: list[Any], ok_crids: dict[str, tuple[str, str]]) -> None:
    """No connector was synced (204) again after the sync its ok line reports."""
    reported = {
        e.connector: e.at for e in log if e.status == 204 and e.client_request_id in ok_crids
    }
    assert len(reported) == len(ok_crids), "every ok line matches a 204 the simulator logged"
    again = [e for e in log if e.status == 204 and e.at > reported.get(e.connector, float("inf"))]
    assert not again, again[:3]
