"""The end-of-run summary: ``--summary-json`` and the lines on stderr."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import connector_id, make_rows, tenant_id, write_csv
from click.testing import CliRunner

from batchsync._summary import _TENANTS_SHOWN
from batchsync.cli import main
from batchsync.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    start_in_thread,
)

FAILING = [tenant_id(i) for i in range(_TENANTS_SHOWN + 2)]  # more than the summary names


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=2, window_s=0.2, retry_after="float"),
        faults=FaultConfig(retry_after_s=0.05),
        tenant_errors=dict.fromkeys(FAILING, 65001),
    )
    with start_in_thread(config) as s:
        yield s


@pytest.fixture
def mixed_input(tmp_path: Path) -> Path:
    """Failing and healthy tenants, a throttled one, an invalid row and a duplicate."""
    busy = tenant_id(len(FAILING) + 2)  # one healthy tenant with more rows than its write limit
    rows = make_rows(len(FAILING) + 3, 1) + [
        (busy, connector_id(busy, j), "fullSync") for j in range(1, 7)
    ]
    path = write_csv(tmp_path / "in.csv", rows)
    with path.open("a") as fh:
        fh.write("not a tenant,x,fullSync\n")
        fh.write(",".join(rows[-1]) + "\n")  # a duplicate of the last row
    return path


def _run(sim: Simulator, args: list[str]) -> Any:
    return CliRunner().invoke(main, ["run", *FAST, *args], env=sim.env())


def test_summary_json_matches_the_report(sim: Simulator, mixed_input: Path, tmp_path: Path) -> None:
    """--summary-json counts exactly what the report holds: statuses, kinds, tenants, 429s."""
    report, summary_path = tmp_path / "r.jsonl", tmp_path / "summary.json"
    result = _run(sim, [str(mixed_input), "-o", str(report), "--summary-json", str(summary_path)])
    assert result.exit_code == 1, result.stderr
    lines = json_lines(report.read_text())
    summary = orjson.loads(summary_path.read_bytes())

    statuses = Counter(line["status"] for line in lines)
    assert summary["rows"] == len(lines)
    assert summary["statuses"] == {
        s: statuses.get(s, 0) for s in ("ok", "failed", "invalid", "skipped", "planned")
    }
    assert (statuses["ok"], statuses["invalid"], statuses["skipped"]) == (3 + 6, 1, 1)

    failed = [line for line in lines if line["status"] == "failed"]
    assert summary["error_kinds"] == dict(Counter(line["error"]["kind"] for line in failed))
    assert summary["error_codes"] == {"AADSTS65001": len(failed)}
    assert summary["failed_tenants"] == len(FAILING)
    assert set(summary["failed_tenants_first"]) == set(FAILING)
    for why in summary["failed_tenants_first"].values():
        assert why.startswith("auth: ")

    throttled = sum(line["throttled"] for line in lines)
    assert throttled > 0  # the simulator's write limit was met
    assert summary["throttled"] == throttled
    assert summary["requests"] == sum(line["attempts"] for line in lines)
    assert summary["elapsed_s"] > 0
    assert summary["rows_per_s"] == pytest.approx(len(lines) / summary["elapsed_s"], rel=0.05)
    assert (summary["exit_status"], summary["interrupted"], summary["stopped"]) == (1, False, None)


def test_stderr_names_first_failed_tenants_then_a_count(
    sim: Simulator, mixed_input: Path, tmp_path: Path
) -> None:
    """stderr lists the first failed tenants with the reason, then how many more there are."""
    result = _run(sim, [str(mixed_input), "-o", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    first = lines[0]
    assert first.startswith(
        f"batchsync: {len(FAILING) + 3 + 6 + 2} rows: 9 ok, {len(FAILING)} failed"
    )
    assert any("throttled answers (429/503)" in line and "rows/s" in line for line in lines)
    assert f"tenants with failures: {len(FAILING)}" in result.stderr
    named = [
        line.strip().split(":", 1)[0]
        for line in lines
        if line.startswith("    ") and "AADSTS65001" in line
    ]
    assert len(named) == _TENANTS_SHOWN
    assert set(named) <= set(FAILING)
    assert lines[-1].strip() == f"... and {len(FAILING) - _TENANTS_SHOWN} more (see the report)"


def test_quiet_success_prints_nothing_but_writes_json(sim: Simulator, tmp_path: Path) -> None:
    """-q on a clean run leaves stderr empty; --summary-json is still written."""
    inp = write_csv(tmp_path / "in.csv", [(tenant_id(50), tenant_id(51), "fullSync")])
    summary_path = tmp_path / "s.json"
    result = _run(sim, [str(inp), "-q", "--summary-json", str(summary_path)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["statuses"]["ok"] == 1
    assert summary["exit_status"] == 0


def test_unwritable_summary_json_exit_2_before_any_request(sim: Simulator, tmp_path: Path) -> None:
    """A --summary-json path that cannot be written fails at once (exit 2, one line, naming
    the path), before a single row is sent; no file is left behind."""
    inp = write_csv(tmp_path / "in.csv", [(tenant_id(53), tenant_id(54), "fullSync")])
    target = tmp_path / "no-such-dir" / "s.json"
    before = sim.stats.snapshot().sync_requests.total()
    result = _run(sim, [str(inp), "--summary-json", str(target)])
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert str(target) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sim.stats.snapshot().sync_requests.total() == before
    ok = tmp_path / "fresh.json"
    assert _run(sim, [str(inp), "--dry-run", "--summary-json", str(ok)]).exit_code == 0
    assert orjson.loads(ok.read_bytes())["statuses"]["planned"] == 1


def test_summary_json_failing_at_the_end_keeps_an_all_ok_run_0(
    sim: Simulator, tmp_path: Path
) -> None:
    """A summary that cannot be written at the end (a full disk: /dev/full) is one error
    line; the run, every row ok, still exits 0 with its report whole."""
    inp = write_csv(tmp_path / "in.csv", [(tenant_id(55), tenant_id(56), "fullSync")])
    result = _run(sim, [str(inp), "-q", "--summary-json", "/dev/full"])
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in json_lines(result.stdout)] == ["ok"]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "/dev/full" in result.stderr


def test_quiet_failure_still_prints_summary(sim: Simulator, tmp_path: Path) -> None:
    """-q keeps errors: a run with failed rows still shows its summary on stderr."""
    inp = write_csv(tmp_path / "in.csv", [(FAILING[0], tenant_id(52), "deltaSync")])
    result = _run(sim, [str(inp), "-q"])
    assert result.exit_code == 1
    assert "1 failed" in result.stderr
    assert FAILING[0] in result.stderr


def test_dry_run_summary_counts_planned(tmp_path: Path) -> None:
    """A dry run's summary counts planned rows and no request."""
    inp = write_csv(tmp_path / "in.csv", make_rows(3, 2))
    summary_path = tmp_path / "s.json"
    result = CliRunner().invoke(
        main, ["run", str(inp), "--dry-run", "--summary-json", str(summary_path)]
    )
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["statuses"]["planned"] == 6
    assert (summary["requests"], summary["throttled"], summary["failed_tenants"]) == (0, 0, 0)
    assert "6 planned" in result.stderr


