"""Tests for the input layer: CSV/JSONL parsing, validation, rejection codes, duplicates."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Literal

import orjson
import pytest
from _input_support import G1, G2, HEADER, ROW_INJECTIONS, one, one_rejected, one_row, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsync._errors import ConfigError, ErrorKind, InputError
from batchsync._input import detect_format, read_items, record_to_item
from batchsync._rows import (
    InputFormat,
    Item,
    Rejected,
    Row,
    SyncType,
)

# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("rows.csv", InputFormat.CSV),
        ("C:\\Data\\ROWS.CSV", InputFormat.CSV),
        ("rows.tsv", InputFormat.CSV),
        ("excel-unicode.txt", InputFormat.CSV),
        ("rows.jsonl", InputFormat.JSONL),
        ("rows.ndjson", InputFormat.JSONL),
        ("rows.json", InputFormat.JSONL),
    ],
)
def test_detect_format_by_extension(path: str, expected: InputFormat) -> None:
    """Without --format, the extension decides (case-insensitively)."""
    assert detect_format(path, None) is expected


def test_detect_format_explicit_wins() -> None:
    """--format overrides the extension, and makes stdin readable."""
    assert detect_format("rows.csv", InputFormat.JSONL) is InputFormat.JSONL
    assert detect_format("-", InputFormat.CSV) is InputFormat.CSV


@pytest.mark.parametrize("path", ["-", "rows.dat", "rows", "rows.csv.gz"])
def test_detect_format_unknown_is_a_config_error(path: str) -> None:
    """Stdin or an unknown extension without --format asks for --format."""
    with pytest.raises(ConfigError, match=r"--format csv\|jsonl") as info:
        detect_format(path, None)
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    ("tenant_col", "connector_col", "sync_col"),
    [
        ("tenant", "connector", "syncType"),
        ("TenantId", "ConnectorId", "sync_type"),
        ("tenant_id", "connector_id", "SYNCTYPE"),
        ("TENANT", "id", "SyncType"),
        (" Tenant ID ", "Connector-Id", "Sync Type"),
    ],
)
def test_csv_column_aliases_in_any_case(tenant_col: str, connector_col: str, sync_col: str) -> None:
    """Headers and their aliases match in any case, trimmed."""
    data = f"{tenant_col},{connector_col},{sync_col}\ncontoso.com,{G1},fullSync\n"
    assert one_row(data) == Row(1, "contoso.com", G1, SyncType.FULL)


def test_csv_columns_in_any_order_with_others_ignored() -> None:
    """Column order does not matter and other columns are ignored."""
    data = f"name,syncType,connector,notes,tenant\nAcme,deltaSync,{G1},x,contoso.com\n"
    assert one_row(data) == Row(1, "contoso.com", G1, SyncType.DELTA)


def test_csv_values_are_trimmed_and_canonical() -> None:
    """Values are trimmed, tenants and connectors lower-cased, syncType canonical."""
    data = f"tenant,connector,syncType\n  CONTOSO.onmicrosoft.COM , {{{G1.upper()}}} , FULLSYNC \n"
    assert one_row(data) == Row(1, "contoso.onmicrosoft.com", G1, SyncType.FULL)


def test_csv_sync_type_defaults_when_empty_or_missing() -> None:
    """An empty syncType, or no syncType column, takes the default sync type."""
    assert one_row(f"{HEADER}contoso.com,{G1},\n").sync_type is SyncType.DELTA
    assert one_row(f"tenant,connector\ncontoso.com,{G1}\n").sync_type is SyncType.DELTA
    found = parse(f"tenant,connector\ncontoso.com,{G1}\n", default_sync_type=SyncType.FULL)
    assert found == [Row(1, "contoso.com", G1, SyncType.FULL)]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    """Excel's ',' and ';' (and tab, '|') are recognized from the header line."""
    lines = ["tenant", "connector", "syncType", "note"]
    data = delimiter.join(lines) + "\n" + delimiter.join(["contoso.com", G1, "", "a,b;c"]) + "\n"
    data = data.replace("a,b;c", '"a,b;c"')
    item = parse(data, keep_extra=True)
    assert item == [Row(1, "contoso.com", G1, SyncType.DELTA, {"note": "a,b;c"})]


@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
def test_csv_excel_sep_line_names_the_delimiter(delimiter: str) -> None:
    """Excel's 'sep=;' first line sets the delimiter and is not the header."""
    data = f"sep={delimiter}\r\ntenant{delimiter}connector\r\ncontoso.com{delimiter}{G1}\r\n"
    assert parse(data) == [Row(1, "contoso.com", G1, SyncType.DELTA)]


def test_csv_semicolon_header_with_comma_in_values() -> None:
    """A ';' file is not misread as ',' because a value holds a comma."""
    data = f'name;tenant;connector\n"Acme, Inc.";contoso.com;{G1}\n'
    assert one_row(data) == Row(1, "contoso.com", G1, SyncType.DELTA)


