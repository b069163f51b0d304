"""``run --dry-run --check``: tokens and connector reads for every row, no sync, ``planned``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import connector_id, make_rows, sim_config, tenant_id, write_csv
from click.testing import CliRunner

from batchsync._rows import Row, SyncType
from batchsync._runner import run_batch
from batchsync.actions import ACTIONS, DEFAULT_ACTION
from batchsync.cli import main
from batchsync.simulator import Simulator, SimulatorConfig, run_simulator, start_in_thread

FORBIDDEN = tenant_id(1)
NO_CONSENT = tenant_id(2)
MISSING = connector_id(tenant_id(0), 1)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        missing_connectors=frozenset({MISSING}),
        forbidden_tenants=frozenset({FORBIDDEN}),
        tenant_errors={NO_CONSENT: 65001},
    )
    with start_in_thread(config) as s:
        yield s


def test_check_action_reads_the_connector() -> None:
    """The check is a GET of the row's connector, successful only on 200; the sync is a POST."""
    row = Row(1, "contoso.com", MISSING, SyncType.FULL)
    sync = ACTIONS[DEFAULT_ACTION]
    check = sync.check().request(row)
    assert (check.method, check.path, check.body) == (
        "GET",
        f"/deviceManagement/exchangeConnectors/{MISSING}",
        None,
    )
    assert sync.check().succeeded(200)
    assert not sync.check().succeeded(204)
    assert sync.request(row).method == "POST"
    assert sync.check().report_fields(row) == sync.report_fields(row)


def test_check_needs_dry_run(tmp_path: Path) -> None:
    """--check without --dry-run is a usage error (exit 2), before anything is read or sent."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    result = CliRunner().invoke(main, ["run", str(inp), "--check"])
    assert result.exit_code == 2, result.output
    assert "--dry-run" in result.stderr
    assert result.stdout == ""


def test_check_reports_each_problem_and_syncs_nothing(sim: Simulator, tmp_path: Path) -> None:
    """Passing rows are planned (HTTP 200); 404, 403 and auth failures say why; no POST; exit 1."""
    rows = make_rows(4, 2)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "report.jsonl"
    before = sim.stats.snapshot()
    result = CliRunner().invoke(
        main, ["run", str(inp), "--dry-run", "--check", "-o", str(report), *FAST], env=sim.env()
    )
    after = sim.stats.snapshot()
    assert result.exit_code == 1, result.stderr
    lines = {(r["tenant"], r["connector"]): r for r in json_lines(report.read_text())}
    assert len(lines) == len(rows)
    assert after.sync_requests.total() == before.sync_requests.total()  # nothing synced
    assert after.graph_requests.total() > before.graph_requests.total()  # but connectors read
    for (tenant, connector), line in lines.items():
        error = line["error"]
        if tenant == FORBIDDEN:
            assert (line["status"], line["http_status"], error["kind"]) == ("failed", 403, "http")
            assert "Intune" in error["message"]  # the forbidden hint
        elif tenant == NO_CONSENT:
            assert (line["status"], error["kind"], error["code"]) == (
                "failed",
                "auth",
                "AADSTS65001",
            )
            assert line["attempts"] == 0
        elif connector == MISSING:
            assert (line["status"], line["http_status"], error["kind"]) == ("failed", 404, "http")
            assert "connector not found in this tenant" in error["message"]
            assert error["code"] == "ResourceNotFound"
        else:
            assert (line["status"], line["http_status"], error) == ("planned", 200, None)
            assert line["attempts"] == 1
            assert line["request_id"]
    statuses = [line["status"] for line in lines.values()]
    assert statuses.count("planned") == 3  # tenant 0's first connector, tenant 3's two
    assert {t for t, _ in after.token_requests - before.token_requests} == {
        tenant_id(i) for i in range(4)
    }
    assert "planned" in result.stderr


def test_check_all_pass_exit_0(sim: Simulator, tmp_path: Path) -> None:
    """When every tenant and connector is reachable the check exits 0 with only planned rows."""
    rows = [r for r in make_rows(5, 2) if r[0] not in (FORBIDDEN, NO_CONSENT) and r[1] != MISSING]
    inp = write_csv(tmp_path / "in.csv", rows)
    before = sim.stats.snapshot().sync_requests.total()
    result = CliRunner().invoke(
        main, ["run", str(inp), "--dry-run", "--check", *FAST], env=sim.env()
    )
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    assert len(lines) == len(rows)
    assert {r["status"] for r in lines} == {"planned"}
    assert sim.stats.snapshot().sync_requests.total() == before


def test_plain_dry_run_sends_nothing(sim: Simulator, tmp_path: Path) -> None:
    """--dry-run alone stays offline: planned rows, no token, no Graph request."""
    inp = write_csv(tmp_path / "in.csv", make_rows(3, 1))
    before = sim.stats.snapshot()
    result = CliRunner().invoke(main, ["run", str(inp), "--dry-run"], env=sim.env())
    after = sim.stats.snapshot()
    assert result.exit_code == 0, result.stderr
    assert {r["status"] for r in json_lines(result.stdout)} == {"planned"}
    assert after.graph_requests == before.graph_requests
    assert after.token_requests == before.token_requests


async def test_library_check_keeps_engine_live(tmp_path: Path) -> None:
    """RunConfig(check=True) sends the GETs even though the rows end planned."""
    async with run_simulator() as s:
        inp = write_csv(tmp_path / "in.csv", make_rows(2, 2))
        config = sim_config(s, inp, tmp_path / "r.jsonl", check=True)
        stats = await run_batch(config)
        assert dict(stats.statuses) == {"planned": 4}
        assert s.stats.graph_requests.total() == 4
        assert s.stats.sync_requests.total() == 0