def test_summary_json_tenants_match_batchsync_report(
    sim: Simulator, mixed_input: Path, tmp_path: Path
) -> None:
    """--summary-json's worst tenants are what `batchsync report` says of the same report."""
    report, summary_path = tmp_path / "r.jsonl", tmp_path / "summary.json"
    result = _run(sim, [str(mixed_input), "-o", str(report), "--summary-json", str(summary_path)])
    assert result.exit_code == 1, result.stderr
    summary = orjson.loads(summary_path.read_bytes())
    md = CliRunner().invoke(main, ["report", str(report), "--format", "markdown"])
    table = {
        cells[0]: [int(n) for n in cells[1:7]]
        for line in md.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| tenant |")
        for cells in [[c.strip() for c in line.strip("|").split(" | ")]]
    }
    assert summary["tenants"] == len(table)
    assert summary["worst_tenants"]
    for t in summary["worst_tenants"]:
        counts = [t[k] for k in ("rows", "ok", "failed", "invalid", "skipped", "throttled")]
        row = table[t["tenant"] or "(no tenant)"]
        assert counts == row  # rows, ok, failed, invalid, skipped, throttled (none planned)
        assert t["error"] is None or t["error"]["code"] in md.stdout


def test_summary_json_and_report_links_to_files_are_refused_before_sending(
    sim: Simulator, mixed_input: Path, tmp_path: Path
) -> None:
    """--summary-json or --report naming a symbolic link to a file: exit 2 in one line
    before any request, and the file the link names is left as it was."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    syncs = sim.stats.snapshot().sync_requests.total()
    for args in (
        ["--summary-json", str(link), "-o", str(tmp_path / "r.jsonl")],
        ["-o", str(link), "--overwrite"],
        ["-o", str(link), "--resume"],
    ):
        result = _run(sim, [str(mixed_input), *args])
        assert result.exit_code == 2, result.output
        assert "symbolic link to a file" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert victim.read_text() == "keep"
    assert sim.stats.snapshot().sync_requests.total() == syncs