def test_csv_excel_utf8_bom_and_crlf() -> None:
    """Excel's 'CSV UTF-8': a BOM and CRLF line ends."""
    data = f"\ufefftenant;connector;syncType\r\ncontoso.com;{G1};fullSync\r\n".encode()
    assert one_row(data) == Row(1, "contoso.com", G1, SyncType.FULL)


def test_csv_lone_cr_line_ends() -> None:
    """Old Mac line ends (a lone CR) separate rows too."""
    data = f"{HEADER}contoso.com,{G1},\rfabrikam.com,{G2},\r".replace("\n", "\r")
    assert [r.tenant for r in parse(data) if isinstance(r, Row)] == ["contoso.com", "fabrikam.com"]


def test_csv_quoted_fields_with_quotes_newlines_and_delimiters() -> None:
    """Quoted fields keep doubled quotes, line breaks and delimiters, spanning lines."""
    data = (
        "tenant,connector,note\r\n"
        f'contoso.com,"{G1}","He said ""hi"",\r\nthen, left"\r\n'
        f"fabrikam.com,{G2},plain\r\n"
    )
    found = parse(data, keep_extra=True)
    assert found == [
        Row(1, "contoso.com", G1, SyncType.DELTA, {"note": 'He said "hi",\r\nthen, left'}),
        Row(2, "fabrikam.com", G2, SyncType.DELTA, {"note": "plain"}),
    ]


def test_csv_comments_and_blank_lines_are_skipped_and_not_counted() -> None:
    """Blank lines, '#' lines (even indented) and ',,,' rows are skipped; numbering ignores them."""
    data = (
        "# exported by Excel\n"
        "\n"
        "tenant,connector,syncType\n"
        "   \n"
        f"contoso.com,{G1},\n"
        "  # a comment\n"
        ",,\n"
        ' "" , ,\n'
        "\r\n"
        f"fabrikam.com,{G2},\n"
        "#contoso.com,{G2},\n"
    )
    assert [(i.line, i.tenant) for i in parse(data)] == [(1, "contoso.com"), (2, "fabrikam.com")]


def test_csv_hash_inside_a_quoted_field_is_not_a_comment() -> None:
    """A line inside a quoted multi-line field is data even if it starts with '#'."""
    data = f'tenant,connector,note\ncontoso.com,{G1},"first\n# not a comment\n\nlast"\n'
    item = one(data, keep_extra=True)
    assert isinstance(item, Row)
    assert item.extra == {"note": "first\n# not a comment\n\nlast"}


def test_csv_line_numbers_count_data_rows_only() -> None:
    """The first data row is 1 whatever precedes it; bad rows are counted too."""
    data = f"#c\n{HEADER}\nbad,row,\ncontoso.com,{G1},\n#c\nfabrikam.com,{G2},fullSync\n"
    assert [i.line for i in parse(data)] == [1, 2, 3]


def test_csv_keep_extra() -> None:
    """Other columns come back trimmed in extra only with keep_extra."""
    data = f"tenant,connector,Customer Name,notes\ncontoso.com,{G1}, Acme ,\n"
    assert one_row(data).extra is None
    item = one(data, keep_extra=True)
    assert isinstance(item, Row)
    assert item.extra == {"Customer Name": "Acme", "notes": ""}


def test_csv_keep_extra_names_empty_and_repeated_headers() -> None:
    """Unnamed or repeated extra columns still get distinct names."""
    data = f"tenant,connector,,note,note\ncontoso.com,{G1},x,a,b\n"
    item = one(data, keep_extra=True)
    assert isinstance(item, Row)
    assert item.extra == {"column3": "x", "note": "a", "note_": "b"}


def test_csv_short_row_with_required_values_is_fine() -> None:
    """A row with fewer fields than the header is fine when tenant and connector are there."""
    data = f"tenant,connector,syncType,note\ncontoso.com,{G1}\n"
    assert one_row(data) == Row(1, "contoso.com", G1, SyncType.DELTA)


def test_csv_trailing_empty_fields_are_not_ragged() -> None:
    """Extra empty cells past the header (Excel's trailing delimiters) are harmless."""
    assert one_row(f"{HEADER}contoso.com,{G1},fullSync,,,\n").sync_type is SyncType.FULL


@pytest.mark.parametrize(
    ("row", "code", "column", "fragment"),
    [
        (f",{G1},", "missing_value", "tenant", "no value"),
        ("contoso.com,,", "missing_value", "connector", "no value"),
        ("contoso.com", "missing_value", "connector", "no value"),
        (f"../x,{G1},", "bad_tenant", "tenant", "'../x' is not a tenant GUID or domain name"),
        ("contoso.com,abc,", "bad_connector", "connector", "'abc' is not a GUID"),
        (f"contoso.com,{G1},fast", "bad_sync_type", "syncType", "'fast' is not fullSync"),
    ],
)
def test_csv_bad_values_are_rejected_naming_the_column(
    row: str, code: str, column: str, fragment: str
) -> None:
    """Each bad value gives its code and a message naming the column and the problem."""
    item = one_rejected(HEADER + row + "\n")
    assert (item.kind, item.code, item.line) == (ErrorKind.INPUT, code, 1)
    assert f"column '{column}'" in item.message
    assert fragment in item.message


