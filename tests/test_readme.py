"""The README stays true: its commands, options, output and jq recipes match the program."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from _cli_support import ENV_NAMES
from _support import make_rows, posix_only, tenant_id, write_csv
from click.testing import CliRunner

from batchsync.cli import main
from batchsync.simulator import SimulatorConfig, ThrottleConfig, start_in_thread

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    """The README's fenced code blocks of one language ("" for a bare fence), in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    fence_lang = ""
    for line in README.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            if current is None:
                current, fence_lang = [], stripped[3:]
            else:
                if fence_lang == lang:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line.strip() if lang == "sh" else line)
    return blocks


def _readme_commands() -> list[str]:
    return [line for line in _blocks("sh")[0].splitlines() if line.strip()]


def test_readme_opens_with_two_commands() -> None:
    """The README's first code block is the demo line and the test line."""
    demo, tests = _readme_commands()
    assert demo.endswith("batchsync demo")
    assert "'.[test]'" in tests
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command, character for character."""
    _, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci


def _as_pattern(line: str) -> re.Pattern[str]:
    """A README output line with its numbers (and the port) left free."""
    parts = re.split(r"\d+(?:\.\d+)?", line)
    return re.compile(r"[\d.]+".join(re.escape(p) for p in parts) + r"$")


def test_demo_prints_what_the_readme_shows() -> None:
    """`batchsync demo` prints the README's stderr lines (numbers aside) and contract lines."""
    shown = _blocks("")[0].strip().splitlines()
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.stderr
    printed = result.stderr.strip().splitlines()
    assert len(printed) == len(shown), printed
    for want, got in zip(shown, printed, strict=True):
        assert _as_pattern(want).match(got), (want, got)
    sample = orjson.loads(_blocks("json")[0])
    for line in result.stdout.splitlines():
        doc = orjson.loads(line)
        assert list(doc) == list(sample)
        assert doc["status"] == "ok"


def _batchsync_lines() -> list[list[str]]:
    """Every `batchsync ...` command in the README's shell blocks, as words (pipes split)."""
    out = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            lex = shlex.shlex(line, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            words = list(lex)
            command: list[str] = []
            for word in [*words, "|"]:
                if word in ("|", "&&", ";", ">", "<"):
                    if command[:1] == ["batchsync"] and len(command) > 1:
                        out.append(command[1:])
                    command = []
                else:
                    command.append(word)
    return out


def test_every_readme_option_exists() -> None:
    """Each `batchsync CMD --option` the README shows is an option of that command."""
    commands = _batchsync_lines()
    assert len(commands) >= 5
    for words in commands:
        command = words[0]
        help_text = CliRunner().invoke(main, [command, "--help"]).output
        for word in words[1:]:
            if word.startswith("-") and word != "-":
                assert word in help_text, f"`batchsync {' '.join(words)}`: {word} unknown"


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_recipes_run_on_a_real_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every jq recipe of the README runs on a real report; failed rows become a valid input."""
    rows = make_rows(4, 3)
    bad = tenant_id(1)
    cfg = SimulatorConfig(throttle=ThrottleConfig(write_limit=0), tenant_errors={bad: 65001})
    for name in ("BATCHSYNC_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "BATCHSYNC_TOKEN_CACHE"):
        monkeypatch.delenv(name, raising=False)
    with start_in_thread(cfg) as sim:
        inp = write_csv(tmp_path / "in.csv", rows)
        report = tmp_path / "report.jsonl"
        result = CliRunner().invoke(main, ["run", str(inp), "-o", str(report)], env=sim.env())
    assert result.exit_code == 1, result.stderr
    recipes = [
        line
        for block in _blocks("sh")
        for line in block.splitlines()
        if line.startswith("jq ") and "report.jsonl" in line
    ]
    assert len(recipes) >= 5
    for recipe in recipes:
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", recipe],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, (recipe, proc.stderr)
    retry = tmp_path / "retry.jsonl"
    failed = [orjson.loads(x) for x in retry.read_bytes().splitlines()]
    assert {r["tenant"] for r in failed} == {bad}
    again = CliRunner().invoke(main, ["run", str(retry), "--dry-run"])
    assert again.exit_code == 0, again.output
    assert len(again.stdout.splitlines()) == 3


def _rehearsal() -> str:
    """The README's shell block that starts `batchsync simulator` (the quick start rehearsal)."""
    (block,) = [b for b in _blocks("sh") if b.startswith("batchsync simulator ")]
    return block


@posix_only
def test_quick_start_runs_verbatim_against_the_simulator(tmp_path: Path) -> None:
    """The README's rehearsal (simulator, login, discover, check, run, report) runs as written."""
    script = _rehearsal()
    for step in (
        "batchsync login\n",
        "batchsync discover --gdap --connected-only -o connectors.jsonl\n",
        "batchsync run connectors.jsonl --dry-run --check -o check.jsonl\n",
        "batchsync run connectors.jsonl -o report.jsonl\n",
    ):
        assert step in script  # the quick start's own commands, character for character
    script = script.replace("--port 8443", "--port 0")  # a free port, not a fixed one
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["BATCHSYNC_TOKEN_CACHE"] = str(tmp_path / "token-cache.json")
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the simulator goes with it
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, stderr.decode()
    assert "signed in as" in stderr.decode()
    assert "(4 not connected left out)" in stderr.decode()
    connectors = [
        orjson.loads(x) for x in (tmp_path / "connectors.jsonl").read_bytes().splitlines()
    ]
    assert len(connectors) == 24
    assert {r["status"] for r in connectors} == {"connected"}
    assert {
        orjson.loads(x)["status"] for x in (tmp_path / "check.jsonl").read_bytes().splitlines()
    } == {"planned"}
    shown = next(b for b in _blocks("text") if b.startswith("batchsync report: "))
    printed = stdout.decode().splitlines()
    for want, got in zip(shown.splitlines()[:5], printed, strict=False):
        assert _as_pattern(want).match(got), (want, got)
