"""``batchsync report``'s text outputs: the terminal table, Markdown, CSV rows, run input.

Pure: values in, text out. The HTML page lives in ``_render_html``; what a report holds
(``Digest``) is gathered by ``_digest`` from the settled lines.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

from ._tally import Tally, TenantTally, next_step
from ._timeline import Timeline

__all__ = [
    "CsvColumns",
    "Digest",
    "counts_phrase",
    "error_label",
    "render_markdown",
    "render_table",
    "run_input",
]

NO_TENANT: Final = "(no tenant)"
_MESSAGE_CHARS: Final = 200
_MARKDOWN_TENANTS: Final = 50  # a ticket holds the worst tenants, the rest are counted


@dataclasses.dataclass(slots=True)
class Digest:
    """What ``batchsync report`` learned from its inputs."""

    sources: Sequence[str]
    tally: Tally
    lines_read: int = 0  # report lines (garbage not counted)
    lines_skipped: int = 0  # garbage or truncated lines
    timeline: Timeline | None = None

    @property
    def superseded(self) -> int:
        """Lines replaced by a later line of the same row (a resumed or repeated run)."""
        return self.lines_read - self.tally.total.rows

    @property
    def exit_status(self) -> int:
        """0 when every row's final outcome is ok, skipped or planned; 1 otherwise."""
        return 1 if self.tally.total.problems else 0


def counts_phrase(t: TenantTally) -> str:
    """``25 ok, 2 failed, 1 invalid`` (statuses with no row left out)."""
    parts = [f"{n} {status}" for status, n in t.statuses().items() if n]
    return ", ".join(parts) or "no rows"


def error_label(t: TenantTally) -> str:
    """``auth AADSTS65001 (2 rows)``: the tenant's most common error, or ``-``."""
    top = t.top_error()
    if top is None:
        return "-"
    key, count, _ = top
    code = f" {key.code}" if key.code else ""
    return f"{key.kind}{code} ({count} row{'' if count == 1 else 's'})"