def test_csv_message_uses_the_header_as_written() -> None:
    """The message names the column as the file spells it."""
    item = one_rejected("TenantId,ConnectorId\ncontoso.com,nope\n")
    assert item.message == "column 'ConnectorId': 'nope' is not a GUID"


def test_csv_several_problems_are_all_listed() -> None:
    """The code is the first problem's; the message lists every problem."""
    item = one_rejected(f"{HEADER}a/b,xyz,never\n")
    assert item.code == "bad_tenant"
    assert "'tenant'" in item.message
    assert "'connector'" in item.message
    assert "'syncType'" in item.message


@pytest.mark.parametrize("tenant", ROW_INJECTIONS)
def test_csv_injection_attempts_are_bad_tenant(tenant: str) -> None:
    """Every URL-bending tenant in a CSV row is rejected as bad_tenant."""
    quoted = '"' + tenant.replace('"', '""') + '"'
    item = one_rejected(f"{HEADER}{quoted},{G1},\n")
    assert item.code == "bad_tenant"


def test_csv_rejected_keeps_raw_values_trimmed_and_cut() -> None:
    """Rejected rows carry the raw values (trimmed, at most 200 characters) for the report."""
    long_tenant = "x/" * 300
    item = one_rejected(f"{HEADER}  {long_tenant}  , {G1.upper()} , FULLSYNC\n")
    assert item.tenant == long_tenant[:200]
    assert item.connector == G1.upper()
    assert item.sync_type == "FULLSYNC"
    assert len(item.message) < 200
    empty = one_rejected(f"{HEADER},,\n" + f"x,{G1},\n")
    assert empty.tenant is None or empty.tenant == "x"


def test_csv_missing_values_leave_none_in_rejected() -> None:
    """A missing raw value is None in the Rejected item."""
    found = parse(f"{HEADER}contoso.com,,\n")
    assert found == [
        Rejected(
            1,
            "contoso.com",
            None,
            None,
            ErrorKind.INPUT,
            "missing_value",
            "column 'connector': no value",
        )
    ]


def test_csv_ragged_row_with_extra_values() -> None:
    """More non-empty fields than the header is ragged_row (an unquoted delimiter)."""
    item = one_rejected(f"{HEADER}contoso.com,{G1},fullSync,Acme, Inc.\n")
    assert item.code == "ragged_row"
    assert "5 fields but the header has 3" in item.message


def test_csv_non_utf8_bytes_reject_only_that_row() -> None:
    """Windows-1252 bytes in a used field make that row bad_encoding; the rows around it parse."""
    data = (
        b"tenant,connector,name\n"
        + f"contoso.com,{G1},ok\n".encode()
        + b"fabr\xefkam.com,"
        + f"{G2},ok\n".encode()
        + f"litware.com,{G1},ok\n".encode()
    )
    found = parse(data)
    assert [type(i).__name__ for i in found] == ["Row", "Rejected", "Row"]
    bad = found[1]
    assert isinstance(bad, Rejected)
    assert (bad.line, bad.code, bad.kind) == (2, "bad_encoding", ErrorKind.INPUT)
    assert "UTF-8" in bad.message
    assert found[2].line == 3


def test_csv_non_utf8_bytes_in_an_ignored_column_keep_the_row() -> None:
    """An Excel cp1252 export with "Müller GmbH" in an unused column still syncs that row."""
    data = b"tenant,connector,name\n" + f"fabrikam.com,{G2},M".encode() + b"\xfcller GmbH\n"
    (row,) = parse(data)
    assert isinstance(row, Row)
    assert row.tenant == "fabrikam.com"


def test_csv_bad_bytes_inside_a_multiline_field_mark_the_record() -> None:
    """Bad bytes on a continuation line of a quoted field reject that record."""
    data = HEADER.encode() + f'contoso.com,{G1},"a\n'.encode() + b'\xff"\n'
    assert one_rejected(data).code == "bad_encoding"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_csv_utf16_and_utf32_are_decoded(encoding: str) -> None:
    """Excel's 'Unicode text' (UTF-16 with BOM, tab-delimited) and kin are read correctly."""
    text = f"tenant\tconnector\tsyncType\tname\r\ncontoso.com\t{G1}\tfullSync\tMüller\r\n"
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    found = parse(bom + text.encode(encoding), keep_extra=True)
    assert found == [Row(1, "contoso.com", G1, SyncType.FULL, {"name": "Müller"})]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_csv_utf16_without_bom_is_detected(encoding: str) -> None:
    """UTF-16 without a BOM is recognized by its zero bytes."""
    text = f"tenant,connector\r\ncontoso.com,{G1}\r\n"
    assert parse(text.encode(encoding)) == [Row(1, "contoso.com", G1, SyncType.DELTA)]


