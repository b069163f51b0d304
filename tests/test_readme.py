"""The README's two commands stay true: CI runs exactly its test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


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