def _cut(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _headline(d: Digest) -> str:
    total = d.tally.total
    tenants = len(d.tally.tenants)
    line = (
        f"{total.rows} row{'' if total.rows == 1 else 's'} in {tenants} "
        f"tenant{'' if tenants == 1 else 's'}: {counts_phrase(total)}; "
        f"{total.throttled} throttled answer{'' if total.throttled == 1 else 's'} (429/503)"
    )
    return line


def _provenance(d: Digest) -> str:
    names = ", ".join(d.sources) if len(d.sources) <= 4 else f"{len(d.sources)} reports"
    extra = []
    if d.superseded:
        extra.append(f"{d.superseded} earlier line{'' if d.superseded == 1 else 's'} superseded")
    if d.lines_skipped:
        extra.append(f"{d.lines_skipped} unreadable line{'' if d.lines_skipped == 1 else 's'}")
    return f"from {names}: {d.lines_read} lines" + (f" ({', '.join(extra)})" if extra else "")


def _tenants(d: Digest, failed_only: bool) -> list[TenantTally]:
    tenants = d.tally.worst_first()
    return [t for t in tenants if t.problems] if failed_only else tenants


def render_table(d: Digest, *, failed_only: bool = False) -> str:
    """Totals, then a line per tenant (worst first) with its most common error and what to do."""
    total = d.tally.total
    out = [f"batchsync report: {_headline(d)}", f"  {_provenance(d)}", ""]
    columns = ["rows", "ok", "failed", "invalid", "skipped"]
    if total.planned:
        columns.append("planned")
    columns.append("throttled")
    tenants = _tenants(d, failed_only)
    if not tenants:
        out.append("no tenant has a failed or invalid row" if failed_only else "no rows")
        return "\n".join(out) + "\n"
    width = max(len("tenant"), *(len(t.tenant or NO_TENANT) for t in tenants))
    widths = [max(len(c), len(str(getattr(total, c)))) for c in columns]
    head = "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    out.append(f"{'tenant'.ljust(width)}  {head}  most common error")
    for t in tenants:
        cells = "  ".join(str(getattr(t, c)).rjust(w) for c, w in zip(columns, widths, strict=True))
        out.append(f"{(t.tenant or NO_TENANT).ljust(width)}  {cells}  {error_label(t)}")
        top = t.top_error()
        if top is not None:
            key, _, message = top
            out.append(f"    {_cut(message)}")
            out.append(f"    what to do: {next_step(key.kind, key.code)}")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """A Markdown table cell: no line breaks, pipes and backslashes escaped."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def render_markdown(d: Digest, *, failed_only: bool = False) -> str:
    """Totals and the per-tenant table (the worst 50 tenants), to paste into a ticket."""
    total = d.tally.total
    out = [
        "### batchsync report",
        "",
        f"**{_md(_headline(d))}**",
        "",
        f"_{_md(_provenance(d))}_",
        "",
    ]
    tenants = _tenants(d, failed_only)
    if not tenants:
        out.append("No tenant has a failed or invalid row." if failed_only else "No rows.")
        return "\n".join(out) + "\n"
    columns = ["rows", "ok", "failed", "invalid", "skipped"]
    if total.planned:
        columns.append("planned")
    columns.append("throttled")
    out.append("| tenant | " + " | ".join(columns) + " | most common error | what to do |")
    out.append("|---|" + "---:|" * len(columns) + "---|---|")
    for t in tenants[:_MARKDOWN_TENANTS]:
        top = t.top_error()
        error = step = ""
        if top is not None:
            key, _, message = top
            error = f"{error_label(t)}: {_cut(message, 160)}"
            step = next_step(key.kind, key.code)
        cells = " | ".join(str(getattr(t, c)) for c in columns)
        out.append(f"| {_md(t.tenant or NO_TENANT)} | {cells} | {_md(error)} | {_md(step)} |")
    rest = tenants[_MARKDOWN_TENANTS:]
    if rest:
        problems = sum(1 for t in rest if t.problems)
        out.append("")
        out.append(
            f"_and {len(rest)} more tenant{'' if len(rest) == 1 else 's'}"
            + (f", {problems} of them with failed or invalid rows" if problems else ", all fine")
            + " (see the full report)_"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- row outputs

# The report's fields in the contract's order; ``error`` becomes three columns.
_KNOWN: Final = (
    "line",
    "action",
    "tenant",
    "connector",
    "id",
    "syncType",
    "status",
    "http_status",
    "attempts",
    "throttled",
    "error",
    "request_id",
    "client_request_id",
    "started_at",
    "finished_at",
    "duration_ms",
)
_ERROR_COLUMNS: Final = ("error_kind", "error_code", "error_message")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
CSV_BOM: Final = "\ufeff"


class CsvColumns:
    """The CSV's columns: the report's fields that occur (``error`` as three columns), then
    any other field, ``extra`` flattened to ``extra.NAME``, in the order first seen.

    Fed every line before the first row is written (columns cannot change midway).
    """

    __slots__ = ("_extra", "_last_keys", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}
        self._extra: dict[str, None] = {}
        self._last_keys: tuple[str, ...] = ()

    def note(self, doc: Mapping[str, Any]) -> None:
        keys = tuple(doc)
        if keys != self._last_keys:  # most lines have the same fields as the line before
            self._last_keys = keys
            self._seen.update(dict.fromkeys(keys))
        extra = doc.get("extra")
        if isinstance(extra, dict):
            for name in extra:
                if name not in self._extra:
                    self._extra[name] = None

    def columns(self) -> list[str]:
        out: list[str] = []
        for name in _KNOWN:
            if name in self._seen:
                out.extend(_ERROR_COLUMNS if name == "error" else (name,))
        out.extend(n for n in self._seen if n not in _KNOWN and n != "extra")
        out.extend(f"extra.{n}" for n in self._extra)
        return out

    @staticmethod
    def flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
        """The line as CSV fields (before text conversion): ``error`` and ``extra`` spread."""
        flat = {k: v for k, v in doc.items() if k not in ("error", "extra")}
        error = doc.get("error")
        if "error" in doc:
            err = error if isinstance(error, dict) else {}
            flat["error_kind"] = err.get("kind")
            flat["error_code"] = err.get("code")
            flat["error_message"] = err.get("message")
        extra = doc.get("extra")
        if isinstance(extra, dict):
            flat.update({f"extra.{k}": v for k, v in extra.items()})
        return flat


def csv_cell(value: Any) -> str:
    """Text of one CSV cell: null is empty; text that Excel would run as a formula gets a
    leading ``'`` (OWASP's CSV-injection advice), since rows may echo untrusted input."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return orjson.dumps(value).decode()


class CsvWriter:
    """Rows of report lines as Excel-ready CSV text: every field quoted, CRLF line ends.

    The UTF-8 BOM (which makes Excel read UTF-8) starts the header; encode as UTF-8.
    """

    __slots__ = ("_buffer", "_columns", "_writer")

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = list(columns)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")

    def header(self) -> str:
        self._writer.writerow(self._columns)
        return CSV_BOM + self._take()

    def rows(self, docs: Iterable[Mapping[str, Any]]) -> str:
        columns = self._columns
        for doc in docs:
            flat = CsvColumns.flatten(doc)
            self._writer.writerow([csv_cell(flat.get(c)) for c in columns])
        return self._take()

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


_RUN_FIELDS: Final = ("tenant", "connector", "id", "syncType")


def run_input(doc: Mapping[str, Any]) -> bytes:
    """A report line as one JSONL input row for ``batchsync run`` (its row fields only)."""
    row = {k: doc[k] for k in _RUN_FIELDS if doc.get(k) is not None}
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