@pytest.mark.parametrize("data", [b"\x00\n\x00\n", b"\n\x00\n\x00"])
def test_utf8_nuls_and_line_ends_are_not_mistaken_for_utf16(data: bytes) -> None:
    """NUL bytes between line ends are two damaged UTF-8 lines, not one UTF-16 line."""
    found = parse(data, "jsonl")
    assert [item.line for item in found] == [1, 2]
    assert all(isinstance(item, Rejected) for item in found)


def test_csv_utf16_odd_trailing_byte_rejects_the_last_row() -> None:
    """A truncated UTF-16 file rejects only its damaged last row."""
    data = f"tenant,connector\r\ncontoso.com,{G1}\r\nfabrikam.com,{G2}".encode("utf-16") + b"\x00"
    found = parse(data)
    assert isinstance(found[0], Row)
    assert isinstance(found[1], Rejected)
    assert found[1].code == "bad_encoding"
    assert "UTF-16" in found[1].message


def test_csv_huge_line_is_rejected_and_the_next_row_parses() -> None:
    """A physical line over max_line_bytes is line_too_long; reading resumes after it."""
    data = f"{HEADER}contoso.com,{G1},{'x' * 5000}\nfabrikam.com,{G2},\n"
    found = parse(data, max_line_bytes=1024)
    assert [(i.line, type(i).__name__) for i in found] == [(1, "Rejected"), (2, "Row")]
    assert isinstance(found[0], Rejected)
    assert found[0].code == "line_too_long"
    assert "1024 bytes" in found[0].message


def test_csv_line_exactly_at_the_cap_is_fine() -> None:
    """A line of exactly max_line_bytes (line end not counted) passes; one more byte fails."""
    row = f"contoso.com,{G1},"
    for ending in ("\n", "\r\n"):
        exact = parse(f"{HEADER}{row}{ending}", max_line_bytes=len(row))
        assert isinstance(exact[0], Row)
        over = parse(f"{HEADER}{row}{ending}", max_line_bytes=len(row) - 1)
        assert isinstance(over[0], Rejected)
        assert over[0].code == "line_too_long"


def test_csv_cap_counts_utf8_bytes() -> None:
    """The cap is in UTF-8 bytes, not characters."""
    header = "tenant,connector,note\n"
    row = f"contoso.com,{G1},\u00e9\u00e9"  # 2 characters, 4 bytes
    assert isinstance(parse(f"{header}{row}\n", max_line_bytes=len(row) + 2)[0], Row)
    assert isinstance(parse(f"{header}{row}\n", max_line_bytes=len(row) + 1)[0], Rejected)


def test_csv_unclosed_quote_is_capped_then_reading_resumes() -> None:
    """An unclosed quote swallows lines only up to the cap, then rows parse again."""
    swallowed = "".join(f"t{i}.com,{G1},\n" for i in range(50))
    data = f'{HEADER}contoso.com,{G1},"oops\n{swallowed}'
    found = parse(data, max_line_bytes=300)
    assert isinstance(found[0], Rejected)
    assert found[0].code == "line_too_long"
    assert "quote" in found[0].message
    assert [i.line for i in found] == list(range(1, len(found) + 1))
    assert isinstance(found[-1], Row)
    assert found[-1].tenant == "t49.com"


def test_csv_unclosed_quote_at_the_end_is_one_item() -> None:
    """An unclosed quote at the end of the input is still exactly one item."""
    found = parse(f'{HEADER}contoso.com,"{G1}')
    assert found == [Row(1, "contoso.com", G1, SyncType.DELTA)]


class _HugeLineStream(io.RawIOBase):
    """A header, one line of `size` bytes, then a good row; made up on the fly."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._parts = iter(
            [HEADER.encode(), b"contoso.com,"]
            + [b"y" * 65536] * (size // 65536)
            + [f"\nfabrikam.com,{G2},\n".encode()]
        )
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = next(self._parts, b"")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def test_csv_huge_line_is_never_buffered_whole() -> None:
    """A 16 MB line is skipped in chunks: memory stays far below the line's size."""
    tracemalloc.start()
    try:
        found = list(
            read_items(
                io.BufferedReader(_HugeLineStream(16 * 1024 * 1024)),
                fmt=InputFormat.CSV,
                max_line_bytes=4096,
            )
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(i).__name__ for i in found] == ["Rejected", "Row"]
    assert peak < 2 * 1024 * 1024


