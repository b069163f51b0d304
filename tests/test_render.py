"""Rendering a settled report: table, Markdown, CSV cells, run input and the HTML page."""

from __future__ import annotations

import csv
import io

import orjson
from test_report_cli import _Html5Check

from batchsync._render import (
    CsvColumns,
    CsvWriter,
    Digest,
    csv_cell,
    render_markdown,
    render_table,
    run_input,
)
from batchsync._render_html import FailedRow, render_html
from batchsync._tally import Tally
from batchsync._timeline import Timeline, parse_rfc3339


def _digest(*, html: bool = False) -> Digest:
    tally = Tally()
    timeline = Timeline() if html else None
    rows = [
        ("a.example", "ok", 0, None),
        ("b|pipe.example", "failed", 3, ("throttled", "TooManyRequests", "still <throttled>")),
        ("b|pipe.example", "ok", 1, None),
        ("c.example", "invalid", 0, ("input", "connector", "not a GUID | x")),
    ]
    for i, (tenant, status, throttled, error) in enumerate(rows):
        kind, code, message = error or (None, None, "")
        tally.add(tenant, status, throttled=throttled, kind=kind, code=code, message=message)
        if timeline is not None:
            timeline.add(tenant, 1_800_000_000.0 + i, 1_800_000_002.5 + i, throttled)
    return Digest(
        sources=["r.jsonl"], tally=tally, lines_read=6, lines_skipped=1, timeline=timeline
    )


def test_table_shows_totals_then_tenants_worst_first() -> None:
    """The table's first line has the totals; tenants follow worst first with a next step."""
    text = render_table(_digest())
    lines = text.splitlines()
    assert lines[0] == (
        "batchsync report: 4 rows in 3 tenants: 2 ok, 1 failed, 1 invalid; "
        "4 throttled answers (429/503)"
    )
    assert "2 earlier lines superseded" in lines[1]
    assert "1 unreadable line" in lines[1]
    tenants = [line.split()[0] for line in lines[4:] if not line.startswith(" ")]
    assert tenants == ["b|pipe.example", "c.example", "a.example"]
    assert "what to do: run again later with --resume" in text


def test_failed_only_lists_only_tenants_with_problems() -> None:
    """With --failed the table and Markdown leave out tenants whose rows all ended well."""
    assert "a.example" not in render_table(_digest(), failed_only=True)
    assert "a.example" not in render_markdown(_digest(), failed_only=True)


def test_markdown_cells_escape_pipes() -> None:
    """A pipe in a tenant or a message cannot break the Markdown table."""
    rows = [line for line in render_markdown(_digest()).splitlines() if line.startswith("| ")]
    assert len(rows) == 4
    assert "b\\|pipe.example" in rows[1]
    assert all(row.replace("\\|", "").count("|") == rows[0].count("|") for row in rows)


def test_csv_cells_are_excel_safe() -> None:
    """null is empty, numbers stay numbers, and a formula-looking text gets a leading quote."""
    assert [csv_cell(v) for v in (None, 204, True, "ok", "=HYPERLINK(1)", "-x")] == [
        "",
        "204",
        "true",
        "ok",
        "'=HYPERLINK(1)",
        "'-x",
    ]


def test_csv_columns_flatten_error_and_extra() -> None:
    """error becomes kind/code/message columns, extra becomes extra.NAME, in report order."""
    doc = {
        "line": 1,
        "tenant": "t",
        "status": "failed",
        "error": {"kind": "http", "code": "Forbidden", "message": 'say "no"'},
        "extra": {"Customer": "Contoso; MSP"},
    }
    columns = CsvColumns()
    columns.note(doc)
    names = columns.columns()
    assert names == [
        "line",
        "tenant",
        "status",
        "error_kind",
        "error_code",
        "error_message",
        "extra.Customer",
    ]
    writer = CsvWriter(names)
    text = writer.header() + writer.rows([doc])
    assert text.startswith("\ufeff")
    (row,) = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    assert row["error_message"] == 'say "no"'
    assert row["extra.Customer"] == "Contoso; MSP"


def test_run_input_keeps_only_the_row_fields() -> None:
    """--failed rows carry tenant, connector and syncType, nulls left out."""
    doc = {"line": 3, "tenant": "t", "connector": None, "syncType": "fullSync", "status": "invalid"}
    assert orjson.loads(run_input(doc)) == {"tenant": "t", "syncType": "fullSync"}


def test_html_page_is_self_contained_and_escaped() -> None:
    """The page parses with every element closed, runs no script, escapes text, draws lanes."""
    failed = [
        FailedRow(
            2,
            "b|pipe.example",
            "c1",
            "failed",
            "throttled",
            "TooManyRequests",
            "still <throttled>",
            "rid",
        )
    ]
    page = render_html(_digest(html=True), failed_rows=failed, version="9.9")
    check = _Html5Check()
    check.feed(page)
    check.close()
    assert check.problems == []
    assert check.stack == []
    assert "still &lt;throttled&gt;" in page
    assert "<script" not in page
    assert page.count("<circle") == 2  # the two throttled rows finished in two slots
    assert "#ffe082" in page  # the throttled row's wait is drawn
    for tenant in ("a.example", "b|pipe.example", "c.example"):
        assert tenant in page


def test_timeline_lanes_put_the_rest_together() -> None:
    """Tenants beyond the chosen lanes share one lane; every row lands in a slot."""
    timeline = Timeline()
    for i in range(30):
        timeline.add(f"t{i % 5}", 100.0 + i, 101.0 + i, 1 if i == 29 else 0)
    lanes = timeline.lanes(["t0", "t1"], buckets=10)
    assert [lane.label for lane in lanes] == ["t0", "t1", "3 other tenants"]
    assert sum(sum(lane.finished) for lane in lanes) == 30
    assert lanes[2].throttled[-1] == 1
    assert lanes[2].paused[-1]


def test_timestamps_parse_as_the_report_writes_them() -> None:
    """The report's RFC 3339 form, other offsets and garbage all parse or give None."""
    assert parse_rfc3339("2026-11-25T20:06:56.232Z") == 1795637216.232
    assert parse_rfc3339("2026-11-25T20:06:56Z") == 1795637216.0
    assert parse_rfc3339("2026-11-25T21:06:56.5+01:00") == 1795637216.5
    assert parse_rfc3339("yesterday") is None
