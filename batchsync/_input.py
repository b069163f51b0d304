"""CSV and JSON Lines input -> ``Row`` and ``Rejected`` items, and tenant lists for discover.

Streaming readers on one text layer (encoding sniffing, bounded lines); what a valid row is
lives in ``_rows``. Rules that every reader here follows:

1. Exactly one item per data row, in input order, numbered 1, 2, 3... A data row is a CSV
   record after the header, or a JSONL line, that is not blank, not a ``#`` comment and (CSV)
   not made of empty fields only (the ``,,,`` rows Excel leaves behind).
2. A bad row never stops the run: it becomes ``Rejected`` with a stable ``code`` and a message
   that names the column. Only a problem of the whole input (a CSV header without a tenant or
   connector column) raises ``InputError``, before the first item. Each row is read under a
   guard: anything unexpected while reading one row (a ``RecursionError`` from a crafted
   nesting, a bug) makes that row ``unreadable_row``, and the next row is read as usual.
3. Values are validated by ``_rows`` (the security boundary: they end up in URLs).
4. Memory is bounded: the input is read in chunks, a physical line (or CSV record) longer than
   ``max_line_bytes`` is skipped chunk by chunk and rejected, never buffered whole.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final

import orjson

from ._errors import ConfigError, ErrorKind, InputError
from ._rows import (
    CONNECTOR_COLUMNS,
    SYNC,
    TENANT,
    Columns,
    InputFormat,
    Item,
    Rejected,
    RowRules,
    SyncType,
    canonical_connector,
    canonical_tenant,
    field_of,
    raw_value,
    row_problems,
    show_value,
)
from ._text import CsvFeed, Lines, csv_records, next_line, open_text

__all__ = ["detect_format", "read_items", "read_tenants", "record_to_item"]


# --------------------------------------------------------------------------- formats


def detect_format(path: str, explicit: InputFormat | None) -> InputFormat:
    """``--format`` wins; else the extension; stdin (``-``) must say it explicitly."""
    if explicit is not None:
        return InputFormat(explicit)
    if path == "-":
        raise ConfigError("cannot tell the format of standard input; use --format csv|jsonl")
    lower = path.lower()
    if lower.endswith((".csv", ".tsv", ".txt")):
        return InputFormat.CSV
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return InputFormat.JSONL
    raise ConfigError(
        f"cannot tell the format of {path!r} from its extension "
        "(.csv, .tsv, .txt, .jsonl, .ndjson); use --format csv|jsonl"
    )


# --------------------------------------------------------------------------- rows


def read_items(
    stream: BinaryIO,
    *,
    fmt: InputFormat,
    default_sync_type: SyncType = SyncType.DELTA,
    keep_extra: bool = False,
    max_line_bytes: int = 64 * 1024,
    columns: Columns = CONNECTOR_COLUMNS,
) -> Iterator[Item]:
    """Stream ``Row`` or ``Rejected`` items from a binary input, one per data row.

    ``columns`` are the action's input columns (the Exchange connector sync's by default).

    ``stream`` is read in chunks and never closed. The encoding is UTF-8 (BOM optional), or
    UTF-16/32 when a BOM (or a UTF-16 zero pattern) says so; undecodable bytes reject their
    row (``bad_encoding``; so does a literal U+FFFD, the mark of an earlier bad conversion)
    when they fall in a field batchsync uses (CSV: in other columns they are kept as U+FFFD),
    and they never end the run. ``max_line_bytes`` caps a physical line and a whole CSV record,
    in UTF-8 bytes without line ends (``line_too_long``).

    CSV: the delimiter (``,`` ``;`` tab ``|``) is the one that makes the first line a usable
    header, or the one an Excel ``sep=;`` first line names. A row with fewer fields than the
    header is fine when the required values are there (missing cells are empty); more fields
    are ``ragged_row`` unless the extra ones are empty. Raises ``InputError`` only for a
    header that lacks a required column (the tenant, and the object's unless the action acts
    on the tenant itself), names one twice (``tenant`` and ``tenantId``), or is longer
    than ``max_line_bytes``.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be at least 1")
    fmt, default = InputFormat(fmt), SyncType(default_sync_type)
    text, encoding = open_text(stream)
    try:
        lines = Lines(text, max_line_bytes)
        if fmt is InputFormat.CSV:
            yield from _read_csv(lines, encoding, default, keep_extra, columns)
        else:
            yield from _read_jsonl(lines, encoding, default, keep_extra, columns)
    finally:
        # Leave the caller's stream open: a TextIOWrapper closes its buffer when collected.
        text.detach()


