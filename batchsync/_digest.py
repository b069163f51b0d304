"""``batchsync report``'s reading: report files and stdin in two passes, bounded in memory.

Pass 1 reads every line once, settles it (``_settle``) and keeps where it is (12 bytes a
line: offset and length); pass 2 reads back only the final lines, in the order the output
needs (``line`` order for the row formats, file order otherwise), and counts them
(``_tally``). stdin is spooled to a temporary file so it can be read twice. A line that is
not a report line (garbage, a torn last line) gets one warning naming its file and line
number and is left out; an input that cannot be opened, or holds no report line at all,
is an ``InputError`` (exit status 2) raised before anything is written.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import shutil
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Final

import orjson

from ._errors import InputError
from ._render import (
    NO_TENANT,
    CsvColumns,
    CsvWriter,
    Digest,
    render_markdown,
    render_table,
    run_input,
)
from ._render_html import FailedRow, render_html
from ._settle import Settler, report_line_problem
from ._tally import Tally
from ._timeline import Timeline, parse_rfc3339
from .actions import DEFAULT_ACTION

__all__ = ["ReportFormat", "digest_reports"]

_MAX_LINE: Final = 1 << 20  # a report line is well under 1 MiB; longer is not a report line
_WARNINGS_SHOWN: Final = 20
_FLUSH_BYTES: Final = 1 << 18
_FAILED_ROWS_SHOWN: Final = 500  # rows the HTML page lists one by one
_PROBLEMS: Final = frozenset({"failed", "invalid"})


# orjson reads 1024 levels of nesting but writes 254; a line that deep (at least 2 bytes a
# level) could be read and then not rendered, so such lines are checked before they count.
_DEEP_ENOUGH: Final = 500


def _depth_problem(doc: dict[str, Any]) -> str | None:
    try:
        orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return "nested too deeply"
    return None


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    JSONL = "jsonl"
    CSV = "csv"
    HTML = "html"
    MARKDOWN = "markdown"


class _Sources:
    """The open inputs, each a seekable binary file, with the first ordinal of each."""

    def __init__(self, stack: contextlib.ExitStack, paths: Sequence[str], stdin: IO[bytes]):
        self.names: list[str] = []
        self.files: list[IO[bytes]] = []
        self.first_ordinal: list[int] = []
        for path in paths:
            if path == "-":
                spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                shutil.copyfileobj(stdin, spool, 1 << 20)
                spool.seek(0)
                self.names.append("<stdin>")
                self.files.append(spool)
                continue
            try:
                fh = stack.enter_context(open(path, "rb"))  # noqa: SIM115
            except OSError as exc:
                raise InputError(
                    f"cannot read report {path!r}: {exc.strerror}; check the path"
                ) from None
            self.names.append(path)
            self.files.append(fh)


class _Warnings:
    """One stderr line per bad line, the first ``_WARNINGS_SHOWN`` of them, then a count."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self.count = 0

    def bad(self, name: str, lineno: int, problem: str) -> None:
        self.count += 1
        if self.count <= _WARNINGS_SHOWN:
            self._warn(f"{name}:{lineno}: {problem}; line left out")

    def close(self) -> None:
        if self.count > _WARNINGS_SHOWN:
            self._warn(f"... and {self.count - _WARNINGS_SHOWN} more lines left out")


def _scan(
    name: str,
    fh: IO[bytes],
    *,
    settler: Settler,
    offsets: array[int],
    lengths: array[int],
    columns: CsvColumns | None,
    warnings: _Warnings,
) -> None:
    """Pass 1 over one input: settle each report line and remember where it is."""
    pos = lineno = found = other = 0
    readline = fh.readline
    while True:
        raw = readline(_MAX_LINE)
        if not raw:
            break
        lineno += 1
        start, pos = pos, pos + len(raw)
        if len(raw) == _MAX_LINE and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of an over-long line
                raw = readline(_MAX_LINE)
                pos += len(raw)
            warnings.bad(name, lineno, "longer than 1 MiB, not a report line")
            other += 1
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if not raw.strip():
                continue  # a blank line
            other += 1
            if raw.endswith(b"\n"):
                warnings.bad(name, lineno, "not JSON")
            else:
                warnings.bad(name, lineno, "truncated (the run stopped while writing it)")
            continue
        try:  # the per-line guard: a crafted line is left out, never the end of the command
            problem = report_line_problem(doc)
            if problem is None and len(raw) > _DEEP_ENOUGH:
                problem = _depth_problem(doc)
        except Exception as exc:
            problem = f"unreadable: {type(exc).__name__}"
        if problem is not None:
            other += 1
            warnings.bad(name, lineno, f"not a report line ({problem})")
            continue
        settler.add(doc)  # safe now: the fields it reads have the types run writes
        if columns is not None:
            columns.note(doc)
        offsets.append(start)
        lengths.append(len(raw))
        found += 1
    if other and not found:
        raise InputError(
            f"{name} holds no report line; give the JSONL report that `batchsync run` wrote"
        )


def _count(tally: Tally, doc: dict[str, Any]) -> None:
    error = doc.get("error")
    kind = code = None
    message = ""
    if isinstance(error, dict):
        kind = str(error.get("kind"))
        code = error.get("code") if isinstance(error.get("code"), str) else None
        text = error.get("message")
        message = text if isinstance(text, str) else ""
    tenant = doc.get("tenant")
    throttled = doc.get("throttled")
    tally.add(
        tenant if isinstance(tenant, str) else None,
        doc["status"],
        throttled=throttled if isinstance(throttled, int) and throttled > 0 else 0,
        kind=kind,
        code=code,
        message=message,
    )


