"""Memory and back-pressure: bounded, whatever the size of the input.

The full figures (a 1,000,000-row dry run, a 200,000-row run against the simulator) come
from ``benchmarks/memory.py``; these tests keep the same promises small enough for the suite.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _support import posix_only, sim_config

from batchsync._auth import TokenProvider
from batchsync._engine import EngineSettings, run_engine
from batchsync._feed import READ_BATCH as _READ_BATCH
from batchsync._graph import GraphClient
from batchsync._net import open_session
from batchsync._pacing import TenantRate
from batchsync._report import Outcome
from batchsync._rows import Row, SyncType
from batchsync.actions import ACTIONS, DEFAULT_ACTION
from batchsync.simulator import Simulator, SimulatorConfig, ThrottleConfig, run_simulator

PEAK_BOUND_MB = 150.0  # a 100,000-row dry run (measured ~65 MB, of which ~55 MB is imports)
GROWTH_BOUND_MB = 15.0  # from 1,000 to 100,000 rows (measured ~6 MB: the duplicate check)
BOUND_S = 60.0


def _write_rows(path: Path, rows: int) -> Path:
    """A CSV of ``rows`` distinct rows over 500 tenants, written fast (no uuid5 per row)."""
    tenants = [str(uuid.UUID(int=(i + 1) << 64 | 0x4000_8000_0000_0000)) for i in range(500)]
    with path.open("w", encoding="utf-8") as f:
        f.write("tenant,connector,syncType\n")
        f.writelines(
            f"{tenants[i % 500]},{i:08x}-0000-4000-8000-{i:012x},deltaSync\n" for i in range(rows)
        )
    return path


# Runs the CLI and, at exit, writes the process's own peak RSS (VmHWM, in KiB). Not
# ``ru_maxrss`` from wait4: Linux folds into it the RSS of the parent that forked the child
# (the test process, itself ~60 MB), which would hide the child's own growth.
_MEASURED_CLI = """
import atexit, os, runpy, sys

def _write_peak():
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BATCHSYNC_TEST_PEAK_FILE"], "w", encoding="ascii") as out:
        out.write(str(kib))

atexit.register(_write_peak)
runpy.run_module("batchsync", run_name="__main__", alter_sys=True)
"""

pytestmark = posix_only  # /proc and ru_maxrss


def _peak_rss_mb(args: list[str], tmp_path: Path) -> float:
    """Run ``batchsync ARGS`` in a child process to its end; the child's peak RSS in MB."""
    out = tmp_path / "peak.txt"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, *args],
        env=dict(os.environ, BATCHSYNC_TEST_PEAK_FILE=str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=BOUND_S * 4,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return int(out.read_text()) / 1024


def test_dry_run_peak_rss_is_bounded(tmp_path: Path) -> None:
    """A 100,000-row dry run stays under a fixed peak RSS, barely above a 1,000-row one."""
    small = _write_rows(tmp_path / "small.csv", 1_000)
    large = _write_rows(tmp_path / "large.csv", 100_000)
    common = ["--dry-run", "-o", "/dev/null", "-q", "--no-progress"]
    base = _peak_rss_mb(["run", str(small), *common], tmp_path)
    peak = _peak_rss_mb(["run", str(large), *common], tmp_path)
    assert peak < PEAK_BOUND_MB, f"peak RSS {peak:.1f} MB"
    assert peak - base < GROWTH_BOUND_MB, f"{base:.1f} MB -> {peak:.1f} MB"


async def _engine_run(
    sim: Simulator,
    tmp_path: Path,
    items: Iterator[Row],
    settings: EngineSettings,
    emit: Callable[[Outcome], None],
    on_start: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """The engine over real HTTPS against ``sim`` with real tokens, bounded in time."""
    config = sim_config(sim, tmp_path / "unused.csv", tmp_path / "unused.jsonl")
    async with TokenProvider(config.auth, config.endpoints, ca_bundle=sim.ca_pem_path) as tokens:
        async with open_session(ca_bundle=sim.ca_pem_path, limit=16, user_agent="t") as session:
            async with asyncio.timeout(BOUND_S):
                await run_engine(
                    items,
                    action=ACTIONS[DEFAULT_ACTION],
                    settings=settings,
                    emit=emit,
                    tokens=tokens,
                    graph=GraphClient(session, config.endpoints.graph_base),
                    on_start=on_start,
                )


def _rows(tenants: int, per_tenant: int, *, grouped: bool) -> list[Row]:
    names = [str(uuid.UUID(int=(i + 7) << 64 | 0x4000_8000_0000_0000)) for i in range(tenants)]
    pairs = (
        [(t, j) for t in range(tenants) for j in range(per_tenant)]
        if grouped
        else [(t, j) for j in range(per_tenant) for t in range(tenants)]
    )
    return [
        Row(n, names[t], f"{t:08x}-0000-4000-8000-{j:012x}", SyncType.DELTA)
        for n, (t, j) in enumerate(pairs, start=1)
    ]


async def test_reader_is_held_back_by_the_lookahead(tmp_path: Path) -> None:
    """The reader never runs further ahead of finished rows than the look-ahead plus one
    read batch: a slow service holds the input back instead of filling memory."""
    rows = _rows(10, 100, grouped=False)
    pulled = done = widest = 0

    def counted() -> Iterator[Row]:
        nonlocal pulled
        for row in rows:
            pulled += 1
            yield row

    def emit(outcome: Outcome) -> None:
        nonlocal done, widest
        widest = max(widest, pulled - done)
        done += 1
        assert outcome.status.value == "ok"

    lookahead = 16
    settings = EngineSettings(
        concurrency=8, tenant_rate=TenantRate(10_000, 1.0), lookahead=lookahead, timeout_s=10
    )
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), graph_latency_s=0.002)
    async with run_simulator(cfg) as sim:
        await _engine_run(sim, tmp_path, counted(), settings, emit)
    assert done == len(rows)
    # In the engine: the look-ahead; handed over but not yet dispatched: one batch; and the
    # one row the reader thread may be reading when the batch is taken.
    assert widest <= lookahead + _READ_BATCH + 1, f"the reader ran {widest} rows ahead"