def _encoding_problem(encoding: str, csv_hint: bool) -> str:
    hint = "; save the file as 'CSV UTF-8'" if csv_hint and encoding == "UTF-8" else ""
    return f"the row has bytes that are not valid {encoding}{hint}"


def _refused(line: int, code: str, message: str) -> Rejected:
    """An ``invalid`` row whose values could not be read at all (none kept for the report)."""
    return Rejected(line, None, None, None, ErrorKind.INPUT, code, message)


def _too_long(line: int, max_bytes: int, extra_hint: str = "") -> Rejected:
    return _refused(line, "line_too_long", f"the row is longer than {max_bytes} bytes{extra_hint}")


class _RowProblem(Exception):
    """A row that cannot be kept, found deep inside a helper (its code and message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _unreadable(line: int, exc: Exception) -> Rejected:
    """The per-row guard's verdict (rule 2): the row's ``invalid`` line, never the run's end."""
    if isinstance(exc, _RowProblem):
        return _refused(line, exc.code, exc.message)
    detail = str(exc).splitlines()[0][:120] if str(exc) else ""
    return _refused(
        line,
        "unreadable_row",
        f"the row could not be read ({type(exc).__name__}{': ' + detail if detail else ''})",
    )


@dataclass(frozen=True, slots=True)
class _Header:
    """Column positions of a CSV header."""

    width: int
    tenant: int
    object: int  # -1: the action takes no object (acts on the tenant)
    sync: int  # -1: no syncType column
    names: tuple[str, ...]  # as written (trimmed), for messages
    extras: tuple[tuple[int, str], ...]  # (position, unique name) of the other columns


def _parse_header(
    fields: list[str], columns: Columns
) -> tuple[dict[str, int], list[str], list[tuple[int, str]]]:
    """Map canonical fields to positions; two columns for one field is an error."""
    found: dict[str, int] = {}
    names = [f.strip() for f in fields]
    extras: list[tuple[int, str]] = []
    used: set[str] = set()
    for i, name in enumerate(names):
        field = columns.field_of(name)
        if field is None:
            unique = name or f"column{i + 1}"
            while unique in used:
                unique += "_"
            used.add(unique)
            extras.append((i, unique))
        elif field in found:
            raise InputError(
                f"columns {names[found[field]]!r} and {name!r} both name the {field} column; "
                "keep one",
                code="ambiguous_column",
            )
        else:
            found[field] = i
    return found, names, extras


_EXCEL_SEP_RE: Final = re.compile(r"[Ss][Ee][Pp]=([^\"\r\n])")


_DELIMITERS: Final = (",", ";", "\t", "|")


def _sniff_header(first: str, columns: Columns) -> tuple[str, list[str]]:
    """Pick the delimiter that makes a usable header; else the most frequent one."""
    candidates = _DELIMITERS
    parsed: dict[str, list[str]] = {}
    required = set(columns.required)
    for delim in candidates:
        fields = next(csv.reader([first], delimiter=delim, skipinitialspace=True), [])
        parsed[delim] = fields
        if required <= {columns.field_of(f) for f in fields}:
            return delim, fields
    unquoted = re.sub(r'"[^"]*"', "", first)
    best = max(candidates, key=lambda d: (unquoted.count(d), -candidates.index(d)))
    return best, parsed[best]


def _missing_columns(
    names: list[str], missing: list[str], bad_encoding: bool, columns: Columns
) -> InputError:
    wanted = "; ".join(f"{f!r} (accepted, any case: {columns.names(f)})" for f in missing)
    shown = ", ".join(repr(n[:40]) for n in names[:10]) or "nothing"
    message = f"the CSV header has no column for {wanted}; the header has {shown}"
    if any(canonical_tenant(n) or canonical_connector(n) for n in names):
        header = ",".join([*columns.required, *((SYNC,) if columns.sync_type else ())])
        message += f"; the first row looks like data: add a header row '{header}'"
    if bad_encoding:
        message += "; the header is not valid text: save the file as 'CSV UTF-8'"
    return InputError(message, code="missing_column")


