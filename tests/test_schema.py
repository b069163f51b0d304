"""docs/report.schema.json describes the report lines batchsync really writes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import connector_id, make_rows, tenant_id, write_csv
from click.testing import CliRunner

from batchsync._errors import ErrorKind
from batchsync._report import Status
from batchsync.cli import main
from batchsync.simulator import Simulator, SimulatorConfig, start_in_thread

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"
NO_CONSENT = tenant_id(1)
MISSING = connector_id(tenant_id(0), 1)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        missing_connectors=frozenset({MISSING}), tenant_errors={NO_CONSENT: 65001}
    )
    with start_in_thread(config) as s:
        yield s


@pytest.fixture(scope="module")
def real_lines(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Report lines of every status from real runs: sync, --keep-extra, dry run and --check."""
    tmp = tmp_path_factory.mktemp("schema")
    rows = make_rows(3, 2)
    inp = tmp / "in.csv"
    write_csv(inp, rows)
    with inp.open("a", encoding="utf-8") as fh:
        fh.write("not a tenant,{x},weekly\n")  # invalid
        fh.write(",,\n")  # blank cells only: not a data row
        fh.write(",".join(rows[0]) + "\n")  # duplicate: skipped
        fh.write(f"{tenant_id(2)},,fullSync\n")  # invalid: no connector
    lines: list[dict[str, Any]] = []
    for args in (["--keep-extra"], ["--dry-run"], ["--dry-run", "--check"]):
        result = CliRunner().invoke(main, ["run", str(inp), *FAST, *args], env=sim.env())
        assert result.exit_code in (0, 1), result.output
        lines += json_lines(result.stdout)
    return lines


def test_schema_enums_match_the_code(schema: dict[str, Any]) -> None:
    """The schema's status and error.kind enums are exactly the code's Status and ErrorKind."""
    assert schema["properties"]["status"]["enum"] == [s.value for s in Status]
    assert schema["$defs"]["error"]["properties"]["kind"]["enum"] == [k.value for k in ErrorKind]


def test_real_lines_of_every_status_validate(
    real_lines: list[dict[str, Any]], validator: jsonschema.Draft202012Validator
) -> None:
    """Lines of all five statuses and of many error kinds validate against the schema."""
    statuses = {line["status"] for line in real_lines}
    assert statuses == {s.value for s in Status}
    kinds = {line["error"]["kind"] for line in real_lines if line["error"]}
    assert {"auth", "http", "input", "duplicate"} <= kinds
    assert any("extra" in line for line in real_lines)
    for line in real_lines:
        errors = sorted(validator.iter_errors(line), key=str)
        assert errors == [], (line, [e.message for e in errors])


def test_schema_names_every_field_written(
    real_lines: list[dict[str, Any]], schema: dict[str, Any]
) -> None:
    """Every key batchsync writes is in the schema, and every contract key is required (the
    object's fields by action: connector and syncType, or id)."""
    written = {key for line in real_lines for key in line}
    assert written <= set(schema["properties"])
    by_action = {"connector", "syncType", "id"}
    assert set(schema["required"]) == set(schema["properties"]) - {"extra"} - by_action
    per_action = schema["allOf"][0]
    assert per_action["then"]["required"] == ["connector", "syncType"]
    assert per_action["else"]["required"] == ["id"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": "done"}, "unknown status"),
        ({"error": {"kind": "weird", "code": None, "message": "x"}}, "unknown error kind"),
        ({"error": {"kind": "http", "message": "x"}}, "error without code"),
        ({"line": 0}, "line numbers start at 1"),
        ({"started_at": "2026-01-01 10:00:00"}, "not RFC 3339 UTC"),
        ({"attempts": -1}, "negative attempts"),
        ({"tenant": "Contoso.com"}, "a tenant that is not canonical"),
        ({"syncType": "weekly"}, "a sync type of a valid row that is not Graph's"),
        ({"http_status": "204"}, "a status that is a string"),
        ({"error": {"kind": "http", "code": "Forbidden", "message": "no"}}, "ok with an error"),
        ({"status": "invalid"}, "invalid without an input error"),
        ({"status": "failed"}, "failed without an error"),
        ({"extra": {"n": 1}}, "extra values are strings"),
    ],
)
def test_schema_rejects_wrong_lines(
    real_lines: list[dict[str, Any]],
    validator: jsonschema.Draft202012Validator,
    change: dict[str, Any],
    why: str,
) -> None:
    """A line that breaks the contract fails validation (so the check above can fail)."""
    ok_line = next(line for line in real_lines if line["status"] == "ok")
    broken = copy.deepcopy(ok_line)
    broken.update(change)
    assert not validator.is_valid(broken), why


@pytest.mark.parametrize("field", ["line", "status", "error", "request_id", "duration_ms"])
def test_schema_requires_contract_fields(
    real_lines: list[dict[str, Any]], validator: jsonschema.Draft202012Validator, field: str
) -> None:
    """A line missing a contract field fails validation."""
    line = copy.deepcopy(real_lines[0])
    del line[field]
    assert not validator.is_valid(line)
