"""The first second: commands that send nothing load nothing they do not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What only a run (or the simulator) needs: never loaded to print a version, a help page
# or a completion.
HEAVY = ("aiohttp", "msal", "msal_extensions", "tqdm", "cryptography", "requests", "trustme")

_PROBE = """
import json, runpy, sys
sys.argv = ["batchsync", *json.loads(sys.argv[1])]
try:
    runpy.run_module("batchsync", run_name="__main__")
except SystemExit:
    pass
tops = {m.split(".")[0] for m in sys.modules}
simulator = {m for m in sys.modules if m.startswith("batchsync.simulator")}
loaded = sorted(tops | simulator)
print(json.dumps(loaded), file=sys.stderr)
"""


def _modules_loaded(args: list[str], **env: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["run", "--help"], ["discover", "--help"], ["actions"]],
)
def test_commands_that_send_nothing_load_nothing_heavy(args: list[str]) -> None:
    """--version, --help and `actions` import no aiohttp, MSAL, tqdm, cryptography or simulator."""
    loaded = _modules_loaded(args)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not any(m.startswith("batchsync.simulator") for m in loaded)
    assert "asyncio" not in loaded


def test_a_completion_tab_loads_nothing_heavy() -> None:
    """A shell-completion request (a TAB) answers without loading the run's libraries."""
    loaded = _modules_loaded(
        [],
        _BATCHSYNC_COMPLETE="bash_complete",
        COMP_WORDS="batchsync run x.csv --cl",
        COMP_CWORD="3",
    )
    assert not loaded & set(HEAVY)


def test_a_usage_error_loads_nothing_heavy() -> None:
    """A bad option is exit 2 before any of the run's libraries load."""
    loaded = _modules_loaded(["run", "in.csv", "--concurrency", "0"])
    assert not loaded & set(HEAVY)


def test_a_dry_run_loads_no_http_or_sign_in(tmp_path: Path) -> None:
    """A dry run sends nothing, so it pays for neither aiohttp nor MSAL (nor the bar)."""
    source = tmp_path / "in.csv"
    source.write_text(
        "tenant,connector\ncontoso.com,6f2b1c9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f\n", encoding="utf-8"
    )
    report = tmp_path / "report.jsonl"
    loaded = _modules_loaded(["run", str(source), "--dry-run", "-o", str(report)])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert '"status":"planned"' in report.read_text(encoding="utf-8")