async def test_tenant_state_is_dropped_when_its_rows_end(tmp_path: Path) -> None:
    """Input grouped by tenant: each tenant's lane (pace, window, queue) is freed soon after
    its last row ends, so lanes alive at once stay few, and none is left at the end."""
    rows = _rows(60, 4, grouped=True)
    engine: Any = None
    alive: list[int] = []

    def keep_engine(interrupt: Callable[[], None]) -> None:
        nonlocal engine
        engine = getattr(interrupt, "__self__", None)

    def emit(outcome: Outcome) -> None:
        alive.append(len(engine._lanes))

    settings = EngineSettings(
        concurrency=8, tenant_rate=TenantRate(1000, 0.05), lookahead=8, timeout_s=10
    )
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        await _engine_run(sim, tmp_path, iter(rows), settings, emit, on_start=keep_engine)
    assert len(alive) == len(rows)
    assert max(alive) <= 20, f"up to {max(alive)} tenant lanes alive at once of 60"
    assert len(engine._lanes) == 0


async def test_token_state_of_idle_tenants_is_freed(tmp_path: Path) -> None:
    """A tenant idle a whole window gives back its MSAL app and token too, so auth state
    stays bounded on inputs of many tenants (each re-acquires if its rows come back)."""
    rows = _rows(60, 3, grouped=True)
    held: list[int] = []
    settings = EngineSettings(
        concurrency=8, tenant_rate=TenantRate(1000, 0.05), lookahead=8, timeout_s=10
    )
    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        config = sim_config(sim, tmp_path / "unused.csv", tmp_path / "unused.jsonl")
        async with TokenProvider(
            config.auth, config.endpoints, ca_bundle=sim.ca_pem_path
        ) as tokens:
            async with open_session(ca_bundle=sim.ca_pem_path, limit=16, user_agent="t") as s:
                async with asyncio.timeout(BOUND_S):
                    await run_engine(
                        iter(rows),
                        action=ACTIONS[DEFAULT_ACTION],
                        settings=settings,
                        emit=lambda _: held.append(len(tokens._tenants)),
                        tokens=tokens,
                        graph=GraphClient(s, config.endpoints.graph_base),
                    )
        token_requests = sim.stats.token_requests.total()
    assert len(held) == len(rows)
    assert max(held) <= 20, f"auth state of up to {max(held)} tenants held at once, of 60"
    assert token_requests == 60  # grouped input: each tenant's token was still needed once
