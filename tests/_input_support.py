"""Helpers for the input tests: sample GUIDs, a parse() shortcut, values that bend URLs."""

from __future__ import annotations

import io

from batchsync._input import read_items
from batchsync._rows import InputFormat, Item, Rejected, Row, SyncType

__all__ = [
    "G1",
    "G2",
    "HEADER",
    "INJECTIONS",
    "ROW_INJECTIONS",
    "one",
    "one_rejected",
    "one_row",
    "parse",
]

G1 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
G2 = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
HEADER = "tenant,connector,syncType\n"


def parse(
    data: bytes | str,
    fmt: str = "csv",
    *,
    default_sync_type: SyncType = SyncType.DELTA,
    keep_extra: bool = False,
    max_line_bytes: int = 64 * 1024,
) -> list[Item]:
    raw = data.encode() if isinstance(data, str) else data
    return list(
        read_items(
            io.BytesIO(raw),
            fmt=InputFormat(fmt),
            default_sync_type=default_sync_type,
            keep_extra=keep_extra,
            max_line_bytes=max_line_bytes,
        )
    )


def one(data: bytes | str, fmt: str = "csv", *, keep_extra: bool = False) -> Item:
    """The one item ``data`` holds (asserted)."""
    found = parse(data, fmt, keep_extra=keep_extra)
    assert len(found) == 1, found
    return found[0]


def one_row(data: bytes | str, fmt: str = "csv") -> Row:
    """The one valid row ``data`` holds (asserted)."""
    item = one(data, fmt)
    assert isinstance(item, Row), item
    return item


def one_rejected(data: bytes | str, fmt: str = "csv") -> Rejected:
    """The one refused row ``data`` holds (asserted)."""
    item = one(data, fmt)
    assert isinstance(item, Rejected), item
    return item


INJECTIONS = [
    "../x",
    "a/b",
    "x?y",
    "x#y",
    "a b",
    "%2e%2e",
    "%2e%2e.com",
    "contoso.com/../other.com",
    "contoso.com?x=1",
    "contoso.com#frag",
    "contoso.com%2f..",
    "a\\b.com",
    "'contoso.com'",
    '"contoso.com"',
    "contoso.com\n",
    "con\ttoso.com",
    "con\x00toso.com",
    "contoso.com:443",
    "user@contoso.com",
    "http://contoso.com",
    "..",
    ".",
    "contoso",
    "common",
    "contoso.com.",
    ".contoso.com",
    "a..b.com",
    "-a.com",
    "a-.com",
    "1.2.3.4",
    "contoso.c",
    "\uff43ontoso.com",  # fullwidth c
    "conto\u017fo.com",  # long s, lower() keeps it non-ASCII
    "\u212aelvin.com",  # Kelvin sign, lower() would make it 'k'
    "caf\u00e9.com",
    "a" * 64 + ".com",
    ".".join(["a" * 60] * 5),  # longer than 253
    "{" + G1,
    G1 + "}",
    G1 + "x",
    "",
]


# In rows, surrounding white space is trimmed first (so "contoso.com\n" is fine there).
ROW_INJECTIONS = [t for t in INJECTIONS if t and t == t.strip()]