def test_csv_header_problems_raise_input_error_naming_the_column() -> None:
    """A header without a tenant or connector column is an InputError naming it and aliases."""
    with pytest.raises(InputError, match="'tenant'") as info:
        parse(f"customer,connector\ncontoso.com,{G1}\n")
    assert "tenantId" in info.value.message
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="'connector'") as info:
        parse("tenant,conn\ncontoso.com,x\n")
    assert "connectorId" in info.value.message
    assert "'tenant', 'conn'" in info.value.message


def test_csv_headerless_file_gets_a_hint() -> None:
    """A file that starts with data says a header row is needed."""
    with pytest.raises(InputError, match="header row"):
        parse(f"contoso.com,{G1},fullSync\n")


def test_csv_two_columns_for_one_field_is_an_input_error() -> None:
    """tenant and tenantId together are ambiguous: InputError naming both."""
    with pytest.raises(InputError, match="'tenant' and 'TenantId'"):
        parse(f"tenant,TenantId,connector\na.com,b.com,{G1}\n")


def test_csv_header_longer_than_the_cap_is_an_input_error() -> None:
    """A header over max_line_bytes cannot be read: InputError."""
    with pytest.raises(InputError, match="longer than"):
        parse("tenant,connector," + "x" * 2000 + "\n", max_line_bytes=100)


@pytest.mark.parametrize(
    "data", ["", "\n\n", "# only a comment\n", "\ufeff", HEADER, "#c\r\n" + HEADER + "\r\n#x\r\n"]
)
def test_csv_empty_input_yields_nothing(data: str) -> None:
    """Empty input, only comments, or a header alone: no items and no error."""
    assert parse(data) == []


def test_csv_input_error_is_raised_before_any_item() -> None:
    """The header check happens on the first next(), before any row is read."""
    it = read_items(io.BytesIO(b"a,b\n" + b"x,y\n" * 10), fmt=InputFormat.CSV)
    with pytest.raises(InputError):
        next(it)


def test_reader_leaves_the_stream_open() -> None:
    """The caller's stream is not closed by reading, even when abandoned midway."""
    stream = io.BytesIO(f"{HEADER}contoso.com,{G1},\nfabrikam.com,{G2},\n".encode())
    it = read_items(stream, fmt=InputFormat.CSV)
    next(it)
    del it
    gc.collect()
    assert not stream.closed
    stream2 = io.BytesIO(f"{HEADER}contoso.com,{G1},\n".encode())
    assert len(list(read_items(stream2, fmt=InputFormat.CSV))) == 1
    assert not stream2.closed


