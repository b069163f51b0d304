"""Report lines off the event loop: a stalled reader slows the intake, never the run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _support import make_rows, write_csv

from batchsync._errors import ErrorKind, ReportWriteError
from batchsync._report import Outcome, ReportWriter, Status
from batchsync._writer import LineWriter
from batchsync.simulator import Simulator, SimulatorConfig, ThrottleConfig, start_in_thread

BOUND_S = 60.0  # longer than this is hung, not slow


def _outcome(line: int) -> Outcome:
    fields = {"tenant": "contoso.onmicrosoft.com", "connector": f"c-{line}", "syncType": "fullSync"}
    return Outcome(line=line, fields=fields, status=Status.OK, started_at=1.0, finished_at=2.0)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe (read end, write end); whichever end a test leaves open is closed after it."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def _drain(fd: int) -> bytes:
    """Everything the pipe holds until its write end is closed (on a thread of its own)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_lines_reach_a_pipe_whole_and_in_order(pipe: tuple[int, int]) -> None:
    """Lines handed over one by one and in batches arrive in that order, each whole."""
    r, w = pipe
    lines = LineWriter(ReportWriter(w, name="pipe", owns_fd=True), grace_s=0)
    reader = asyncio.create_task(asyncio.to_thread(_drain, r))
    for n in range(1, 2001, 4):
        lines.write(_outcome(n))
        lines.write_many([_outcome(n + 1), _outcome(n + 2), _outcome(n + 3)])
        await lines.room()
    async with asyncio.timeout(BOUND_S):
        assert await lines.finish() == 0
    lines.close()
    data = await reader
    assert [orjson.loads(x)["line"] for x in data.splitlines()] == list(range(1, 2001))