def _read_header_line(feed: CsvFeed, max_bytes: int) -> str | None:
    """The first line that is not blank or a comment; None for an empty input."""
    line = next_line(feed)
    if not isinstance(line, str) and line is not None:
        raise InputError(f"the CSV header is longer than {max_bytes} bytes", code="line_too_long")
    return line


def _read_csv(
    lines: Lines, encoding: str, default: SyncType, keep_extra: bool, columns: Columns
) -> Iterator[Item]:
    feed = CsvFeed(lines)
    max_bytes = lines.max_bytes
    first = _read_header_line(feed, max_bytes)
    if first is None:
        return  # empty input, or only blanks and comments: nothing to do, not an error
    # Excel's "sep=;" first line names the delimiter; the header follows it.
    sep = _EXCEL_SEP_RE.fullmatch(first.rstrip("\r\n"))
    if sep is not None:
        first = _read_header_line(feed, max_bytes)
        if first is None:
            return
    header_bad_encoding = feed.bad_encoding
    if sep is not None:
        delimiter = sep.group(1)
        fields = next(csv.reader([first], delimiter=delimiter, skipinitialspace=True), [])
    else:
        delimiter, fields = _sniff_header(first, columns)
    found, names, extra_cols = _parse_header(fields, columns)
    missing = [f for f in columns.required if f not in found]
    if missing:
        raise _missing_columns(names, missing, header_bad_encoding, columns)
    head = _Header(
        width=len(names),
        tenant=found[TENANT],
        object=found.get(columns.object_field or "", -1),
        sync=found.get(SYNC, -1),
        names=tuple(names),
        extras=tuple(extra_cols),
    )
    feed.at_start = True
    enc_message = _encoding_problem(encoding, csv_hint=True)
    ti, ci, si, width = head.tenant, head.object, head.sync, head.width
    need = max(ti, ci, si) + 1
    accept = RowRules(default, columns).accept
    object_field = columns.object_field
    line = 0
    for rec in csv_records(feed, delimiter):
        if isinstance(rec, str):
            line += 1
            yield _too_long(line, max_bytes, rec)
            continue
        try:
            # Undecodable bytes only matter in the fields we use: an Excel "CSV (comma
            # delimited)" export in cp1252 may have a "Müller GmbH" in another column.
            bad_line = feed.bad_encoding
            n = len(rec)
            if n >= need:
                t = rec[ti].strip()
                c = rec[ci].strip() if ci >= 0 else ""
                s = rec[si].strip() if si >= 0 else ""
            else:
                t = rec[ti].strip() if ti < n else ""
                c = rec[ci].strip() if 0 <= ci < n else ""
                s = rec[si].strip() if 0 <= si < n else ""
            if not (t or c or s) and not any(f.strip() for f in rec):
                continue  # an empty record (",,,") counts as a blank line
            line += 1
            bad_encoding = bad_line and ("\ufffd" in t or "\ufffd" in c or "\ufffd" in s)
            extra = _csv_extra(rec, head) if keep_extra else None
            row = accept(line, t, c, s, extra)
            if row is None or bad_encoding or (n > width and any(f.strip() for f in rec[width:])):
                item: Item = _reject_csv(
                    line, rec, head, (t, c, s), bad_encoding, enc_message, extra, object_field
                )
            else:
                item = row
        except Exception as exc:  # the per-row guard (rule 2)
            item = _unreadable(line, exc)
        yield item


def _csv_extra(rec: list[str], head: _Header) -> dict[str, str]:
    n = len(rec)
    return {name: rec[i].strip() for i, name in head.extras if i < n}


