"""CSV and JSON Lines input -> ``Row`` and ``Rejected`` items (pure parsing, no I/O policy).

Rules that every reader here follows:

1. Exactly one item per data row, in input order, numbered 1, 2, 3... A data row is a CSV
   record after the header, or a JSONL line, that is not blank, not a ``#`` comment and (CSV)
   not made of empty fields only (the ``,,,`` rows Excel leaves behind).
2. A bad row never stops the run: it becomes ``Rejected`` with a stable ``code`` and a message
   that names the column. Only a problem of the whole input (a CSV header without a tenant or
   connector column) raises ``InputError``, before the first item.
3. Tenants and connectors end up in URLs, so validation here is the security boundary: a
   tenant is a GUID or an ASCII DNS name, a connector is a GUID, nothing else gets through.
4. Memory is bounded: the input is read in chunks, a physical line (or CSV record) longer than
   ``max_line_bytes`` is skipped chunk by chunk and rejected, never buffered whole.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import re
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from typing import BinaryIO, Final, TypeAlias

import orjson

from batchsync._errors import ConfigError, ErrorKind, InputError

__all__ = [
    "InputFormat",
    "Item",
    "Rejected",
    "Row",
    "SyncType",
    "canonical_connector",
    "canonical_tenant",
    "detect_format",
    "drop_duplicates",
    "read_items",
    "record_to_item",
]


class SyncType(enum.StrEnum):
    """The ``syncType`` of the Graph action, written canonically."""

    FULL = "fullSync"
    DELTA = "deltaSync"

    @classmethod
    def parse(cls, text: str) -> SyncType:
        """Match ``fullSync``/``deltaSync`` case-insensitively; raise ``ValueError`` otherwise."""
        found = _SYNC_TYPES.get(text.strip().lower())
        if found is None:
            raise ValueError(f"{_show(text)} is not a sync type; use fullSync or deltaSync")
        return found


_SYNC_TYPES: Final[dict[str, SyncType]] = {s.value.lower(): s for s in SyncType}


class InputFormat(enum.StrEnum):
    """How the input is encoded (``--format``)."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Row:
    """One valid input row, canonical: lower-case tenant and connector, canonical syncType."""

    line: int
    tenant: str
    connector: str
    sync_type: SyncType
    extra: Mapping[str, str] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity for duplicates and ``--resume``: (tenant, connector, syncType)."""
        return (self.tenant, self.connector, self.sync_type.value)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A data row that cannot be run: ``invalid`` (kind input) or ``skipped`` (duplicate).

    ``tenant``, ``connector`` and ``sync_type`` hold the raw values (trimmed, cut to 200
    characters) when the row had them, for the report.
    """

    line: int
    tenant: str | None
    connector: str | None
    sync_type: str | None
    kind: ErrorKind
    code: str
    message: str
    extra: Mapping[str, str] | None = None


Item: TypeAlias = Row | Rejected


def _row_factory() -> Callable[[int, str, str, SyncType, Mapping[str, str] | None], Row]:
    """``Row(...)`` without the frozen dataclass ``__init__``, which pays an
    ``object.__setattr__`` call per field: a third of the parse time at a million rows.
    Same object as ``Row(...)`` (a test checks it); only for values already validated.
    """
    new = object.__new__
    set_line, set_tenant, set_connector, set_sync, set_extra = (
        Row.__dict__[name].__set__ for name in ("line", "tenant", "connector", "sync_type", "extra")
    )

    def make(
        line: int, tenant: str, connector: str, sync: SyncType, extra: Mapping[str, str] | None
    ) -> Row:
        row = new(Row)
        set_line(row, line)
        set_tenant(row, tenant)
        set_connector(row, connector)
        set_sync(row, sync)
        set_extra(row, extra)
        return row

    return make


_new_row: Final = _row_factory()

# --------------------------------------------------------------------------- values