class _RecordingWriter(ReportWriter):
    """A pipe's writer that keeps each write's bytes and line count."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, name="pipe", owns_fd=True)
        self.writes: list[tuple[bytes, int]] = []

    def write_bytes(self, data: bytes | bytearray | memoryview, *, lines: int = 1) -> None:
        self.writes.append((bytes(data), lines))
        super().write_bytes(data, lines=lines)


async def test_batches_to_a_pipe_split_only_between_lines_within_pipe_buf(
    pipe: tuple[int, int],
) -> None:
    """Chunks of many lines go out in writes of whole lines of at most PIPE_BUF bytes (a
    line longer than that alone), each counting its own lines, all in order."""
    r, w = pipe
    recorder = _RecordingWriter(w)
    lines = LineWriter(recorder, grace_s=0)
    reader = asyncio.create_task(asyncio.to_thread(_drain, r))
    long_line = Outcome(
        line=0, fields={"tenant": "x" * 9000}, status=Status.OK, started_at=1.0, finished_at=1.0
    )
    lines.write_many([_outcome(n) for n in range(1, 301)])
    lines.write(long_line)
    lines.write_many([_outcome(n) for n in range(301, 330)])
    lines.write_many([_outcome(n) for n in range(330, 1000)])
    async with asyncio.timeout(BOUND_S):
        assert await lines.finish() == 0
    lines.close()
    data = await reader
    docs = [orjson.loads(x) for x in data.splitlines()]
    assert [d["line"] for d in docs] == [*range(1, 301), 0, *range(301, 1000)]
    limit = getattr(select, "PIPE_BUF", 512)
    for chunk, count in recorder.writes:
        assert chunk.endswith(b"\n")
        assert chunk.count(b"\n") == count
        assert len(chunk) <= limit or count == 1
    assert sum(count for _, count in recorder.writes) == recorder.lines_written == 1000
    assert len(recorder.writes) > 1000 * 200 // limit // 2  # really split, not one write


async def test_a_stalled_reader_holds_room_not_the_loop(pipe: tuple[int, int]) -> None:
    """With the reader stalled, handing lines over never blocks and room() waits; once it
    reads again, room() returns and every line arrives."""
    r, w = pipe
    lines = LineWriter(ReportWriter(w, name="pipe", owns_fd=True), grace_s=0, max_queued=64)
    for n in range(1, 1001):  # far more than the pipe holds: the writer thread is stuck
        lines.write(_outcome(n))
    ticks = 0
    room = asyncio.create_task(lines.room())
    while ticks < 20:  # the loop goes on while the writer is stuck
        await asyncio.sleep(0.01)
        ticks += 1
    assert not room.done()
    reader = asyncio.create_task(asyncio.to_thread(_drain, r))
    async with asyncio.timeout(BOUND_S):
        await room
        assert await lines.finish() == 0
    lines.close()
    assert len((await reader).splitlines()) == 1000


async def test_interrupted_with_a_stalled_reader_gives_lines_up(pipe: tuple[int, int]) -> None:
    """A reader that never drains: after an interruption, once the grace is over and the
    writer stuck, the lines not written are given up and counted; nothing torn is left."""
    r, w = pipe
    lines = LineWriter(ReportWriter(w, name="pipe", owns_fd=True), grace_s=0.2)
    for n in range(1, 1001):
        lines.write(_outcome(n))
    lines.interrupt()
    async with asyncio.timeout(BOUND_S):
        lost = await lines.finish()
    lines.close()
    os.set_blocking(r, False)
    data = b""
    while True:
        try:
            chunk = os.read(r, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    assert data.endswith(b"\n")
    written = data.splitlines()
    assert [orjson.loads(x)["line"] for x in written] == list(range(1, len(written) + 1))
    # The write stuck at the give-up may still complete once the pipe has room: its lines
    # count as given up, and reach the reader whole, or not at all.
    assert 0 < 1000 - len(written) <= lost
    assert lines.given_up == lost


async def test_second_interrupt_gives_up_at_once(pipe: tuple[int, int]) -> None:
    """A second interruption does not wait for the grace (here an hour) to run out."""
    _, w = pipe
    lines = LineWriter(ReportWriter(w, name="pipe", owns_fd=True), grace_s=3600)
    for n in range(1, 1001):
        lines.write(_outcome(n))
    lines.interrupt()
    finishing = asyncio.create_task(lines.finish())
    await asyncio.sleep(0.2)
    assert not finishing.done()
    lines.interrupt()
    async with asyncio.timeout(BOUND_S):
        assert await finishing > 0
    lines.close()


async def test_closed_pipe_surfaces_as_report_write_error(pipe: tuple[int, int]) -> None:
    """The reader closing the pipe is a ReportWriteError from the next hand-over, room() or
    finish(), naming -o and --resume."""
    r, w = pipe
    os.close(r)
    lines = LineWriter(ReportWriter(w, name="pipe", owns_fd=True), grace_s=0)
    lines.write(_outcome(1))
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(ReportWriteError, match="closed the pipe"):
            await lines.finish()
    with pytest.raises(ReportWriteError):
        lines.write(_outcome(2))
    with pytest.raises(ReportWriteError):
        await lines.room()
    lines.close()


# --------------------------------------------------------------------------- a real run


def _env(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSYNC_", "AZURE_"))}
    env.update(sim.env(), BATCHSYNC_TOKEN_CACHE=str(tmp_path / "cache.json"))
    return env


def _child(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    """``python -m batchsync`` with its report on a pipe the test reads when it likes."""
    with (tmp_path / "stderr.txt").open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "batchsync", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )


def _whole_lines(data: bytes) -> list[dict[str, Any]]:
    assert not data or data.endswith(b"\n"), "a torn line reached the reader"
    return [orjson.loads(line) for line in data.splitlines()]


def test_stalled_reader_never_turns_answers_into_timeouts(tmp_path: Path) -> None:
    """The report's reader stops for longer than --timeout after the first line: requests,
    timers and answers go on meanwhile, so every row is ok at its first attempt and no
    connector is synced twice; every line then arrives."""
    rows = make_rows(4, 100)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), graph_latency_s=0.1)
    with start_in_thread(cfg) as sim:
        inp = write_csv(tmp_path / "in.csv", rows)
        args = ["run", str(inp), "--timeout", "2", "--concurrency", "16", "--tenant-rate", "1000/1"]
        proc = _child(args, _env(sim, tmp_path), tmp_path)
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline()
            time.sleep(4)  # the reader stalls: the pipe fills, batchsync must go on
            rest = proc.stdout.read()
            assert proc.wait(timeout=BOUND_S) == 0, (tmp_path / "stderr.txt").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        syncs = sim.stats.snapshot().syncs
    out = _whole_lines(first + rest)
    assert sorted(r["line"] for r in out) == list(range(1, len(rows) + 1))
    assert Counter((r["status"], r["attempts"]) for r in out) == {("ok", 1): len(rows)}
    assert set(syncs.values()) == {1}


def test_second_sigint_ends_a_run_whose_reader_never_reads(tmp_path: Path) -> None:
    """Every row synced, the reader stalled for good: Ctrl-C twice ends the run at once
    (exit 130, whole lines only in the pipe), and the lines given up are said on stderr."""
    rows = make_rows(4, 100)
    with start_in_thread(SimulatorConfig(throttle=ThrottleConfig(write_limit=0))) as sim:
        inp = write_csv(tmp_path / "in.csv", rows)
        args = ["run", str(inp), "--grace", "600", "--tenant-rate", "1000/1"]
        proc = _child(args, _env(sim, tmp_path), tmp_path)
        assert proc.stdout is not None
        try:
            deadline = time.monotonic() + BOUND_S
            while sim.stats.snapshot().syncs.total() < len(rows):
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=BOUND_S)
            data = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 130, stderr
    out = _whole_lines(data)
    assert 0 < len(out) < len(rows)
    assert len({r["line"] for r in out}) == len(out)
    assert {r["status"] for r in out} == {"ok"}
    assert f"{len(rows) - len(out)} report lines were given up" in stderr
    assert "Traceback" not in stderr


def test_thread_is_a_daemon_so_a_stuck_write_never_holds_the_exit(pipe: tuple[int, int]) -> None:
    """The writer thread is a daemon: one stuck in a write cannot keep the process alive."""

    async def start() -> bool:
        lines = LineWriter(ReportWriter(pipe[1], name="pipe", owns_fd=False), grace_s=0)
        daemon = all(t.daemon for t in threading.enumerate() if t.name == "batchsync-report")
        lines.close()
        return daemon

    assert asyncio.run(start())


def test_report_write_error_kind_is_not_a_row_kind() -> None:
    """A report that cannot be written is no row's failure (it has no ErrorKind)."""
    assert ReportWriteError.kind is None
    assert "report" not in {k.value for k in ErrorKind}
