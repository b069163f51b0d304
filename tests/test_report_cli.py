"""`batchsync report` on real reports made by real runs against the simulator.

One module-wide set of reports: a run where one tenant is forbidden (then fixed and resumed),
one tenant that never gets a token, an invalid row and a duplicate; the same input run as
two shards; both read back through every format.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cli_support import ENV_NAMES, FAST, json_lines
from _support import connector_id, make_rows, tenant_id, write_csv
from click.testing import CliRunner, Result

from batchsync.cli import main
from batchsync.simulator import SimulatorConfig, ThrottleConfig, start_in_thread

FLAKY = tenant_id(0)  # forbidden in the first run, fixed before the resumed one
BAD = tenant_id(1)  # no consent: every run fails it
BUSY = tenant_id(2)  # more rows than the simulator's write window: throttled
ROWS = make_rows(5, 2) + [(BUSY, connector_id(BUSY, j), "fullSync") for j in range(2, 8)]
VOID_ELEMENTS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


@dataclasses.dataclass(frozen=True)
class Reports:
    directory: Path
    resumed: Path  # first run, then --resume after the fix
    shards: tuple[Path, Path]
    first_run_lines: int


def _invoke(
    args: list[str], *, env: dict[str, str] | None = None, input: bytes | None = None
) -> Result:
    return CliRunner().invoke(main, args, env=env, input=input)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    directory = tmp_path_factory.mktemp("reports")
    inp = write_csv(directory / "in.csv", ROWS)
    with inp.open("a") as fh:
        fh.write("not a tenant,x,fullSync\n")
        fh.write(",".join(ROWS[-1]) + "\n")  # a duplicate of the last row
    config = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=3, window_s=0.3, retry_after="float"),
        forbidden_tenants=frozenset({FLAKY}),
        tenant_errors={BAD: 65001},
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_NAMES:
            mp.delenv(name, raising=False)
        mp.setenv("BATCHSYNC_TOKEN_CACHE", str(directory / "cache.json"))
        with start_in_thread(config) as sim:
            env = sim.env()
            resumed = directory / "report.jsonl"
            first = _invoke(["run", *FAST, str(inp), "-o", str(resumed)], env=env)
            assert first.exit_code == 1, first.stderr
            first_lines = len(resumed.read_bytes().splitlines())
            sim.set_config(dataclasses.replace(sim.config, forbidden_tenants=frozenset()))
            again = _invoke(["run", *FAST, str(inp), "-o", str(resumed), "--resume"], env=env)
            assert again.exit_code == 1, again.stderr  # BAD and the invalid row remain
            shards = (directory / "shard-1.jsonl", directory / "shard-2.jsonl")
            for k, shard in enumerate(shards, 1):
                ran = _invoke(
                    ["run", *FAST, str(inp), "--shard", f"{k}/2", "-o", str(shard)], env=env
                )
                assert ran.exit_code in (0, 1), ran.stderr
        yield Reports(directory, resumed, shards, first_lines)


def _report(args: list[str], *, input: bytes | None = None) -> Result:
    return _invoke(["report", *args], input=input)


def _merged(reports: Reports) -> list[dict[str, Any]]:
    result = _report([str(reports.resumed), "--format", "jsonl"])
    assert result.exit_code == 1, result.stderr
    return json_lines(result.stdout_bytes)


def test_a_row_that_failed_then_succeeded_counts_once_as_ok(reports: Reports) -> None:
    """After --resume, the fixed tenant's rows are ok, each row once, in line order."""
    raw = json_lines(reports.resumed.read_bytes())
    assert len(raw) > reports.first_run_lines  # the resumed run appended lines
    merged = _merged(reports)
    assert [d["line"] for d in merged] == list(range(1, len(ROWS) + 3))
    by_tenant: dict[str, Counter[str]] = {}
    for doc in merged:
        by_tenant.setdefault(doc["tenant"], Counter())[doc["status"]] += 1
    assert by_tenant[FLAKY] == Counter(ok=2)
    assert by_tenant[BAD] == Counter(failed=2)
    assert by_tenant[BUSY] == Counter(ok=8, skipped=1)
    assert Counter(d["status"] for d in merged)["invalid"] == 1
    flaky_first = [d for d in raw if d["tenant"] == FLAKY]
    assert {d["status"] for d in flaky_first} == {"failed", "ok"}
    for doc in merged:  # each final line is the last line of its row in the report
        same = [
            d
            for d in raw
            if (d["tenant"], d["connector"], d["line"])
            == (doc["tenant"], doc["connector"], doc["line"])
        ]
        assert same[-1] == doc


