"""Shell completion (docs/completion.md): `batchsync` prints a script that really completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchsync.cli import main

SCRIPT = Path(sys.executable).with_name("batchsync")  # the console script pip installs


def _invoke(**env: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [], prog_name="batchsync", env=env)
    return result.exit_code, result.stdout


@pytest.mark.parametrize(
    ("shell", "needle"),
    [
        ("bash", "complete -o nosort -F _batchsync_completion batchsync"),
        ("zsh", "compdef _batchsync_completion batchsync"),
        ("fish", "complete --no-files --command batchsync"),
        ("powershell", "Register-ArgumentCompleter -Native -CommandName batchsync"),
    ],
)
def test_source_prints_a_completion_script(shell: str, needle: str) -> None:
    """`_BATCHSYNC_COMPLETE={shell}_source batchsync` prints that shell's script and exits 0."""
    code, script = _invoke(_BATCHSYNC_COMPLETE=f"{shell}_source")
    assert code == 0
    assert needle in script
    calls_back = (
        "$env:_BATCHSYNC_COMPLETE = 'powershell_complete'"
        if shell == "powershell"
        else f"_BATCHSYNC_COMPLETE={shell}_complete"
    )
    assert calls_back in script  # it calls the program back


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("batchsync di", 1, ["plain,discover"]),
        ("batchsync run x.csv --cloud us", 4, ["plain,usgov", "plain,usgov-dod"]),
        ("batchsync discover --sync", 2, ["plain,--sync-type"]),
        ("batchsync run x.csv --auth r", 4, ["plain,refresh-token"]),
    ],
)
def test_completion_answers(words: str, cword: int, expected: list[str]) -> None:
    """A completion request gets the matching commands, options or option values."""
    code, answer = _invoke(
        _BATCHSYNC_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword)
    )
    assert code == 0
    assert answer.split() == expected


@pytest.mark.skipif(not SCRIPT.exists(), reason="no batchsync console script (pip install -e .)")
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_with_the_installed_script() -> None:
    """In a real bash, the installed command's script fills COMPREPLY for `batchsync ru<TAB>`."""
    program = (
        'eval "$(_BATCHSYNC_COMPLETE=bash_source batchsync)"\n'
        "COMP_WORDS=(batchsync ru); COMP_CWORD=1\n"
        "_batchsync_completion batchsync\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("_BATCHSYNC")}
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["run"]


def test_powershell_completion_answers() -> None:
    """A PowerShell completion request gets type, value and help lines, three per match."""
    code, answer = _invoke(
        _BATCHSYNC_COMPLETE="powershell_complete", COMP_WORDS="batchsync di", COMP_CWORD="1"
    )
    assert code == 0
    lines = answer.splitlines()
    assert lines[:2] == ["plain", "discover"]
    assert len(lines) == 3
