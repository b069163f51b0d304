"""Chaos: Ctrl-C at random moments of a faulty run, ``--resume`` each time, then finish.

A real ``python -m batchsync run ... --resume`` child process runs against a simulator with
throttling and faults on; the test interrupts it at a seeded random moment (SIGINT, a
double SIGINT, or SIGTERM, with a random --grace), resumes, and repeats. In the end the one
appended report must hold, for every input row, exactly one final line (``ok`` or
``failed``), an ``ok`` line only as a row's last, and the simulator must never have synced
a connector again after the sync that a report line called ``ok``.

The stalled-reader case does the same with the report on a pipe that the test stops
reading for good: the interrupted run must still end, leave only whole lines, and account
for every row it took in (a line read, or one the run says it gave up); what was read,
finished with ``--resume``, must be the whole job again.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from _support import connector_id, make_rows, posix_only, tenant_id, write_csv

from batchsync.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    SyncEvent,
    ThrottleConfig,
    start_in_thread,
)

SEED = 20_261_125
ITERATIONS = 6
BOUND_S = 60.0  # one child run longer than this is hung

CHAOS = SimulatorConfig(
    graph_latency_s=0.03,
    throttle=ThrottleConfig(write_limit=40, window_s=1.0, retry_after="float"),
    faults=FaultConfig(
        seed=SEED,
        http_500=0.03,
        http_503_retry_after=0.01,
        http_504=0.02,
        drop=0.03,
        slow=0.01,
        slow_s=3.0,
        malformed=0.01,
        http_429=0.01,
        retry_after_s=0.1,
    ),
)

pytestmark = posix_only  # POSIX signals to child processes


def _env(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSYNC_", "AZURE_"))}
    env.update(sim.env())
    env["BATCHSYNC_TOKEN_CACHE"] = str(tmp_path / "token_cache.json")
    return env


def _read(report: Path) -> list[dict[str, Any]]:
    data = report.read_bytes() if report.exists() else b""
    assert not data or data.endswith(b"\n"), "an interrupted run left a torn line"
    return [orjson.loads(line) for line in data.splitlines()]


def _run_child(args: Sequence[str], env: dict[str, str], stderr: Path) -> subprocess.Popen[bytes]:
    with stderr.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "batchsync", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _interrupt_when(
    proc: subprocess.Popen[bytes], report: Path, target_lines: int, how: str, delay_s: float
) -> None:
    """Wait until the report has ``target_lines`` lines (or the child ends), then signal."""
    deadline = time.monotonic() + BOUND_S
    while proc.poll() is None and time.monotonic() < deadline:
        if report.exists() and report.read_bytes().count(b"\n") >= target_lines:
            break
        time.sleep(0.005)
    time.sleep(delay_s)
    if proc.poll() is not None:
        return
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGINT)
        if how == "double":
            time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)


def _key(line: dict[str, Any]) -> tuple[str, str, str]:
    return (line["tenant"], line["connector"], line["syncType"])


def _assert_final_lines(out: list[dict[str, Any]], rows: list[tuple[str, str, str]]) -> None:
    """Every row: one final ok-or-failed line; ok only as the last; lines keep input numbers."""
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in out:
        by_key[_key(r)].append(r)
    assert set(by_key) == set(rows)
    for index, row in enumerate(rows, start=1):
        lines = by_key[row]
        assert {r["line"] for r in lines} == {index}
        assert lines[-1]["status"] in ("ok", "failed"), lines[-1]
        earlier = [r["status"] for r in lines[:-1]]
        assert set(earlier) <= {"failed"}, f"row {index} has a line after its ok: {lines}"


def _assert_no_sync_after_ok(log: list[SyncEvent], out: list[dict[str, Any]]) -> None:
    """No connector saw a 204 after the 204 that its ok line reports."""
    ok_crids = {r["client_request_id"]: r["connector"] for r in out if r["status"] == "ok"}
    reported_at: dict[str, float] = {}
    for event in log:
        if event.status == 204 and event.client_request_id in ok_crids:
            assert ok_crids[event.client_request_id] == event.connector
            reported_at[event.connector] = event.at
    assert len(reported_at) == len(ok_crids), "every ok line matches a sync the simulator saw"
    later = [
        e for e in log if e.status == 204 and e.at > reported_at.get(e.connector, float("inf"))
    ]
    assert not later, f"synced again after an ok line: {later[:3]}"


def _interrupted(
    args: list[str],
    env: dict[str, str],
    stderr: Path,
    report: Path,
    target: int,
    how: str,
    delay_s: float,
) -> int:
    """One run of ``args``, interrupted ``how`` once the report holds ``target`` lines; its exit
    status (the child is killed if it outlives the bound)."""
    proc = _run_child(args, env, stderr)
    try:
        _interrupt_when(proc, report, target, how, delay_s)
        return proc.wait(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _finish(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """The last, uninterrupted run of a job."""
    return subprocess.run(
        [sys.executable, "-m", "batchsync", *args],
        env=env,
        capture_output=True,
        timeout=BOUND_S * 2,
        check=False,
    )


def test_interrupt_resume_chaos(tmp_path: Path) -> None:
    """Random interruptions of a faulty run, each resumed, lose no row and repeat no ok sync."""
    rng = random.Random(SEED)
    rows = make_rows(10, 20)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "report.jsonl"
    stderr = tmp_path / "stderr.txt"
    base = [
        "run", str(inp), "-o", str(report), "--resume",
        "--concurrency", "8", "--tenant-rate", "1000/1", "--timeout", "1",
        "--max-attempts", "4", "--max-throttled", "20",
    ]  # fmt: skip
    codes: Counter[int] = Counter()
    with start_in_thread(CHAOS) as sim:
        env = _env(sim, tmp_path)
        for _ in range(ITERATIONS):
            before = _read(report)
            done = {_key(r) for r in before if r["status"] == "ok"}
            target = len(before) + rng.randint(1, max(1, (len(rows) - len(done)) // 2))
            how = rng.choice(["sigint", "sigint", "double", "sigterm"])
            grace = rng.choice(["0", "0.05", "0.5"])
            args = [*base, "--grace", grace]
            codes[_interrupted(args, env, stderr, report, target, how, rng.uniform(0.0, 0.05))] += 1
            assert set(codes) <= {0, 1, 130}, stderr.read_text()
            # Whole lines only, and one line for each row this run took in: all rows not
            # already ok (the input is shorter than the engine's look-ahead).
            appended = Counter(_key(r) for r in _read(report)[len(before) :])
            assert appended == dict.fromkeys(set(rows) - done, 1)
        final = _finish(base, env)
        log = sim.stats.snapshot().sync_log
    assert final.returncode in (0, 1), final.stderr.decode()
    assert codes[130] >= ITERATIONS // 2, f"too few runs were actually interrupted: {codes}"
    out = _read(report)
    _assert_final_lines(out, rows)
    _assert_no_sync_after_ok(log, out)
    kinds = Counter(r["error"]["kind"] for r in out if r["status"] == "failed")
    assert kinds["interrupted"] > 0, "the interruptions must have cut rows short"


STALLED_ITERATIONS = 4
CALM = ThrottleConfig(write_limit=0)
_GIVEN_UP = re.compile(rb"(\d+) report lines were given up")


def _rows_of(first_tenant: int, tenants: int, per_tenant: int) -> list[tuple[str, str, str]]:
    """Rows of tenants of their own, so that each stalled iteration is a job apart."""
    rows = []
    for j in range(per_tenant):
        for i in range(first_tenant, first_tenant + tenants):
            t = tenant_id(i)
            rows.append((t, connector_id(t, j), "fullSync" if j % 2 else "deltaSync"))
    return rows


def test_stalled_reader_interrupt_resume_chaos(tmp_path: Path) -> None:
    """A report reader that stops reading for good, then SIGINT, a double SIGINT or SIGTERM
    at a random moment of a faulty run: the run ends (130), the pipe holds whole lines, one
    per row at most, and lines read plus lines given up are every row taken in; what was
    read, finished with --resume, completes the job with no ok row synced again."""
    rng = random.Random(SEED + 1)
    with start_in_thread(CHAOS) as sim:
        env = _env(sim, tmp_path)
        for it in range(STALLED_ITERATIONS):
            rows = _rows_of(100 + 10 * it, 10, 30)  # ~120 KB of lines: more than a pipe holds
            inp = write_csv(tmp_path / f"in-{it}.csv", rows)
            report = tmp_path / f"report-{it}.jsonl"
            connectors = {c for _, c, _ in rows}
            how = rng.choice(["sigint", "double", "sigterm"])
            grace = rng.choice(["0", "0.3", "1"])
            moment = rng.randint(1, len(rows))
            args = [
                "run", str(inp), "--grace", grace,
                "--concurrency", "8", "--tenant-rate", "1000/1", "--timeout", "1",
                "--max-attempts", "4", "--max-throttled", "20",
            ]  # fmt: skip
            stderr = tmp_path / f"stderr-{it}.txt"
            with stderr.open("ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "batchsync", *args],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
            assert proc.stdout is not None
            try:
                deadline = time.monotonic() + BOUND_S
                while proc.poll() is None and time.monotonic() < deadline:
                    synced = sim.stats.snapshot().sync_requests
                    if sum(n for t, n in synced.items() if t in {r[0] for r in rows}) >= moment:
                        break
                    time.sleep(0.01)
                proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
                if how == "double":
                    time.sleep(0.05)
                    proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=BOUND_S)  # the reader never reads: must end anyway
                data = proc.stdout.read()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            said = stderr.read_bytes()
            assert code == 130, said.decode()
            assert not data or data.endswith(b"\n"), "a torn line reached the reader"
            read = [orjson.loads(line) for line in data.splitlines()]
            assert len({r["line"] for r in read}) == len(read)
            given_up = _GIVEN_UP.search(said)
            assert given_up is not None, said.decode()
            assert len(read) + int(given_up.group(1)) == len(rows)
            # What the reader got becomes the report; --resume does the rest (faults off:
            # this part checks what the stalled run left, not the faults again).
            report.write_bytes(data)
            chaos = sim.config
            sim.set_config(dataclasses.replace(chaos, faults=FaultConfig(), throttle=CALM))
            final = _finish([*args, "-o", str(report), "--resume"], env)
            sim.set_config(chaos)
            assert final.returncode in (0, 1), final.stderr.decode()
            out = _read(report)
            _assert_final_lines(out, rows)
            log = [e for e in sim.stats.snapshot().sync_log if e.connector in connectors]
            _assert_no_sync_after_ok(log, out)


LONG_PAUSES = SimulatorConfig(
    graph_latency_s=0.02,
    throttle=ThrottleConfig(write_limit=0, retry_after="float"),
    faults=FaultConfig(seed=SEED + 2, http_500=0.02, drop=0.02, http_429=0.05, retry_after_s=1.5),
)
LONG_PAUSE_ITERATIONS = 4


def test_pause_longer_than_max_interrupt_resume_chaos(tmp_path: Path) -> None:
    """429s whose Retry-After (1.5 s) is longer than --max-retry-after (0.5 s), in a faulty
    run interrupted at random moments and resumed: no request ever starts inside a pause
    Graph announced, the rows that cannot wait end throttled (some without being sent), and
    the report still holds one final line per row with no ok row synced again."""
    rng = random.Random(SEED + 2)
    rows = make_rows(8, 15)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "report.jsonl"
    stderr = tmp_path / "stderr.txt"
    base = [
        "run", str(inp), "-o", str(report), "--resume",
        "--concurrency", "8", "--tenant-rate", "1000/1", "--timeout", "1",
        "--max-attempts", "4", "--max-retry-after", "0.5",
    ]  # fmt: skip
    codes: Counter[int] = Counter()
    with start_in_thread(LONG_PAUSES) as sim:
        env = _env(sim, tmp_path)
        for _ in range(LONG_PAUSE_ITERATIONS):
            before = _read(report)
            target = len(before) + rng.randint(1, len(rows) // 3)
            how = rng.choice(["sigint", "double", "sigterm"])
            args = [*base, "--grace", rng.choice(["0", "0.2"])]
            codes[_interrupted(args, env, stderr, report, target, how, rng.uniform(0.0, 0.05))] += 1
            assert set(codes) <= {0, 1, 130}, stderr.read_text()
            # A new process cannot know the pauses the last one was told: let them end, so
            # that a request inside one is this engine's doing.
            time.sleep(1.6)
        final = _finish(base, env)
        stats = sim.stats.snapshot()
    assert final.returncode in (0, 1), final.stderr.decode()
    out = _read(report)
    _assert_final_lines(out, rows)
    _assert_no_sync_after_ok(stats.sync_log, out)
    assert stats.requests_during_pause == 0
    throttled = [r for r in out if r["error"] and r["error"]["kind"] == "throttled"]
    assert throttled, "some rows must have met a pause longer than --max-retry-after"
    assert any(r["attempts"] == 0 for r in throttled), "a row that cannot wait is not sent"