class _CountingStream(io.RawIOBase):
    """An endless CSV that counts the bytes handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.given = 0
        self._chunk = HEADER.encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._chunk[: len(buffer)]
        self._chunk = self._chunk[len(data) :] or f"contoso.com,{G1},\n".encode()
        buffer[: len(data)] = data
        self.given += len(data)
        return len(data)


def test_reader_streams_instead_of_reading_everything() -> None:
    """The first items come after reading a few kilobytes of an endless input."""
    source = _CountingStream()
    it = read_items(io.BufferedReader(source), fmt=InputFormat.CSV)
    first = [next(it) for _ in range(3)]
    assert [i.line for i in first] == [1, 2, 3]
    assert source.given < 64 * 1024


# --------------------------------------------------------------------------- JSONL


def jl(*objs: object) -> bytes:
    return b"\n".join(orjson.dumps(o) for o in objs) + b"\n"


def test_jsonl_rows_with_aliases_and_case() -> None:
    """Keys match case-insensitively with aliases; values are canonicalized."""
    data = jl(
        {"tenant": "Contoso.com", "connector": G1.upper(), "syncType": "FULLSYNC"},
        {"TenantId": "fabrikam.com", "Id": G2},
        {"tenant_id": G1.upper(), "connector_id": "{" + G2 + "}", "sync_type": "deltasync"},
    )
    assert parse(data, "jsonl") == [
        Row(1, "contoso.com", G1, SyncType.FULL),
        Row(2, "fabrikam.com", G2, SyncType.DELTA),
        Row(3, G1, G2, SyncType.DELTA),
    ]


def test_jsonl_null_or_empty_sync_type_takes_the_default() -> None:
    """A null or empty syncType takes the default sync type."""
    data = jl(
        {"tenant": "a.com", "connector": G1, "syncType": None},
        {"tenant": "b.com", "connector": G1, "syncType": ""},
    )
    found = parse(data, "jsonl", default_sync_type=SyncType.FULL)
    assert [i.sync_type for i in found if isinstance(i, Row)] == [SyncType.FULL, SyncType.FULL]


def test_jsonl_blank_and_comment_lines_are_skipped_and_not_counted() -> None:
    """Blank and '#' lines are skipped; numbering counts only data lines."""
    row = orjson.dumps({"tenant": "a.com", "connector": G1}).decode()
    data = f"# header comment\n\n{row}\r\n   \n  # x\n[1]\n{row}\n"
    assert [(i.line, type(i).__name__) for i in parse(data, "jsonl")] == [
        (1, "Row"),
        (2, "Rejected"),
        (3, "Row"),
    ]


def test_jsonl_utf8_bom_is_ignored() -> None:
    """A UTF-8 BOM before the first object is not part of it."""
    data = b"\xef\xbb\xbf" + jl({"tenant": "a.com", "connector": G1})
    assert parse(data, "jsonl") == [Row(1, "a.com", G1, SyncType.DELTA)]


@pytest.mark.parametrize(
    ("line", "code", "fragment"),
    [
        ("{bad json", "bad_json", "not valid JSON"),
        ('{"tenant": "a.com", "connector": "' + G1 + '"} trailing', "bad_json", "not valid"),
        ("[1, 2]", "not_an_object", "got an array"),
        ('"a.com"', "not_an_object", "got a non-string"),
        ("42", "not_an_object", "got a number"),
        ("null", "not_an_object", "got null"),
        ("true", "not_an_object", "got a boolean"),
        ('{"connector": "' + G1 + '"}', "missing_value", "column 'tenant': no value"),
        ('{"tenant": null, "connector": "' + G1 + '"}', "missing_value", "'tenant': no value"),
        ('{"tenant": " ", "connector": "' + G1 + '"}', "missing_value", "'tenant': no value"),
        ('{"tenant": "a.com"}', "missing_value", "column 'connector': no value"),
        ('{"tenant": 42, "connector": "' + G1 + '"}', "bad_tenant", "expected a string"),
        ('{"tenant": "a.com", "connector": 7}', "bad_connector", "got a number"),
        ('{"tenant": "a.com", "connector": "' + G1 + '", "syncType": 1}', "bad_sync_type", ""),
        ('{"tenant": "a.com", "connector": "' + G1 + '", "syncType": "x"}', "bad_sync_type", ""),
        ('{"tenant": "a/b", "connector": "' + G1 + '"}', "bad_tenant", "'a/b'"),
        ('{"tenant": "a.com", "connector": "abc"}', "bad_connector", "'abc' is not a GUID"),
        ('{"tenant": ["a.com"], "connector": "' + G1 + '"}', "bad_tenant", "got an array"),
        ('{"tenant": "a.com", "connector": {"id": 1}}', "bad_connector", "got an object"),
        (
            '{"tenant": "a.com", "tenantId": "b.com", "connector": "' + G1 + '"}',
            "ambiguous_column",
            "keys 'tenant' and 'tenantId'",
        ),
        (
            '{"tenant": "a.com", "Tenant": "a.com", "connector": "' + G1 + '"}',
            "ambiguous_column",
            "both give the tenant",
        ),
    ],
)
def test_jsonl_rejections(line: str, code: str, fragment: str) -> None:
    """Each JSONL problem has its code and a message naming the key or the problem."""
    item = one_rejected(line + "\n", "jsonl")
    assert (item.kind, item.code, item.line) == (ErrorKind.INPUT, code, 1)
    assert fragment in item.message


def test_jsonl_rejected_keeps_raw_values() -> None:
    """A rejected JSONL row carries its raw values; non-strings as JSON text."""
    item = one_rejected(jl({"tenant": 42, "connector": " abc ", "syncType": "x"}), "jsonl")
    assert (item.tenant, item.connector, item.sync_type) == ("42", "abc", "x")


@pytest.mark.parametrize("tenant", ROW_INJECTIONS)
def test_jsonl_injection_attempts_are_bad_tenant(tenant: str) -> None:
    """Every URL-bending tenant in a JSONL row is rejected as bad_tenant."""
    item = one_rejected(jl({"tenant": tenant, "connector": G1}), "jsonl")
    assert item.code == "bad_tenant"


def test_jsonl_keep_extra() -> None:
    """Other keys come back as text in extra only with keep_extra."""
    data = jl({"tenant": "a.com", "connector": G1, "name": " Acme ", "n": 1, "o": None, "l": [1]})
    assert one_row(data, "jsonl").extra is None
    item = one(data, "jsonl", keep_extra=True)
    assert isinstance(item, Row)
    assert item.extra == {"name": "Acme", "n": "1", "o": "", "l": "[1]"}
    bad = one(jl({"tenant": "a b", "connector": G1, "name": "Acme"}), "jsonl", keep_extra=True)
    assert isinstance(bad, Rejected)
    assert bad.extra == {"name": "Acme"}


def test_jsonl_non_utf8_and_huge_lines_are_rejected_alone() -> None:
    """Bad bytes and over-long lines reject their line; the next lines still parse."""
    good = jl({"tenant": "a.com", "connector": G1})
    data = good + b'{"tenant": "\xff"}\n' + b'{"x": "' + b"y" * 5000 + b'"}\n' + good
    found = parse(data, "jsonl", max_line_bytes=1000)
    assert [(i.line, getattr(i, "code", "row")) for i in found] == [
        (1, "row"),
        (2, "bad_encoding"),
        (3, "line_too_long"),
        (4, "row"),
    ]


def test_jsonl_utf16_is_decoded() -> None:
    """A UTF-16 JSONL file (with BOM) is read correctly."""
    data = jl({"tenant": "a.com", "connector": G1}).decode().encode("utf-16")
    assert parse(data, "jsonl") == [Row(1, "a.com", G1, SyncType.DELTA)]


def test_record_to_item_validates_a_mapping_like_jsonl() -> None:
    """A library caller's mapping follows the JSONL rules, UUID objects included."""
    assert record_to_item(4, {"TenantId": "A.com", "id": uuid.UUID(G1)}) == Row(
        4, "a.com", G1, SyncType.DELTA
    )
    assert record_to_item(
        1, {"tenant": "a.com", "connector": G1, "syncType": SyncType.FULL}
    ) == Row(1, "a.com", G1, SyncType.FULL)
    assert record_to_item(1, {"tenant": "a.com", "connector": G1}, SyncType.FULL) == Row(
        1, "a.com", G1, SyncType.FULL
    )
    bad = record_to_item(2, {"tenant": "a/b", "connector": G1, "x": object()}, keep_extra=True)
    assert isinstance(bad, Rejected)
    assert (bad.line, bad.code) == (2, "bad_tenant")
    assert bad.extra is not None
    assert bad.extra["x"].startswith("<object")