def _failed_row(doc: dict[str, Any]) -> FailedRow:
    error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
    assert isinstance(error, dict)

    def text(value: object) -> str:
        return value if isinstance(value, str) else ""

    return FailedRow(
        line=doc["line"],
        tenant=text(doc.get("tenant")),
        target=text(doc.get("connector", doc.get("id"))),
        status=doc["status"],
        kind=text(error.get("kind")),
        code=text(error.get("code")),
        message=text(error.get("message")),
        request_id=text(doc.get("request_id")),
    )


def digest_reports(
    paths: Sequence[str],
    *,
    fmt: ReportFormat,
    failed_only: bool,
    write: Callable[[bytes], object],
    warn: Callable[[str], None],
    stdin: IO[bytes],
    version: str = "",
) -> Digest:
    """Read the reports, write ``fmt`` through ``write`` and return what was learned.

    The exit status is ``Digest.exit_status``. Raises ``InputError`` before writing
    anything when an input cannot be read or holds no report line.
    """
    settler = Settler(unnamed_action=DEFAULT_ACTION)
    offsets, lengths = array("q"), array("I")
    columns = CsvColumns() if fmt is ReportFormat.CSV else None
    warnings = _Warnings(warn)
    tally = Tally()
    with contextlib.ExitStack() as stack:
        sources = _Sources(stack, paths, stdin)
        for name, fh in zip(sources.names, sources.files, strict=True):
            sources.first_ordinal.append(settler.count)
            _scan(
                name,
                fh,
                settler=settler,
                offsets=offsets,
                lengths=lengths,
                columns=columns,
                warnings=warnings,
            )
        warnings.close()
        digest = Digest(
            sources=sources.names,
            tally=tally,
            lines_read=settler.count,
            lines_skipped=warnings.count,
            timeline=Timeline() if fmt is ReportFormat.HTML else None,
        )
        row_format = fmt in (ReportFormat.JSONL, ReportFormat.CSV)
        order = settler.in_line_order() if row_format else settler.in_report_order()

        def final_lines() -> Iterator[tuple[bytes, dict[str, Any]]]:
            firsts, files = sources.first_ordinal, sources.files
            for ordinal in order:
                fh = files[bisect.bisect_right(firsts, ordinal) - 1]
                fh.seek(offsets[ordinal])
                raw = fh.read(lengths[ordinal])
                yield raw, orjson.loads(raw)

        if row_format:
            _write_rows(final_lines(), fmt, failed_only, columns, tally, write)
            return digest
        timeline = digest.timeline
        failed_rows: list[FailedRow] = []
        for _, doc in final_lines():
            _count(tally, doc)
            if timeline is not None:
                started = doc.get("started_at")
                finished = doc.get("finished_at")
                t0 = parse_rfc3339(started) if isinstance(started, str) else None
                t1 = parse_rfc3339(finished) if isinstance(finished, str) else None
                if t0 is not None and t1 is not None:
                    tenant = doc.get("tenant")
                    throttled = doc.get("throttled")
                    timeline.add(
                        tenant if isinstance(tenant, str) and tenant else NO_TENANT,
                        t0,
                        t1,
                        throttled if isinstance(throttled, int) and throttled > 0 else 0,
                    )
                if doc["status"] in _PROBLEMS and len(failed_rows) < _FAILED_ROWS_SHOWN:
                    failed_rows.append(_failed_row(doc))
    if fmt is ReportFormat.TABLE:
        text = render_table(digest, failed_only=failed_only)
    elif fmt is ReportFormat.MARKDOWN:
        text = render_markdown(digest, failed_only=failed_only)
    else:
        text = render_html(
            digest, failed_rows=failed_rows, failed_only=failed_only, version=version
        )
    write(text.encode("utf-8"))
    return digest


def _write_rows(
    lines: Iterator[tuple[bytes, dict[str, Any]]],
    fmt: ReportFormat,
    failed_only: bool,
    columns: CsvColumns | None,
    tally: Tally,
    write: Callable[[bytes], object],
) -> None:
    """The merged report (JSONL or CSV), or with ``failed_only`` the rows to run again."""
    chunk: list[bytes] = []
    size = 0
    csv_out = CsvWriter(columns.columns()) if columns is not None else None
    if csv_out is not None:
        write(csv_out.header().encode("utf-8"))
    pending: list[dict[str, Any]] = []  # CSV rows are written a batch at a time
    for raw, doc in lines:
        _count(tally, doc)
        if failed_only and doc["status"] not in _PROBLEMS:
            continue
        if csv_out is not None:
            pending.append(doc)
            if len(pending) < 1000:
                continue
            data = csv_out.rows(pending).encode("utf-8")
            pending = []
        elif failed_only:
            data = run_input(doc)
        else:
            data = raw if raw.endswith(b"\n") else raw + b"\n"
        chunk.append(data)
        size += len(data)
        if size >= _FLUSH_BYTES:
            write(b"".join(chunk))
            chunk, size = [], 0
    if csv_out is not None and pending:
        chunk.append(csv_out.rows(pending).encode("utf-8"))
    if chunk:
        write(b"".join(chunk))
