"""The supply chain: declared dependencies, security floors, and CI's dependency audit."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Imported only inside ``try: ... except ImportError`` and installed by an extra.
OPTIONAL_IMPORTS = {"uvloop": "fast"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9_.-]+)", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def _imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "batchsync").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "batchsync"}


def _load(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(script, ROOT / ".ci" / f"{script}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_third_party_import_is_declared() -> None:
    """Each package batchsync imports is a declared dependency of its own (requests,
    cryptography, yarl, multidict used to arrive only through aiohttp and msal)."""
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in PROJECT["optional-dependencies"].items()}
    providers = metadata.packages_distributions()
    missing = []
    for module in sorted(_imported_modules()):
        dist = _name(providers[module][0])
        wanted = extras[OPTIONAL_IMPORTS[module]] if module in OPTIONAL_IMPORTS else declared
        if dist not in wanted:
            missing.append(f"{module} (from {dist})")
    assert missing == []
    assert {"requests", "cryptography", "yarl", "multidict"} <= declared


def test_declared_floors_clear_the_known_advisories() -> None:
    """pyproject's floors and the installed versions are at or above .ci/advisory-floors.txt
    (aiohttp>=3.11 and orjson>=3.9 admitted fixed advisories)."""
    gate = _load("check_floors")
    assert gate.main() == 0
    floors = gate.read_floors(ROOT / ".ci" / "advisory-floors.txt")
    for name in ("aiohttp", "orjson", "requests", "cryptography", "multidict", "click", "tqdm"):
        assert name in floors


def test_floor_gate_fails_on_a_floor_below_an_advisory(tmp_path: Path) -> None:
    """The offline gate decides without the network: a floor lowered below the table fails
    CI with a line naming the package and the floor it needs."""
    shutil.copytree(ROOT / ".ci", tmp_path / ".ci")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(text.replace('"orjson>=3.11.6"', '"orjson>=3.9"'))
    done = subprocess.run(
        [sys.executable, str(tmp_path / ".ci" / "check_floors.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "orjson>=3.9" in done.stderr
    assert "at least 3.11.6" in done.stderr


def test_floor_gate_orders_versions_as_pip_does() -> None:
    """Pre-releases sort below their release, post-releases above, and 2.33 == 2.33.0."""
    key = _load("check_floors").key
    assert key("3.14.4rc1") < key("3.14.4") == key("3.14.4.0") < key("3.14.4.post1")
    assert key("2.33") == key("2.33.0") < key("2.33.1") < key("10.0")
    assert key("2026.10.19.post1") > key("2026.10.18")


def _verdict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: object | None,
    *,
    strict: bool = False,
) -> tuple[int, str]:
    path = tmp_path / "audit.json"
    path.unlink(missing_ok=True)
    if report is not None:
        path.write_text(json.dumps(report))
    log = tmp_path / "audit.log"
    log.write_text("requests.exceptions.ProxyError: cannot connect\n")
    if strict:
        monkeypatch.setenv("AUDIT_REQUIRE_ONLINE", "1")
    else:
        monkeypatch.delenv("AUDIT_REQUIRE_ONLINE", raising=False)
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit_verdict.py"), str(path), "1", str(log)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stderr


def test_audit_verdict_fails_on_a_known_advisory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip-audit's finding fails CI with one line naming package, advisory and fix."""
    vuln = {"id": "PYSEC-2024-40", "aliases": ["CVE-2024-27454"], "fix_versions": ["3.9.15"]}
    report = {"dependencies": [{"name": "orjson", "version": "3.9.10", "vulns": [vuln]}]}
    code, err = _verdict(tmp_path, monkeypatch, report)
    assert code == 1
    assert "FAIL: orjson 3.9.10: PYSEC-2024-40 (CVE-2024-27454) fixed in 3.9.15" in err


def test_audit_that_could_not_run_says_so_and_fails_only_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packages pip-audit could not look up (pip-audit itself passes then) or no report at
    all print NOT PERFORMED with the reason: a pass, unless AUDIT_REQUIRE_ONLINE=1."""
    skipped = {
        "dependencies": [
            {"name": "aiohttp", "version": "3.14.5", "skip_reason": "Dependency not found"},
            {"name": "orjson", "version": "3.13.0", "skip_reason": "Dependency not found"},
        ]
    }
    for report, why in ((skipped, "2 of 2 packages could not be looked up"), (None, "ProxyError")):
        code, err = _verdict(tmp_path, monkeypatch, report)
        assert (code, "NOT PERFORMED" in err, why in err) == (0, True, True), err
        strict, err = _verdict(tmp_path, monkeypatch, report, strict=True)
        assert strict == 1, err
    clean = {"dependencies": [{"name": "aiohttp", "version": "3.14.5", "vulns": []}]}
    assert _verdict(tmp_path, monkeypatch, clean, strict=True)[0] == 0


def test_ci_audits_after_the_readme_test_command() -> None:
    """.ci/run stops at the first failure and runs both audits after the tests."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "set -euo pipefail" in lines
    tests = next(i for i, line in enumerate(lines) if "python -m pytest -q" in line)
    gate = next(i for i, line in enumerate(lines) if "check_floors.py" in line)
    verdict = next(i for i, line in enumerate(lines) if "audit_verdict.py" in line)
    assert tests < gate < verdict
    audit = "\n".join(lines[gate:verdict])
    assert "pip-audit -r .audit-requirements.txt --no-deps --disable-pip" in audit
    assert "-f json" in audit


def test_keyring_extra_brings_pygobject_on_linux_only() -> None:
    """Linux token-cache encryption needs PyGObject: in the `keyring` extra (documented),
    never in the default install."""
    keyring = PROJECT["optional-dependencies"]["keyring"]
    assert [_name(r) for r in keyring] == ["pygobject"]
    assert "sys_platform == 'linux'" in keyring[0]
    assert "pygobject" not in {_name(r) for r in PROJECT["dependencies"]}
    assert "batchsync[keyring]" in (ROOT / "docs" / "auth.md").read_text(encoding="utf-8")


def test_security_doc_states_the_threat_model_and_the_audit() -> None:
    """docs/security.md says what is protected, against whom, what is left to the OS, and
    which audit tool CI runs and why."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for needle in ("What batchsync protects", "Against whom", "left to the operating system"):
        assert needle in text
    assert "pip-audit" in text
    assert "check_floors.py" in text
    assert "AUDIT_REQUIRE_ONLINE" in text