def _reject_csv(
    line: int,
    rec: list[str],
    head: _Header,
    values: tuple[str, str, str],
    bad_encoding: bool,
    enc_message: str,
    extra: Mapping[str, str] | None,
    object_field: str | None,
) -> Rejected:
    """Explain the first problem of a CSV row (and list the others in the message)."""
    t, c, s = values
    if bad_encoding:
        problems = [("bad_encoding", enc_message)]
    else:
        problems = []
        n = len(rec)
        if n > head.width and any(f.strip() for f in rec[head.width :]):
            delim_hint = "quote values that contain the delimiter"
            problems.append(
                (
                    "ragged_row",
                    f"the row has {n} fields but the header has {head.width}; {delim_hint}",
                )
            )
        problems += row_problems(
            (head.names[head.tenant], t),
            (head.names[head.object], c) if object_field is not None else None,
            (head.names[head.sync] if head.sync >= 0 else SYNC, s) if head.sync >= 0 else None,
            object_field=object_field or "",
        )
    return Rejected(
        line,
        raw_value(t),
        raw_value(c),
        raw_value(s),
        ErrorKind.INPUT,
        problems[0][0],
        "; ".join(m for _, m in problems),
        extra,
    )


# --------------------------------------------------------------------------- JSON Lines

_JSON_TYPES: Final = {bool: "a boolean", int: "a number", float: "a number"}


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return _JSON_TYPES.get(type(value), "a non-string value")


def _read_jsonl(
    lines: Lines, encoding: str, default: SyncType, keep_extra: bool, columns: Columns
) -> Iterator[Item]:
    max_bytes = lines.max_bytes
    next_line = lines.next_line
    enc_message = _encoding_problem(encoding, csv_hint=False)
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    field_cache, accept = _field_cache(columns), RowRules(default, columns).accept
    object_field = columns.object_field
    # Each field at most once: tenant counts 1, the object 4, syncType 16 (when taken).
    fast_seen = {1 + (4 if object_field else 0) + sync for sync in (0, 16)}
    line = 0
    while True:
        text, nbytes, bad_encoding = next_line()
        if not text:
            return
        stripped = text.strip()
        if not stripped or stripped[0] == "#":
            continue
        line += 1
        try:
            if nbytes > max_bytes:
                yield _too_long(line, max_bytes)
                continue
            if bad_encoding:
                yield _refused(line, "bad_encoding", enc_message)
                continue
            try:
                obj = loads(stripped)
            except decode_error as exc:
                yield _refused(line, "bad_json", f"not valid JSON: {str(exc)[:120]}")
                continue
            if type(obj) is not dict:
                got = _json_type(obj) if obj is not None else "null"
                yield _refused(line, "not_an_object", f"expected a JSON object, got {got}")
                continue
            # Fast path: string values under one key each; anything else is explained slowly.
            tv: object = None
            cv: object = None
            sv: object = None
            seen = 0
            for key, value in obj.items():
                field = field_cache.get(key)
                if field is None:
                    field = _learn_field(key, columns)
                if field == TENANT:
                    tv = value
                    seen += 1
                elif field == SYNC:
                    sv = value
                    seen += 16
                elif field:
                    cv = value
                    seen += 4
            if object_field is None:
                cv = ""
            if seen in fast_seen and type(tv) is str and type(cv) is str:
                if sv is None:
                    s = ""
                elif type(sv) is str:
                    s = sv.strip()
                else:
                    s = "\x00"  # not a string: never a sync type, explained below
                extra = _json_extra(obj, columns) if keep_extra else None
                row = accept(line, tv.strip(), cv.strip(), s, extra)
                if row is not None:
                    yield row
                    continue
            yield _json_row(line, obj, default, keep_extra, columns)
        except Exception as exc:  # the per-row guard (rule 2)
            yield _unreadable(line, exc)


# Per input columns: JSON key as written -> canonical field, or "" for an extra key.
_FIELD_CACHES: Final[dict[Columns, dict[str, str]]] = {}


def _field_cache(columns: Columns) -> dict[str, str]:
    return _FIELD_CACHES.setdefault(columns, {})


def _learn_field(key: str, columns: Columns) -> str:
    """``Columns.field_of`` for a JSON key, remembered (boundedly): keys repeat on every line."""
    field = columns.field_of(key) or ""
    cache = _field_cache(columns)
    if len(cache) < 1024:
        cache[key] = field
    return field