_HEX = "[0-9A-Fa-f]"
_GUID_RE: Final = re.compile(rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")
# RFC 1123 labels (ASCII letters, digits, inner hyphens), at least two labels, and a top-level
# label that starts with a letter (so no IP addresses). Explicit ASCII classes, no IGNORECASE:
# with IGNORECASE, [a-z] would also match the Kelvin sign and the long s.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE: Final = re.compile(rf"(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])")
_MAX_DOMAIN: Final = 253
_RAW_MAX: Final = 200  # raw values kept in Rejected
_TENANT_CACHE_MAX: Final = 16_384


def canonical_tenant(text: str) -> str | None:
    """A tenant GUID (braces allowed) or DNS domain name, lower-cased; None if it is neither."""
    if _GUID_RE.fullmatch(text) or (len(text) <= _MAX_DOMAIN and _DOMAIN_RE.fullmatch(text)):
        return text.lower()
    if text[:1] == "{" and text[-1:] == "}" and _GUID_RE.fullmatch(text, 1, len(text) - 1):
        return text[1:-1].lower()
    return None


def canonical_connector(text: str) -> str | None:
    """A GUID (``8-4-4-4-12`` hex, braces allowed) lower-cased without braces; None otherwise."""
    if _GUID_RE.fullmatch(text):
        return text.lower()
    if text[:1] == "{" and text[-1:] == "}" and _GUID_RE.fullmatch(text, 1, len(text) - 1):
        return text[1:-1].lower()
    return None


def _show(value: str) -> str:
    """A short, escaped rendering of a user value for messages (repr escapes control chars)."""
    return repr(value if len(value) <= 60 else value[:60] + "...")


def _raw(value: str) -> str | None:
    return value[:_RAW_MAX] if value else None


# --------------------------------------------------------------------------- columns

_TENANT, _CONNECTOR, _SYNC = "tenant", "connector", "syncType"
_FIELD_NAMES: Final = {
    _TENANT: "tenant, tenantId, tenant_id",
    _CONNECTOR: "connector, connectorId, connector_id, id",
    _SYNC: "syncType, sync_type",
}
# Names as _field_of sees them: case, spaces, '_' and '-' do not matter ("Tenant ID" is tenantid).
_ALIASES: Final[dict[str, str]] = {
    "tenant": _TENANT,
    "tenantid": _TENANT,
    "connector": _CONNECTOR,
    "connectorid": _CONNECTOR,
    "id": _CONNECTOR,
    "synctype": _SYNC,
}
_KEY_STRIP: Final = str.maketrans("", "", " _-")


# JSON key as written -> canonical field, or "" for an extra key (see _learn_field).
_FIELD_CACHE: Final[dict[str, str]] = {}


def _field_of(name: str) -> str | None:
    """The canonical field a column or key names, or None for an extra column."""
    return _ALIASES.get(name.strip().lower().translate(_KEY_STRIP))


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


# --------------------------------------------------------------------------- bytes -> text


class _Prefixed(io.RawIOBase):
    """The caller's stream with the bytes already read for BOM sniffing put back in front.

    Never closes the caller's stream: the caller opened it, the caller closes it.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._read = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            data, self._prefix = self._prefix[: len(buffer)], self._prefix[len(buffer) :]
        else:
            data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _sniff_encoding(prefix: bytes) -> str:
    """Excel writes UTF-8 (maybe with BOM) or, for "Unicode text", UTF-16 LE with a BOM."""
    if prefix.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if prefix.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(prefix) == 4:
        # No BOM: a header or JSON line never starts with NUL, so zeros in every other byte
        # mean UTF-16 without a BOM.
        if prefix[0] and not prefix[1] and prefix[2] and not prefix[3]:
            return "utf-16-le"
        if not prefix[0] and prefix[1] and not prefix[2] and prefix[3]:
            return "utf-16-be"
    return "utf-8-sig"


def _open_text(stream: BinaryIO) -> tuple[io.TextIOWrapper[io.BufferedReader[_Prefixed]], str]:
    """Decode the stream incrementally; bad bytes become U+FFFD, which marks the row."""
    prefix = b""
    while len(prefix) < 4:
        more = stream.read(4 - len(prefix))
        if not more:
            break
        prefix += more
    encoding = _sniff_encoding(prefix)
    # newline="": lines end at \n, \r\n or a lone \r (old Mac), and quoted line breaks stay as
    # written, which is what csv.reader wants.
    text = io.TextIOWrapper(
        io.BufferedReader(_Prefixed(prefix, stream)),
        encoding=encoding,
        errors="replace",
        newline="",
    )
    return text, "UTF-8" if encoding == "utf-8-sig" else encoding.upper()


class _TooLong(Exception):
    """Raised by the CSV line feed through csv.reader when a record outgrows the cap."""


class _Lines:
    """Physical lines, each read with a bounded ``readline`` so memory stays bounded."""

    __slots__ = ("_readline", "max_bytes", "size")

    def __init__(
        self, text: io.TextIOWrapper[io.BufferedReader[_Prefixed]], max_bytes: int
    ) -> None:
        self._readline = text.readline
        self.max_bytes = max_bytes
        # Room for the content and a \r\n; a chunk this long without a line end is over.
        self.size = max_bytes + 2

    def readline(self) -> str:
        """The next physical line with its line end, or ``''`` at the end of the input."""
        return self._readline(self.size)

    def measure(self, line: str) -> int:
        """The UTF-8 size of ``line`` without its line end; above ``max_bytes`` if it was cut.

        A cut line (a full chunk without a line end) has its rest skipped here, chunk by chunk.
        """
        last = line[-1]
        if last == "\n":
            end = 2 if line[-2:] == "\r\n" else 1
        elif last == "\r":
            end = 1
        elif len(line) == self.size:
            readline, size = self._readline, self.size
            while True:
                chunk = readline(size)
                if not chunk or chunk[-1] in "\r\n":
                    return self.max_bytes + 1
        else:
            end = 0
        if line.isascii():  # O(1) in CPython
            return len(line) - end
        return len(line.encode("utf-8", "surrogatepass")) - end

    def next_line(self) -> tuple[str, int, bool]:
        """(line, UTF-8 size without line end, had undecodable bytes); ``''`` at the end."""
        line = self._readline(self.size)
        if not line:
            return line, 0, False
        if line.isascii():
            n = len(line)
            return line, n if n <= self.max_bytes else self.measure(line), False
        return line, self.measure(line), "\ufffd" in line


def _is_blank_or_comment(line: str) -> bool:
    """A line whose first non-space character is ``#``, or that is only white space."""
    stripped = line.lstrip()
    return not stripped or stripped[0] == "#"


class _CsvFeed:
    """The lines csv.reader pulls: skips blanks and comments where a record starts, caps the
    size of a record (a quoted field may span lines) and notes undecodable bytes.

    The reader pulls lines only inside ``next(reader)``, so the consumer sets ``at_start``
    after each record it gets and the feed knows which pulls start a record. A record's size
    counts its line breaks (in the fast path, the last one too: two bytes of slack).
    """

    __slots__ = ("_lines", "_max", "_readline", "_record_bytes", "at_start", "bad_encoding")

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self._readline = lines.readline
        self._max = lines.max_bytes
        self._record_bytes = 0
        self.at_start = True
        self.bad_encoding = False

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        readline, limit = self._readline, self._max
        while True:
            line = readline()
            if not line:
                raise StopIteration
            # Fast path: an ASCII line within the cap (its length counts the line end).
            ascii_line = line.isascii()
            nbytes = len(line)
            if not ascii_line or nbytes > limit:
                nbytes = self._lines.measure(line)
            if self.at_start:
                first = line[0]
                if (first <= " " or first == "#" or first.isspace()) and _is_blank_or_comment(line):
                    continue
                if nbytes > limit:
                    raise _TooLong
                self.at_start = False
                self._record_bytes = nbytes
                self.bad_encoding = not ascii_line and "\ufffd" in line
                return line
            self._record_bytes += nbytes
            if self._record_bytes > limit:
                raise _TooLong
            if not ascii_line and "\ufffd" in line:
                self.bad_encoding = True
            return line


# --------------------------------------------------------------------------- rows


def read_items(
    stream: BinaryIO,
    *,
    fmt: InputFormat,
    default_sync_type: SyncType = SyncType.DELTA,
    keep_extra: bool = False,
    max_line_bytes: int = 64 * 1024,
) -> Iterator[Item]:
    """Stream ``Row`` or ``Rejected`` items from a binary input, one per data row.

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
    header that lacks a tenant or connector column, names one twice (``tenant`` and
    ``tenantId``), or is longer than ``max_line_bytes``.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be at least 1")
    fmt, default = InputFormat(fmt), SyncType(default_sync_type)
    text, encoding = _open_text(stream)
    try:
        lines = _Lines(text, max_line_bytes)
        if fmt is InputFormat.CSV:
            yield from _read_csv(lines, encoding, default, keep_extra)
        else:
            yield from _read_jsonl(lines, encoding, default, keep_extra)
    finally:
        # Leave the caller's stream open: a TextIOWrapper closes its buffer when collected.
        text.detach()


def _encoding_problem(encoding: str, csv_hint: bool) -> str:
    hint = "; save the file as 'CSV UTF-8'" if csv_hint and encoding == "UTF-8" else ""
    return f"the row has bytes that are not valid {encoding}{hint}"


def _too_long(line: int, max_bytes: int, extra_hint: str = "") -> Rejected:
    return Rejected(
        line,
        None,
        None,
        None,
        ErrorKind.INPUT,
        "line_too_long",
        f"the row is longer than {max_bytes} bytes{extra_hint}",
    )


@dataclass(frozen=True, slots=True)
class _Header:
    """Column positions of a CSV header."""

    width: int
    tenant: int
    connector: int
    sync: int  # -1: no syncType column
    names: tuple[str, ...]  # as written (trimmed), for messages
    extras: tuple[tuple[int, str], ...]  # (position, unique name) of the other columns


def _parse_header(fields: list[str]) -> tuple[dict[str, int], list[str], list[tuple[int, str]]]:
    """Map canonical fields to positions; two columns for one field is an error."""
    found: dict[str, int] = {}
    names = [f.strip() for f in fields]
    extras: list[tuple[int, str]] = []
    used: set[str] = set()
    for i, name in enumerate(names):
        field = _field_of(name)
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


def _sniff_header(first: str) -> tuple[str, list[str]]:
    """Pick the delimiter that makes a usable header; else the most frequent one."""
    candidates = (",", ";", "\t", "|")
    parsed: dict[str, list[str]] = {}
    for delim in candidates:
        fields = next(csv.reader([first], delimiter=delim, skipinitialspace=True), [])
        parsed[delim] = fields
        kinds = {_field_of(f) for f in fields}
        if _TENANT in kinds and _CONNECTOR in kinds:
            return delim, fields
    unquoted = re.sub(r'"[^"]*"', "", first)
    best = max(candidates, key=lambda d: (unquoted.count(d), -candidates.index(d)))
    return best, parsed[best]


def _missing_columns(names: list[str], missing: list[str], bad_encoding: bool) -> InputError:
    wanted = "; ".join(f"{f!r} (accepted, any case: {_FIELD_NAMES[f]})" for f in missing)
    shown = ", ".join(repr(n[:40]) for n in names[:10]) or "nothing"
    message = f"the CSV header has no column for {wanted}; the header has {shown}"
    if any(canonical_tenant(n) or canonical_connector(n) for n in names):
        message += "; the first row looks like data: add a header row 'tenant,connector,syncType'"
    if bad_encoding:
        message += "; the header is not valid text: save the file as 'CSV UTF-8'"
    return InputError(message, code="missing_column")


def _read_header_line(feed: _CsvFeed, max_bytes: int) -> str | None:
    """The first line that is not blank or a comment; None for an empty input."""
    feed.at_start = True
    try:
        return next(feed)
    except StopIteration:
        return None
    except _TooLong:
        raise InputError(
            f"the CSV header is longer than {max_bytes} bytes", code="line_too_long"
        ) from None


def _read_csv(lines: _Lines, encoding: str, default: SyncType, keep_extra: bool) -> Iterator[Item]:
    feed = _CsvFeed(lines)
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
        delimiter, fields = _sniff_header(first)
    found, names, extra_cols = _parse_header(fields)
    missing = [f for f in (_TENANT, _CONNECTOR) if f not in found]
    if missing:
        raise _missing_columns(names, missing, header_bad_encoding)
    head = _Header(
        width=len(names),
        tenant=found[_TENANT],
        connector=found[_CONNECTOR],
        sync=found.get(_SYNC, -1),
        names=tuple(names),
        extras=tuple(extra_cols),
    )
    feed.at_start = True
    enc_message = _encoding_problem(encoding, csv_hint=True)
    quote_hint = "; is a quote left open?"
    ti, ci, si, width = head.tenant, head.connector, head.sync, head.width
    need = max(ti, ci, si) + 1
    canon_tenant, canon_connector, sync_types = canonical_tenant, canonical_connector, _SYNC_TYPES
    # Tenants repeat (many connectors or rows per tenant): remember the valid ones, boundedly.
    tenants: dict[str, str] = {}
    guid_match, new_row = _GUID_RE.fullmatch, _new_row
    line = 0
    while True:
        reader = csv.reader(feed, delimiter=delimiter, skipinitialspace=True, strict=False)
        try:
            for rec in reader:
                # Undecodable bytes only matter in the fields we use: an Excel "CSV (comma
                # delimited)" export in cp1252 may have a "Müller GmbH" in another column.
                bad_line = feed.bad_encoding
                feed.at_start = True
                n = len(rec)
                if n >= need:
                    t = rec[ti].strip()
                    c = rec[ci].strip()
                    s = rec[si].strip() if si >= 0 else ""
                else:
                    t = rec[ti].strip() if ti < n else ""
                    c = rec[ci].strip() if ci < n else ""
                    s = rec[si].strip() if 0 <= si < n else ""
                if not (t or c or s) and not any(f.strip() for f in rec):
                    continue  # an empty record (",,,") counts as a blank line
                line += 1
                bad_encoding = bad_line and ("\ufffd" in t or "\ufffd" in c or "\ufffd" in s)
                extra = _csv_extra(rec, head) if keep_extra else None
                tenant = tenants.get(t)
                if tenant is None:
                    tenant = canon_tenant(t)
                    if tenant is not None and len(tenants) < _TENANT_CACHE_MAX:
                        tenants[t] = tenant
                connector = c.lower() if guid_match(c) else canon_connector(c)
                sync = sync_types.get(s.lower()) if s else default
                if (
                    bad_encoding
                    or tenant is None
                    or connector is None
                    or sync is None
                    or (n > width and any(f.strip() for f in rec[width:]))
                ):
                    yield _reject_csv(line, rec, head, t, c, s, bad_encoding, enc_message, extra)
                else:
                    yield new_row(line, tenant, connector, sync, extra)
            return
        except _TooLong:
            line += 1
            feed.at_start = True
            yield _too_long(line, max_bytes, quote_hint)
        except csv.Error as exc:  # only csv's own field size limit is left to trip
            line += 1
            feed.at_start = True
            yield _too_long(line, max_bytes, f" ({str(exc)[:80]})")


def _csv_extra(rec: list[str], head: _Header) -> dict[str, str]:
    n = len(rec)
    return {name: rec[i].strip() for i, name in head.extras if i < n}


def _reject_csv(
    line: int,
    rec: list[str],
    head: _Header,
    t: str,
    c: str,
    s: str,
    bad_encoding: bool,
    enc_message: str,
    extra: Mapping[str, str] | None,
) -> Rejected:
    """Explain the first problem of a CSV row (and list the others in the message)."""
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
        problems += _value_problems(
            (head.names[head.tenant], t),
            (head.names[head.connector], c),
            (head.names[head.sync] if head.sync >= 0 else _SYNC, s),
        )
    return Rejected(
        line,
        _raw(t),
        _raw(c),
        _raw(s),
        ErrorKind.INPUT,
        problems[0][0],
        "; ".join(m for _, m in problems),
        extra,
    )


def _value_problems(
    tenant: tuple[str, str | None], connector: tuple[str, str | None], sync: tuple[str, str | None]
) -> list[tuple[str, str]]:
    """(code, message) for each bad value, given (column name, trimmed value) pairs.

    A value of None was already reported (a JSON value that is not a string) and is skipped.
    """
    problems: list[tuple[str, str]] = []
    name, value = tenant
    if value == "":
        problems.append(("missing_value", f"column {name!r}: no value"))
    elif value is not None and canonical_tenant(value) is None:
        problems.append(
            ("bad_tenant", f"column {name!r}: {_show(value)} is not a tenant GUID or domain name")
        )
    name, value = connector
    if value == "":
        problems.append(("missing_value", f"column {name!r}: no value"))
    elif value is not None and canonical_connector(value) is None:
        problems.append(("bad_connector", f"column {name!r}: {_show(value)} is not a GUID"))
    name, value = sync
    if value and value.lower() not in _SYNC_TYPES:
        problems.append(
            ("bad_sync_type", f"column {name!r}: {_show(value)} is not fullSync or deltaSync")
        )
    return problems


# --------------------------------------------------------------------------- JSON Lines

_JSON_TYPES: Final = {bool: "a boolean", int: "a number", float: "a number"}


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return _JSON_TYPES.get(type(value), "a non-string value")


def _read_jsonl(
    lines: _Lines, encoding: str, default: SyncType, keep_extra: bool
) -> Iterator[Item]:
    max_bytes = lines.max_bytes
    next_line = lines.next_line
    enc_message = _encoding_problem(encoding, csv_hint=False)
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    field_cache, tenants, sync_types = _FIELD_CACHE, dict[str, str](), _SYNC_TYPES
    guid_match, new_row = _GUID_RE.fullmatch, _new_row
    line = 0
    while True:
        text, nbytes, bad_encoding = next_line()
        if not text:
            return
        stripped = text.strip()
        if not stripped or stripped[0] == "#":
            continue
        line += 1
        if nbytes > max_bytes:
            yield _too_long(line, max_bytes)
            continue
        if bad_encoding:
            yield Rejected(line, None, None, None, ErrorKind.INPUT, "bad_encoding", enc_message)
            continue
        try:
            obj = loads(stripped)
        except decode_error as exc:
            yield Rejected(
                line,
                None,
                None,
                None,
                ErrorKind.INPUT,
                "bad_json",
                f"not valid JSON: {str(exc)[:120]}",
            )
            continue
        if type(obj) is not dict:
            yield Rejected(
                line,
                None,
                None,
                None,
                ErrorKind.INPUT,
                "not_an_object",
                f"expected a JSON object, got {_json_type(obj) if obj is not None else 'null'}",
            )
            continue
        # Fast path: string values under one key each; anything else is explained slowly.
        tv: object = None
        cv: object = None
        sv: object = None
        seen = 0  # tenant counts 1, connector 4, syncType 16: 5 or 21 means each at most once
        for key, value in obj.items():
            field = field_cache.get(key)
            if field is None:
                field = _learn_field(key)
            if field == _TENANT:
                tv = value
                seen += 1
            elif field == _CONNECTOR:
                cv = value
                seen += 4
            elif field == _SYNC:
                sv = value
                seen += 16
        if (seen == 5 or seen == 21) and type(tv) is str and type(cv) is str:
            t = tv.strip()
            tenant = tenants.get(t)
            if tenant is None:
                tenant = canonical_tenant(t)
                if tenant is not None and len(tenants) < _TENANT_CACHE_MAX:
                    tenants[t] = tenant
            c = cv.strip()
            connector = c.lower() if guid_match(c) else canonical_connector(c)
            if sv is None:
                sync: SyncType | None = default
            elif type(sv) is str:
                s = sv.strip()
                sync = sync_types.get(s.lower()) if s else default
            else:
                sync = None
            if tenant is not None and connector is not None and sync is not None:
                extra = _json_extra(obj) if keep_extra else None
                yield new_row(line, tenant, connector, sync, extra)
                continue
        yield _json_row(line, obj, default, keep_extra)


def _learn_field(key: str) -> str:
    """``_field_of`` for a JSON key, remembered (boundedly): keys repeat on every line."""
    field = _field_of(key) or ""
    if len(_FIELD_CACHE) < 1024:
        _FIELD_CACHE[key] = field
    return field


def _json_extra(obj: Mapping[str, object]) -> dict[str, str]:
    return {key: _json_text(value) for key, value in obj.items() if not _field_of(key)}


def record_to_item(
    line: int,
    record: Mapping[str, object],
    default_sync_type: SyncType = SyncType.DELTA,
    *,
    keep_extra: bool = False,
) -> Item:
    """Validate one mapping (a library caller's row) exactly like a JSONL object.

    Same keys, aliases and rules; a ``uuid.UUID`` value is taken as its string.
    """
    return _json_row(line, record, SyncType(default_sync_type), keep_extra)


def _json_row(line: int, obj: Mapping[str, object], default: SyncType, keep_extra: bool) -> Item:
    """Turn one decoded object into a Row, or a Rejected naming the key and the problem."""
    values: dict[str, tuple[str, object]] = {}  # field -> (key as written, value)
    extra = _json_extra(obj) if keep_extra else None
    ambiguous: str | None = None
    for key, value in obj.items():
        field = _field_of(key)
        if field is None:
            continue
        if field in values:
            ambiguous = ambiguous or (
                f"keys {values[field][0]!r} and {key!r} both give the {field}; keep one"
            )
        else:
            values[field] = (key, value)
    t, c, s = (_json_str(values.get(f)) for f in (_TENANT, _CONNECTOR, _SYNC))
    if ambiguous is None and t is not None and c is not None and s is not None:
        tenant = canonical_tenant(t)
        connector = canonical_connector(c)
        sync = _SYNC_TYPES.get(s.lower()) if s else default
        if tenant is not None and connector is not None and sync is not None:
            return Row(line, tenant, connector, sync, extra)
    if ambiguous is not None:
        problems = [("ambiguous_column", ambiguous)]
    else:
        problems = []
        typed = (
            (_TENANT, t, "bad_tenant"),
            (_CONNECTOR, c, "bad_connector"),
            (_SYNC, s, "bad_sync_type"),
        )
        for field, value, code in typed:
            if value is None:
                key, bad = values[field]
                problems.append((code, f"column {key!r}: expected a string, got {_json_type(bad)}"))
        problems += _value_problems(
            (values[_TENANT][0] if _TENANT in values else _TENANT, t),
            (values[_CONNECTOR][0] if _CONNECTOR in values else _CONNECTOR, c),
            (values[_SYNC][0] if _SYNC in values else _SYNC, s),
        )
    return Rejected(
        line,
        _raw(t if t is not None else _json_text(values[_TENANT][1])),
        _raw(c if c is not None else _json_text(values[_CONNECTOR][1])),
        _raw(s if s is not None else _json_text(values[_SYNC][1])),
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
    except TypeError:  # a library caller's object that is not JSON: still show something
        return repr(value)[:_RAW_MAX]


# --------------------------------------------------------------------------- duplicates


_EMPTY: Final = 0
_MAX_STORED_LINE: Final = 2**32 - 2


def _clamp_line(line: int) -> int:
    """Lines beyond 4e9 (never seen in practice) are remembered as 4e9."""
    return min(max(line, 0), _MAX_STORED_LINE)


class _SeenKeys:
    """Open-addressing table (linear probing) of 96-bit key hashes -> first line, in flat
    arrays of 16 bytes a slot, at most half full.

    A million distinct keys take 32 MB (48 MB while growing), where a dict of Python ints
    would take over 100 MB. The 96 bits are two SipHash values (Python's ``hash`` of str,
    keyed with a per-process secret, which is fine: they are compared within one run only),
    four times cheaper than blake2b. Two different keys share them with probability about
    n**2 / 2**97 (6e-18 for a million rows): treated as impossible.
    """

    __slots__ = ("_count", "_hi", "_lines", "_lo", "_mask")

    def __init__(self, log2_size: int = 12) -> None:
        self._count = 0
        self._alloc(1 << log2_size)

    def _alloc(self, size: int) -> None:
        # array([0]) * size allocates once (bytes(n) would first build a throwaway copy).
        self._lo = array("q", [0]) * size
        self._hi = array("I", [0]) * size
        self._lines = array("I", [_EMPTY]) * size  # line + 1; 0 (_EMPTY) marks a free slot
        self._mask = size - 1

    def __len__(self) -> int:
        return self._count

    def first_line(self, key: str, line: int) -> int | None:
        """The line that first had ``key``, or None after recording ``line`` as the first."""
        lo = hash(key)
        hi = hash(key + "\x01") & 0xFFFFFFFF
        lines, los, his, mask = self._lines, self._lo, self._hi, self._mask
        i = lo & mask
        while True:
            seen = lines[i]
            if seen == _EMPTY:
                break
            if los[i] == lo and his[i] == hi:
                return seen - 1
            i = (i + 1) & mask
        lines[i] = line + 1 if 0 <= line < _MAX_STORED_LINE else _clamp_line(line) + 1
        los[i] = lo
        his[i] = hi
        self._count = count = self._count + 1
        if count + count > mask:
            self._grow()
        return None

    def _grow(self) -> None:
        old_lines, old_lo, old_hi = self._lines, self._lo, self._hi
        self._alloc(2 * (self._mask + 1))
        lines, los, his, mask = self._lines, self._lo, self._hi, self._mask
        # compress() skips the free slots in C.
        for line, lo, hi in compress(zip(old_lines, old_lo, old_hi, strict=True), old_lines):
            i = lo & mask
            while lines[i] != _EMPTY:
                i = (i + 1) & mask
            lines[i] = line
            los[i] = lo
            his[i] = hi


def drop_duplicates(items: Iterable[Item]) -> Iterator[Item]:
    """Pass items through; a Row whose key an earlier Row had becomes a ``duplicate``.

    Memory is a small fixed cost per distinct key (see ``_SeenKeys``), never the rows.
    """
    seen = _SeenKeys()
    for item in items:
        if isinstance(item, Row):
            # The parts cannot contain NUL (validated), so joining them is unambiguous.
            key = f"{item.tenant}\x00{item.connector}\x00{item.sync_type.value}"
            first = seen.first_line(key, item.line)
            if first is not None:
                item = Rejected(
                    item.line,
                    item.tenant,
                    item.connector,
                    item.sync_type.value,
                    ErrorKind.DUPLICATE,
                    "duplicate",
                    f"duplicate of line {first} (same tenant, connector and syncType)",
                    item.extra,
                )
        yield item
