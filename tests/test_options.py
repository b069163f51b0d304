"""The CLI's process plumbing: what reaches stderr, and from whom."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import make_rows, write_csv

from batchsync._options import setup_logging
from batchsync.simulator import FaultConfig, SimulatorConfig, ThrottleConfig, start_in_thread


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A scrubbed environment, and the logging configuration of the process put back."""
    scrub_env(monkeypatch, tmp_path)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def test_quiet_run_absorbing_a_non_json_token_answer_prints_nothing(tmp_path: Path) -> None:
    """A gateway's 429 with an empty body on the token endpoint (MSAL logs its traceback) is
    retried; with -q and every row ok, stderr stays empty (a child process: under pytest a
    logger without a handler would not reach stderr at all)."""
    cfg = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0), faults=FaultConfig(token_gateway_429_first=1)
    )
    with start_in_thread(cfg) as sim:
        inp = write_csv(tmp_path / "in.csv", make_rows(2, 1))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHSYNC_", "AZURE_"))}
        env.update(sim.env(), BATCHSYNC_TOKEN_CACHE=str(tmp_path / "cache.json"))
        proc = subprocess.run(
            [sys.executable, "-m", "batchsync", "run", str(inp), "-q", *FAST],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        gateway_429s = sim.stats.snapshot().token_requests.total() - 2
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in json_lines(proc.stdout)] == ["ok", "ok"]
    assert gateway_429s == 2
    assert proc.stderr.decode() == ""


def test_third_party_records_are_one_batchsync_line_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Third-party loggers speak only with -v, through batchsync's handler: one line with
    the logger's name, never a traceback; -q and the default keep them silent."""

    def emit() -> None:
        try:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        except ValueError:
            logging.getLogger("msal.oauth2cli.oauth2").exception(
                "Token response is not in json format: %s", "<html>\n<body>busy</body>"
            )
        logging.getLogger("asyncio").warning("an asyncio warning")

    for verbose, quiet in ((0, True), (0, False)):
        setup_logging(verbose, quiet)
        emit()
        assert capsys.readouterr().err == ""
    setup_logging(1, False)
    emit()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("batchsync: ")
    assert "msal.oauth2cli.oauth2" in lines[0]
    assert "not in json format" in lines[0]
    assert "asyncio" in lines[1]
