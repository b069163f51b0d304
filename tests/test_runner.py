"""The run's wiring: what is checked before a row is sent, and how the input is read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from _cli_support import FAST, scrub_env
from click.testing import CliRunner

from batchsync.cli import main
from batchsync.simulator import Simulator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/mem")
def test_input_that_cannot_be_read_is_exit_2_naming_it(
    simulator_in_thread: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input whose read fails with EIO (here /proc/self/mem, which answers every read at
    offset 0 that way) is exit 2 with one line naming the file, not an internal error."""
    scrub_env(monkeypatch, tmp_path)
    unreadable = tmp_path / "in.csv"
    os.symlink("/proc/self/mem", unreadable)
    result = CliRunner().invoke(
        main, ["run", str(unreadable), *FAST], env=simulator_in_thread.env()
    )
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "Input/output error" in result.stderr
    assert str(unreadable) in result.stderr
    assert "internal error" not in result.stderr
    assert simulator_in_thread.stats.snapshot().sync_requests.total() == 0