def test_shards_merge_to_the_same_outcomes_as_one_run(reports: Reports) -> None:
    """Two shard reports merged give one line per row, with the resumed run's final statuses."""
    result = _report([*map(str, reports.shards), "--format", "jsonl"])
    merged = json_lines(result.stdout_bytes)
    assert [d["line"] for d in merged] == list(range(1, len(ROWS) + 3))
    whole = {d["line"]: d["status"] for d in _merged(reports)}
    assert {d["line"]: d["status"] for d in merged} == whole
    assert result.exit_code == 1


def test_csv_read_back_equals_the_merged_jsonl(reports: Reports, tmp_path: Path) -> None:
    """The CSV (BOM, every field quoted, CRLF) read with csv holds exactly the merged JSONL."""
    out = tmp_path / "final.csv"
    result = _report([str(reports.resumed), "-o", str(out)])
    assert result.exit_code == 1, result.stderr
    data = out.read_bytes()
    assert data.startswith(b'\xef\xbb\xbf"line",')
    assert data.count(b"\r\n") == len(ROWS) + 3
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    merged = _merged(reports)
    assert len(rows) == len(merged)
    for row, doc in zip(rows, merged, strict=True):
        error = doc.pop("error") or {}
        want = {k: "" if v is None else str(v) for k, v in doc.items()}
        want.update(
            {
                f"error_{k}": "" if error.get(k) is None else str(error[k])
                for k in ("kind", "code", "message")
            }
        )
        assert row == want


class _Html5Check(HTMLParser):
    """Every element closed in order (void elements aside), no script, nothing fetched."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.problems: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "img", "link"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name in ("src", "href") or name.startswith("on") or "url(" in (value or ""):
                self.problems.append(f"{tag} {name}={value}")
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <rect .../> in SVG: complete in itself

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"</{tag}> out of order")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_self_contained_page_with_every_tenant_and_failure(
    reports: Reports, tmp_path: Path
) -> None:
    """The HTML parses, every element closed, fetches nothing, names each tenant and failure."""
    out = tmp_path / "report.html"
    result = _report([str(reports.resumed), "-o", str(out)])
    assert result.exit_code == 1, result.stderr
    page = out.read_text(encoding="utf-8")
    check = _Html5Check()
    check.feed(page)
    check.close()
    assert check.doctype.lower() == "doctype html"
    assert check.problems == []
    assert check.stack == []
    assert "<svg" in page
    assert "<style>" in page
    assert "@media print" in page
    text = " ".join(check.text)
    merged = _merged(reports)
    for tenant in {d["tenant"] for d in merged}:
        assert tenant in text
    for doc in merged:
        if doc["status"] in ("failed", "invalid"):
            assert doc["error"]["message"].split(";")[0] in text
    assert "AADSTS65001" in text
    assert "what to do" in text


def test_table_puts_the_worst_tenant_first_with_what_to_do(reports: Reports) -> None:
    """The table's first tenant is the failing one, with its error code and a next step."""
    result = _report([str(reports.resumed), "--format", "table"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"batchsync report: {len(ROWS) + 2} rows in 6 tenants: ")
    header = next(i for i, line in enumerate(lines) if line.startswith("tenant "))
    first = lines[header + 1]
    assert first.split()[0] in (BAD, "(no")  # BAD has 2 failed rows, the invalid row 1
    assert BAD in lines[header + 1]
    assert "AADSTS65001" in lines[header + 1]
    assert lines[header + 3].strip().startswith("what to do:")
    assert "superseded" in lines[1]


def test_markdown_has_totals_and_one_table_row_per_tenant(reports: Reports) -> None:
    """The Markdown holds the totals and a table row per tenant, pipes escaped."""
    result = _report([str(reports.resumed), "--format", "markdown"])
    assert result.exit_code == 1
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 6  # header + tenants
    assert f"{len(ROWS) + 2} rows in 6 tenants" in result.stdout
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows)


def test_failed_rows_become_the_input_of_a_new_run(reports: Reports, tmp_path: Path) -> None:
    """--failed writes the failed and invalid rows as run input, which `run --dry-run` reads."""
    retry = tmp_path / "retry.jsonl"
    result = _report([str(reports.resumed), "--failed", "-o", str(retry)])
    assert result.exit_code == 1
    rows = json_lines(retry.read_bytes())
    assert {r["tenant"] for r in rows} == {BAD, "not a tenant"}
    assert all(set(r) <= {"tenant", "connector", "syncType"} for r in rows)
    again = _invoke(["run", str(retry), "--dry-run"])
    assert again.exit_code == 1  # the invalid row is still invalid: fix it in the input
    assert Counter(d["status"] for d in json_lines(again.stdout_bytes)) == Counter(
        planned=2, invalid=1
    )


