"""``run --shard K/N`` from the command line: N shards are the whole run, split by tenant."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import connector_id, make_rows, write_csv
from click.testing import CliRunner

from batchsync.cli import main
from batchsync.simulator import SimulatorConfig, start_in_thread

_TIMING = ("started_at", "finished_at", "duration_ms")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture
def input_csv(tmp_path: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """30 tenants x 3 rows, interleaved, then an invalid row, a duplicate, a domain tenant."""
    rows = make_rows(30, 3)
    rows += [("not a tenant", rows[0][1], "fullSync"), rows[5]]
    rows += [("Contoso.OnMicrosoft.com", connector_id("contoso", 0), "deltaSync")]
    return write_csv(tmp_path / "in.csv", rows), rows


def _stable(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in _TIMING}


def _shards(
    args: list[str], n: int, tmp_path: Path, env: dict[str, str] | None = None
) -> list[list[dict[str, Any]]]:
    reports = []
    for k in range(1, n + 1):
        report = tmp_path / f"shard-{k}-of-{n}.jsonl"
        result = CliRunner().invoke(
            main, ["run", *args, "--shard", f"{k}/{n}", "-o", str(report)], env=env
        )
        assert result.exit_code in (0, 1), result.output
        reports.append(json_lines(report.read_text()) if report.exists() else [])
    return reports


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_shards_cover_every_row_once_and_never_split_a_tenant(
    input_csv: tuple[Path, list[tuple[str, str, str]]], tmp_path: Path, n: int
) -> None:
    """Every input row is in exactly one shard's report, with its input line number; a tenant's
    rows all land in one shard; the shards together equal the unsharded run."""
    path, rows = input_csv
    whole = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert whole.exit_code == 1  # the invalid row
    expected = sorted((_stable(line) for line in json_lines(whole.stdout)), key=lambda d: d["line"])
    assert [d["line"] for d in expected] == list(range(1, len(rows) + 1))

    reports = _shards([str(path), "--dry-run"], n, tmp_path)
    merged = sorted(
        (_stable(line) for report in reports for line in report), key=lambda d: d["line"]
    )
    assert merged == expected  # nothing lost, nothing twice, numbering kept

    shard_of: dict[str | None, set[int]] = defaultdict(set)
    for k, report in enumerate(reports, start=1):
        for line in report:
            shard_of[line["tenant"]].add(k)
            assert rows[line["line"] - 1][1].lower() == (line["connector"] or "").lower()
    assert all(len(shards) == 1 for shards in shard_of.values())
    if n > 1:
        assert sum(1 for report in reports if report) > 1  # the split really splits


def test_shard_reports_concatenated_are_the_whole_run(
    input_csv: tuple[Path, list[tuple[str, str, str]]], tmp_path: Path
) -> None:
    """Against the simulator, 3 shards sync every valid row exactly once between them."""
    path, rows = input_csv
    with start_in_thread(SimulatorConfig()) as sim:
        reports = _shards([str(path), *FAST], 3, tmp_path, env=sim.env())
        syncs = sim.stats.snapshot().syncs
    merged = [line for report in reports for line in report]
    assert sorted(line["line"] for line in merged) == list(range(1, len(rows) + 1))
    ok = [line for line in merged if line["status"] == "ok"]
    assert len(ok) == len(rows) - 2  # less the invalid row and the duplicate
    assert sum(syncs.values()) == len(ok)
    assert all(count == 1 for count in syncs.values())
    assert {line["status"] for line in merged} == {"ok", "invalid", "skipped"}