# --------------------------------------------------------------------------- properties

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_numbered(found: list[Item]) -> None:
    assert [i.line for i in found] == list(range(1, len(found) + 1))
    for item in found:
        assert isinstance(item, Row | Rejected)
        if isinstance(item, Rejected):
            assert item.kind is ErrorKind.INPUT
            assert item.code
            assert item.message


_csv_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters='\r\n"'),
    max_size=60,
)


@FUZZ
@given(lines=st.lists(_csv_text, max_size=20))
def test_property_csv_one_item_per_data_line(lines: list[str]) -> None:
    """Random unquoted lines after a header: never raises, one item per data line, in order."""
    data = HEADER + "".join(line + "\n" for line in lines)
    found = parse(data)
    expected = [
        line
        for line in lines
        if line.strip()
        and not line.lstrip().startswith("#")
        and any(field.strip() for field in line.split(","))
    ]
    assert len(found) == len(expected)
    _assert_numbered(found)


@FUZZ
@given(
    body=st.lists(
        st.sampled_from([*',;\t"#\r\n x.\ufffd\u00e9', "contoso.com", G1]), max_size=80
    ).map("".join),
    cap=st.integers(min_value=8, max_value=200),
)
def test_property_csv_random_text_never_raises(body: str, cap: int) -> None:
    """Random CSV text with quotes and line breaks after a header: items numbered 1..n."""
    _assert_numbered(parse(HEADER + body, max_line_bytes=max(cap, len(HEADER))))


@FUZZ
@given(body=st.binary(max_size=300))
def test_property_csv_random_bytes_never_raise(body: bytes) -> None:
    """Arbitrary bytes after a valid header never raise; items are numbered 1..n."""
    _assert_numbered(parse(HEADER.encode() + body, max_line_bytes=64))


@FUZZ
@given(data=st.binary(max_size=300))
def test_property_arbitrary_bytes_raise_at_most_input_error(data: bytes) -> None:
    """Whole arbitrary inputs: CSV raises at most InputError, JSONL never raises."""
    with contextlib.suppress(InputError):
        _assert_numbered(parse(data, max_line_bytes=64))
    _assert_numbered(parse(data, "jsonl", max_line_bytes=64))


_json_line = st.one_of(
    _csv_text,
    st.builds(
        lambda t, c, s: orjson.dumps({"tenant": t, "connector": c, "syncType": s}).decode(),
        st.one_of(st.sampled_from(["contoso.com", G1, "a/b"]), st.none(), st.integers(-1000, 1000)),
        st.sampled_from([G1, G2, "x", ""]),
        st.sampled_from(["fullSync", "deltasync", "", None, "x"]),
    ),
)


@FUZZ
@given(lines=st.lists(_json_line, max_size=20))
def test_property_jsonl_one_item_per_data_line(lines: list[str]) -> None:
    """Random JSONL lines: never raises, one item per non-blank non-comment line, in order."""
    found = parse("".join(line + "\n" for line in lines), "jsonl")
    expected = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(found) == len(expected)
    _assert_numbered(found)


_tenant = st.one_of(
    st.uuids().map(str),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}\.[a-z]{2,6}", fullmatch=True),
)
_case = st.sampled_from([str.lower, str.upper, str.title])