def _json_extra(obj: Mapping[str, object], columns: Columns) -> dict[str, str]:
    return {key: _json_text(value) for key, value in obj.items() if not columns.field_of(key)}


def record_to_item(
    line: int,
    record: Mapping[str, object],
    default_sync_type: SyncType = SyncType.DELTA,
    *,
    keep_extra: bool = False,
    columns: Columns = CONNECTOR_COLUMNS,
) -> Item:
    """Validate one mapping (a library caller's row) exactly like a JSONL object.

    Same keys, aliases and rules; a ``uuid.UUID`` value is taken as its string. Never
    raises for a bad mapping (rule 2): a mapping that cannot be read is ``unreadable_row``.
    """
    default = SyncType(default_sync_type)
    try:
        return _json_row(line, record, default, keep_extra, columns)
    except Exception as exc:
        return _unreadable(line, exc)


def _json_row(
    line: int, obj: Mapping[str, object], default: SyncType, keep_extra: bool, columns: Columns
) -> Item:
    """Turn one decoded object into a Row, or a Rejected naming the key and the problem."""
    values: dict[str, tuple[str, object]] = {}  # field -> (key as written, value)
    extra = _json_extra(obj, columns) if keep_extra else None
    ambiguous: str | None = None
    obj_field = columns.object_field
    for key, value in obj.items():
        field = columns.field_of(key)
        if field is None:
            continue
        if field in values:
            ambiguous = ambiguous or (
                f"keys {values[field][0]!r} and {key!r} both give the {field}; keep one"
            )
        else:
            values[field] = (key, value)
    t = _json_str(values.get(TENANT))
    c = _json_str(values.get(obj_field)) if obj_field else ""
    s = _json_str(values.get(SYNC)) if columns.sync_type else ""
    if ambiguous is None and t is not None and c is not None and s is not None:
        row = RowRules(default, columns).accept(line, t, c, s, extra)
        if row is not None:
            return row
    if ambiguous is not None:
        problems = [("ambiguous_column", ambiguous)]
    else:
        problems = []
        typed = (
            (TENANT, t, "bad_tenant"),
            (obj_field or "", c, f"bad_{(obj_field or '').lower()}"),
            (SYNC, s, "bad_sync_type"),
        )
        for field, value, code in typed:
            if value is None:
                key, bad = values[field]
                problems.append((code, f"column {key!r}: expected a string, got {_json_type(bad)}"))
        problems += row_problems(
            (values[TENANT][0] if TENANT in values else TENANT, t),
            (values[obj_field][0] if obj_field in values else obj_field, c) if obj_field else None,
            (values[SYNC][0] if SYNC in values else SYNC, s) if columns.sync_type else None,
            object_field=obj_field or "",
        )

    def raw(field: str | None, value: str | None) -> str | None:
        if value is not None:
            return raw_value(value)
        return raw_value(_json_text(values[field][1])) if field in values else None

    return Rejected(
        line,
        raw(TENANT, t),
        raw(obj_field, c) if obj_field else None,
        raw(SYNC, s) if columns.sync_type else None,
        ErrorKind.INPUT,
        problems[0][0],
        "; ".join(m for _, m in problems),
        extra,
    )


