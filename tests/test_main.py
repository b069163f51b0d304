"""The console script's start-up: an ending signal before the run has begun is exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _support import make_rows, write_csv

from batchsync.simulator import Simulator

BOUND_S = 60.0


def _stderr_without_import_times(raw: bytes) -> list[str]:
    return [line for line in raw.decode().splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_importing_exits_130_with_one_line(
    sig: signal.Signals, simulator_in_thread: Simulator, tmp_path: Path
) -> None:
    """SIGINT or SIGTERM while the CLI is still importing its modules (click is in, the
    engine, aiohttp and MSAL are not yet): exit 130 and one line, no traceback, no 143."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSYNC_", "AZURE_"))}
    env.update(simulator_in_thread.env(), BATCHSYNC_TOKEN_CACHE=str(tmp_path / "cache.json"))
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "batchsync", "run", str(inp), "-o", "-"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = []
    try:
        for raw in proc.stderr:  # one line per module, as each import completes
            seen.append(raw)
            if raw.decode().split("|")[-1].strip() == "click":
                proc.send_signal(sig)
                break
        rest = proc.stderr.read()
        code = proc.wait(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = _stderr_without_import_times(b"".join(seen) + rest)
    assert code == 130, lines
    assert lines == ["batchsync: interrupted"]