def test_stdin_and_files_mix_and_exit_zero_when_all_ok(reports: Reports) -> None:
    """A report of ok rows only, read from stdin, exits 0."""
    ok = b"".join(orjson.dumps(d) + b"\n" for d in _merged(reports) if d["status"] == "ok")
    result = _report(["-", "--format", "table"], input=ok)
    assert result.exit_code == 0, result.stderr
    assert " 0 failed" not in result.stdout.splitlines()[0]


def test_garbage_and_truncated_lines_are_named_and_left_out(
    reports: Reports, tmp_path: Path
) -> None:
    """A garbage line and a torn last line get one stderr line each (file:line) and are left out."""
    broken = tmp_path / "broken.jsonl"
    good = reports.resumed.read_bytes()
    broken.write_bytes(b"garbage\n" + good + b'["a list"]\n{"line": 1, "tena')
    total = len(good.splitlines())
    result = _report([str(broken), "--format", "jsonl"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"batchsync report: {broken}:{n}: {why}; line left out"
        for n, why in [
            (1, "not JSON"),
            (total + 2, "not a report line (not a JSON object)"),
            (total + 3, "truncated (the run stopped while writing it)"),
        ]
    ]
    assert json_lines(result.stdout_bytes) == _merged(reports)
    assert "Traceback" not in result.output


def test_output_link_to_a_file_is_refused(reports: Reports, tmp_path: Path) -> None:
    """-o naming a symbolic link to a file is exit 2 in one line, and the file it names is
    left alone (the same rule as run's --report)."""
    victim = tmp_path / "victim.jsonl"
    victim.write_text("keep\n")
    link = tmp_path / "out.jsonl"
    link.symlink_to(victim)
    result = _report([str(reports.resumed), "-o", str(link)])
    assert result.exit_code == 2, result.output
    assert "symbolic link to a file" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert victim.read_text() == "keep\n"
    assert link.is_symlink()


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv", "html", "markdown"])
def test_crafted_lines_are_left_out_in_every_format(
    reports: Reports, tmp_path: Path, fmt: str
) -> None:
    """Lines shaped to break a reader (nesting orjson reads but cannot write, names and errors
    that are not text) are named and left out in every format, also with --failed."""
    deep = ("[" * 1000 + "]" * 1000).encode()
    crafted = [
        b'{"line": 1, "status": "failed", "error": {"kind": ' + deep + b"}}\n",
        b'{"line": 2, "status": "failed", "tenant": ' + deep + b"}\n",
        b'{"line": 3, "status": "ok", "weird": ' + deep + b"}\n",
        b'{"line": 4, "status": "failed", "error": "text"}\n',
    ]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"".join(crafted) + reports.resumed.read_bytes())
    for failed in ([], ["--failed"]):
        result = _report([str(mixed), "--format", fmt, *failed])
        assert result.exit_code == 1, result.output
        left_out = [line for line in result.stderr.splitlines() if "line left out" in line]
        assert len(left_out) == len(crafted), result.stderr
        assert "internal error" not in result.stderr
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot read report"),
        (b"tenant,connector\nx,y\n", "holds no report line"),
    ],
)
def test_unreadable_input_exits_2_before_writing(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    """A missing file, or one with no report line, exits 2 with one line and writes nothing."""
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out.csv"
    result = _report([str(path), "-o", str(out)])
    assert result.exit_code == 2
    assert why in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    assert not out.exists()
    assert list(tmp_path.iterdir()) == ([path] if content is not None else [])


def test_output_never_replaces_an_input(reports: Reports, tmp_path: Path) -> None:
    """-o naming one of the reports read is refused (exit 2) and the report stays whole."""
    copy = tmp_path / "r.jsonl"
    copy.write_bytes(reports.resumed.read_bytes())
    result = _report([str(copy), "-o", str(copy)])
    assert result.exit_code == 2
    assert "one of the reports read" in result.stderr
    assert copy.read_bytes() == reports.resumed.read_bytes()


def test_an_empty_report_is_fine(tmp_path: Path) -> None:
    """An empty report (a run of no rows) settles to no rows and exits 0."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = _report([str(empty), "--format", "table"])
    assert result.exit_code == 0
    assert "0 rows in 0 tenants" in result.stdout


def test_format_follows_the_output_extension(reports: Reports, tmp_path: Path) -> None:
    """Without --format, -o's extension picks it; in a pipe the default is the merged JSONL."""
    for name, start in (
        ("a.md", b"### batchsync report"),
        ("a.html", b"<!DOCTYPE html>"),
        ("a.txt", b"batchsync report:"),
    ):
        out = tmp_path / name
        assert _report([str(reports.resumed), "-o", str(out)]).exit_code == 1
        assert out.read_bytes().startswith(start), name
    piped = _report([str(reports.resumed)])
    assert json_lines(piped.stdout_bytes) == _merged(reports)