def _json_str(entry: tuple[str, object] | None) -> str | None:
    """The trimmed string of a key ('' when absent or null); None when it is not a string."""
    if entry is None or entry[1] is None:
        return ""
    value = entry[1]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _json_text(value: object) -> str:
    """An extra value as text: strings trimmed, null empty, anything else as compact JSON."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        if isinstance(value, dict | list) and "ecursion" in str(exc):
            # orjson writes at most 254 levels (it reads 1024): say so, never a repr's
            # RecursionError, which would depend on how deep the caller's stack is.
            raise _RowProblem(
                "too_deep", "an extra value nests more than 254 levels deep; flatten it"
            ) from None
        return raw_value(repr(value)) or ""  # a library caller's object that is not JSON


# --------------------------------------------------------------------------- tenant lists


def read_tenants(stream: BinaryIO, *, max_line_bytes: int = 64 * 1024) -> Iterator[str | Rejected]:
    """The tenants of a ``discover`` input, canonical, one per data row in input order
    (repeats kept: the caller skips them).

    The input is one tenant per line, or a CSV (``run``'s delimiters) whose header names a
    tenant column, or JSONL with a tenant key; column names as ``run`` takes them (tenant,
    tenantId, tenant_id, any case). Same text layer as ``read_items`` (encodings, blank and
    ``#`` lines, bounded lines). A row that is not a tenant is a ``Rejected``, never a guess.
    Raises ``InputError`` for a CSV header with no tenant column.
    """
    text, _ = open_text(stream)
    try:
        feed = CsvFeed(Lines(text, max_line_bytes))
        first = next_line(feed)
        if first is None:
            return
        stripped = first.strip() if isinstance(first, str) else ""
        if stripped.startswith("{"):
            yield from _jsonl_tenants(feed, first, max_line_bytes)
            return
        delimiter = _tenant_delimiter(stripped) if stripped else None
        if delimiter is None:
            yield from _plain_tenants(feed, first, max_line_bytes)
            return
        header = next(csv.reader([stripped], delimiter=delimiter, skipinitialspace=True))
        column = next(i for i, name in enumerate(header) if field_of(name) == TENANT)
        line = 0
        for rec in csv_records(feed, delimiter):
            if isinstance(rec, str):
                line += 1
                yield _too_long(line, max_line_bytes, rec)
                continue
            if not any(f.strip() for f in rec):
                continue  # an empty record (";;") counts as a blank line
            line += 1
            yield _tenant_item(line, rec[column].strip() if column < len(rec) else "")
    finally:
        text.detach()


def _tenant_delimiter(first: str) -> str | None:
    """The delimiter that makes ``first`` a header with a tenant column; None for a plain
    list (the first line is a tenant, or has no delimiter at all)."""
    if canonical_tenant(first) is not None:
        return None
    for delimiter in _DELIMITERS:
        fields = next(csv.reader([first], delimiter=delimiter, skipinitialspace=True), [])
        if any(field_of(name) == TENANT for name in fields):
            return delimiter
    if any(d in first for d in _DELIMITERS):
        raise InputError(
            f"the header {first[:80]!r} has no tenant column; name it "
            f"{CONNECTOR_COLUMNS.names(TENANT)} (any case), or give one tenant per line",
            code="missing_column",
        )
    return None


def _tenant_item(line: int, value: str) -> str | Rejected:
    tenant = canonical_tenant(value) if value else None
    if tenant is not None:
        return tenant
    shown = show_value(value) if value else "no tenant"
    return Rejected(
        line,
        raw_value(value),
        None,
        None,
        ErrorKind.INPUT,
        "bad_tenant" if value else "missing_value",
        f"input row {line}: {shown} is not a tenant ID (GUID) or domain name",
    )


def _plain_tenants(feed: CsvFeed, first: str | object, max_bytes: int) -> Iterator[str | Rejected]:
    line = 0
    current: str | object | None = first
    while current is not None:
        line += 1
        if isinstance(current, str):
            yield _tenant_item(line, current.strip())
        else:
            yield _too_long(line, max_bytes)
        current = next_line(feed)


def _jsonl_tenants(feed: CsvFeed, first: str | object, max_bytes: int) -> Iterator[str | Rejected]:
    line = 0
    current: str | object | None = first
    while current is not None:
        line += 1
        try:
            item = _jsonl_tenant(line, current, max_bytes)
        except Exception as exc:  # the per-row guard (rule 2)
            item = _unreadable(line, exc)
        yield item
        current = next_line(feed)


def _jsonl_tenant(line: int, current: str | object, max_bytes: int) -> str | Rejected:
    if not isinstance(current, str):
        return _too_long(line, max_bytes)
    try:
        obj = orjson.loads(current.strip())
    except orjson.JSONDecodeError as exc:
        message = f"input row {line}: not valid JSON: {str(exc)[:120]}"
        return _refused(line, "bad_json", message)
    if not isinstance(obj, dict):
        message = f"input row {line}: expected a JSON object with a tenant key"
        return _refused(line, "not_an_object", message)
    value = next((v for k, v in obj.items() if field_of(k) == TENANT), None)
    return _tenant_item(line, value.strip() if isinstance(value, str) else "")
