"""The live progress bar: on a real terminal (a pseudo-terminal) on stderr, never on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import make_rows, posix_only, write_csv

from batchsync._progress import progress_postfix, show_progress
from batchsync._summary import RunStats
from batchsync.simulator import Simulator, SimulatorConfig, start_in_thread

ROWS = 40
# What the bar draws: rows done/total, rows per second, ETA, then the live counters.
BAR = re.compile(
    rb"(\d+)/40 rows, [\d.?]+ rows/s, ETA [\d:?]+, \d+ tenants? paused, \d+ throttled, \d+ failed"
)
_GUARD_S = 120.0  # only a hang guard: nothing here asserts how long anything takes


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with start_in_thread(SimulatorConfig(graph_latency_s=0.005)) as s:
        yield s


@pytest.fixture
def input_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", make_rows(8, ROWS // 8))


def _command(input_csv: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "batchsync", "run", str(input_csv), *FAST, *extra]


def _env_for(sim: Simulator) -> dict[str, str]:
    return dict(os.environ, **sim.env(), TERM="xterm")


def _run_on_terminal(command: list[str], env: dict[str, str], stdout_path: Path) -> bytes:
    """Run ``command`` with stderr on a new pseudo-terminal and stdout into a file.

    Returns everything the terminal received; asserts the command exited 0.
    """
    import fcntl  # POSIX only, as the tests that call this
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    received = bytearray()
    try:
        with open(stdout_path, "wb") as out:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=slave, env=env
            )
        os.close(slave)
        slave = -1
        guard = time.monotonic() + _GUARD_S
        while time.monotonic() < guard:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if proc.poll() is not None:
                    break  # exited, and nothing left to read
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            received += data
        code = proc.wait(timeout=_GUARD_S)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert code == 0, bytes(received).decode(errors="replace")
    return bytes(received)


def _report_is_clean(path: Path) -> None:
    raw = path.read_bytes()
    assert b"\r" not in raw
    assert BAR.search(raw) is None
    lines = json_lines(raw)
    assert len(lines) == ROWS
    assert {line["status"] for line in lines} == {"ok"}


@posix_only  # a real pty
def test_bar_on_terminal_never_on_stdout(sim: Simulator, input_csv: Path, tmp_path: Path) -> None:
    """On a terminal the bar is drawn on stderr up to 40/40; stdout holds only report lines."""
    report = tmp_path / "stdout.jsonl"
    terminal = _run_on_terminal(_command(input_csv), _env_for(sim), report)
    drawn = [int(m.group(1)) for m in BAR.finditer(terminal)]
    assert drawn, terminal.decode(errors="replace")
    assert drawn[-1] == ROWS  # the last state is drawn before the bar is cleared
    assert b"\r" in terminal  # redrawn in place
    assert b"40 rows: 40 ok" in terminal  # then the summary
    _report_is_clean(report)


@posix_only  # a real pty
def test_no_progress_on_terminal(sim: Simulator, input_csv: Path, tmp_path: Path) -> None:
    """--no-progress keeps the terminal free of the bar; the summary remains."""
    report = tmp_path / "stdout.jsonl"
    terminal = _run_on_terminal(_command(input_csv, "--no-progress"), _env_for(sim), report)
    assert BAR.search(terminal) is None
    assert b"ETA" not in terminal
    assert b"40 rows: 40 ok" in terminal
    _report_is_clean(report)


def test_no_bar_when_stderr_is_not_a_terminal(sim: Simulator, input_csv: Path) -> None:
    """With stderr piped (a log file, CI) there is no bar unless --progress asks for it."""
    proc = subprocess.run(
        _command(input_csv), env=_env_for(sim), capture_output=True, timeout=_GUARD_S, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert BAR.search(proc.stderr) is None
    assert b"ETA" not in proc.stderr
    assert b"40 rows: 40 ok" in proc.stderr
    assert len(json_lines(proc.stdout)) == ROWS
    forced = subprocess.run(
        _command(input_csv, "--progress"),
        env=_env_for(sim),
        capture_output=True,
        timeout=_GUARD_S,
        check=False,
    )
    assert forced.returncode == 0, forced.stderr
    assert BAR.search(forced.stderr) is not None
    assert BAR.search(forced.stdout) is None


@pytest.mark.parametrize(
    ("paused", "text"),
    [(0, "0 tenants paused"), (1, "1 tenant paused"), (3, "3 tenants paused")],
)
def test_postfix_counts(paused: int, text: str) -> None:
    """The counters after the bar: tenants paused now, throttled answers, failed rows."""
    stats = RunStats(throttled_answers=7, paused_tenants=paused)
    stats.statuses.update({"ok": 5, "failed": 2, "invalid": 1})
    assert progress_postfix(stats) == f"{text}, 7 throttled, 3 failed"


async def test_unknown_total_shows_count_rate_elapsed() -> None:
    """Without a total (stdin) the bar shows rows done, the rate and the elapsed time."""
    stats = RunStats()
    stats.statuses["ok"] = 12
    stream = io.StringIO()
    task = asyncio.create_task(show_progress(stats, total=None, stream=stream, interval_s=0.01))
    await asyncio.sleep(0.03)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert re.search(
        r"12 rows, [\d.?]+ rows/s, \d\d:\d\d elapsed, 0 tenants paused", stream.getvalue()
    )