@FUZZ
@given(
    rows=st.lists(
        st.tuples(_tenant, st.uuids().map(str), st.sampled_from(["fullSync", "deltaSync", ""])),
        max_size=15,
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    line_end=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    case=_case,
    encoding=st.sampled_from(["utf-8", "utf-16"]),
)
def test_property_valid_csv_round_trips(
    rows: list[tuple[str, str, str]],
    delimiter: str,
    quoting: Literal[0, 1, 2, 3],
    line_end: str,
    bom: bool,
    case: object,
    encoding: str,
) -> None:
    """Valid rows written by csv in any dialect Excel uses read back canonical and in order."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=line_end)
    writer.writerow(["Tenant", "ConnectorId", "syncType"])
    assert callable(case)
    writer.writerows([(case(t), case(c), case(s)) for t, c, s in rows])
    text = ("\ufeff" if bom and encoding == "utf-8" else "") + out.getvalue()
    found = parse(text.encode(encoding))
    assert found == [
        Row(n, t.lower(), c.lower(), SyncType.parse(s) if s else SyncType.DELTA)
        for n, (t, c, s) in enumerate(rows, start=1)
    ]


# Any printable text but U+FFFD, which a file reader takes as the mark of bad bytes.
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffd"), max_size=12
)


def _values(*samples: str) -> st.SearchStrategy[str]:
    """Mostly the given samples (valid and near-valid values), sometimes any text."""
    return st.one_of(st.sampled_from(samples), st.sampled_from(samples), _TEXT)


_TENANTS = _values(
    G1.upper(),
    "{" + G2 + "}",
    " contoso.onmicrosoft.com ",
    "Contoso.COM",
    "1.2.3.4",
    "a..b",
    "x.y/../z",
    "ünïcode.com",
    "",
    "  ",
)
_CONNECTORS = _values(G1, G2.upper(), "{" + G1 + "}", f" {G2} ", G1[:-1], G1 + "0", "", "  ")
_SYNCS = _values("fullSync", "DELTASYNC", "deltasync ", "", "  ", "full", "delta sync")


@given(tenant=_TENANTS, connector=_CONNECTORS, sync=_SYNCS)
def test_property_csv_jsonl_and_mappings_agree(tenant: str, connector: str, sync: str) -> None:
    """The same values as a CSV row, a JSONL line and a mapping give the same Row or code."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["n", "tenant", "connector", "syncType"])  # no value starts a line: no "#"
    writer.writerow(["1", tenant, connector, sync])
    record = {"n": "1", "tenant": tenant, "connector": connector, "syncType": sync}
    (from_csv,) = list(read_items(io.BytesIO(buffer.getvalue().encode()), fmt=InputFormat.CSV))
    (from_jsonl,) = list(read_items(io.BytesIO(orjson.dumps(record)), fmt=InputFormat.JSONL))
    from_mapping = record_to_item(1, record)
    if isinstance(from_mapping, Row):
        assert from_csv == from_jsonl == from_mapping
    else:
        assert isinstance(from_csv, Rejected)
        assert isinstance(from_jsonl, Rejected)
        assert from_csv.code == from_jsonl.code == from_mapping.code


# --- one row never stops the run (the per-row guard) -------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_extra_is_that_rows_invalid_line() -> None:
    """With --keep-extra, a JSONL row under 2 KB whose extra nests 990 deep is `too_deep`,
    and the rows around it are read as usual (it used to raise RecursionError)."""
    deep = f'{{"tenant": "contoso.com", "connector": "{G1}", "x": {_deep(990)}}}\n'
    assert len(deep) < 2100
    good = f'{{"tenant": "contoso.com", "connector": "{G2}", "x": [1]}}\n'
    items = parse(good + deep + good, "jsonl", keep_extra=True)
    assert [type(i).__name__ for i in items] == ["Row", "Rejected", "Row"]
    bad = items[1]
    assert isinstance(bad, Rejected)
    assert (bad.line, bad.code, bad.kind) == (2, "too_deep", ErrorKind.INPUT)
    assert parse(deep, "jsonl", keep_extra=False)[0] == Row(
        2 - 1, "contoso.com", G1, SyncType.DELTA
    )
    mapping = orjson.loads(deep)
    assert record_to_item(7, mapping, keep_extra=True) == Rejected(
        7, None, None, None, ErrorKind.INPUT, "too_deep", bad.message
    )


class _Exploding(dict[str, object]):
    """A library caller's mapping that fails when read."""

    def items(self) -> Iterator[tuple[str, object]]:  # type: ignore[override]
        raise RuntimeError("boom")


def test_any_unexpected_error_in_one_row_becomes_its_invalid_line() -> None:
    """Whatever goes wrong while reading one mapping is that row's `unreadable_row`, with
    the exception's type and first line, never an exception out of the reader."""
    item = record_to_item(3, _Exploding(tenant="contoso.com"))
    assert isinstance(item, Rejected)
    assert (item.line, item.code) == (3, "unreadable_row")
    assert item.message == "the row could not be read (RuntimeError: boom)"
