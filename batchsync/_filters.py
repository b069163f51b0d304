"""Which items go on: ``--shard``, duplicates and ``--resume``, with the row key defined once.

Rules:

1. A row's identity is ``row_key`` (action, tenant, object id and syncType, as the report
   writes them; "" for what the action has none of): duplicates and ``--resume`` both use
   it, so an edited input still resumes right. A report line without ``action`` was written
   before there were other actions: it is the default action's.
2. ``--shard`` splits by tenant with a hash that is the same in every process and on every
   machine (blake2b of the canonical tenant, never Python's salted ``hash()``): all rows of a
   tenant land in one shard, so its pacing and token stay in one process. A tenant written
   once as a GUID and once as a domain name is two tenants here: nothing can tell they are
   the same without asking Entra.
3. Memory is a small fixed cost per distinct key, never the rows.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress
from typing import Any, Final

import orjson

from ._errors import ErrorKind
from ._rows import Item, Rejected, Row

__all__ = [
    "drop_duplicates",
    "in_shard",
    "line_key",
    "parse_shard",
    "read_resume_keys",
    "resume_filter",
    "resume_key",
    "row_key",
    "shard_filter",
]


def row_key(action: str, tenant: str, object_id: str, sync_type: str) -> str:
    """A row's identity: canonical values joined by NUL (which no valid value contains)."""
    return f"{action}\x00{tenant}\x00{object_id}\x00{sync_type}"


# --------------------------------------------------------------------------- --shard


_SHARD_RE = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"K/N"`` into ``(K, N)``; raise ``ValueError`` unless ``1 <= K <= N``."""
    m = _SHARD_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"shard must be K/N, such as 2/8; got {text[:40]!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, such as 2/8; got {k}/{n}")
    return k, n


def in_shard(tenant: str, k: int, n: int) -> bool:
    """True when ``tenant`` belongs to shard ``k`` of ``n`` (1-based), the same everywhere."""
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N; got {k}/{n}")
    canonical = tenant.strip().lower()
    if canonical[:1] == "{" and canonical[-1:] == "}":  # a braced GUID, as _input accepts it
        canonical = canonical[1:-1]
    import hashlib  # only where --shard is used

    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n == k - 1


def shard_filter(items: Iterable[Item], k: int, n: int) -> Iterator[Item]:
    """Only the items whose tenant falls in shard ``k`` of ``n`` (``line`` kept)."""
    for item in items:
        if in_shard(item.tenant or "", k, n):
            yield item


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
    would take over 100 MB. The 96 bits are two hashes of the key's values taken in two
    orders (Python's tuple hash over its SipHash string hashes, keyed with a per-process
    secret, which is fine: they are compared within one run only); the values' own hashes
    are cached in the strings (a tenant's is shared by all its rows), so a row costs two
    tuple hashes and no key string. Two different keys share them with probability about
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

    def first_line(self, values: tuple[str, str, str], line: int) -> int | None:
        """The line that first had the key ``values``, or None after recording ``line`` as
        the first."""
        lo = hash(values)
        hi = hash((values[2], values[1], values[0], 1)) & 0xFFFFFFFF
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
    first_line = seen.first_line  # one action a run: the key needs no action
    for item in items:
        if isinstance(item, Row):
            sync = item.sync_type
            values = (item.tenant, item.object_id or "", "" if sync is None else sync._value_)
            first = first_line(values, item.line)
            if first is not None:
                same = "same tenant, connector and syncType" if item.sync_type else "same row"
                item = Rejected(
                    item.line,
                    item.tenant,
                    item.object_id,
                    item.sync_type.value if item.sync_type else None,
                    ErrorKind.DUPLICATE,
                    "duplicate",
                    f"duplicate of line {first} ({same})",
                    item.extra,
                )
        yield item


# --------------------------------------------------------------------------- --resume


def resume_key(action: str, tenant: str, object_id: str, sync_type: str) -> int:
    """A row's ``row_key`` hashed, to keep a million resume keys small in memory.

    Values from a report are trimmed and lower-cased as the input's are. Python's str hash
    is 64 bits: a false match among a million rows has odds near 1e-7, the price of a set
    of ints instead of a set of strings (~4x the memory).
    """
    return hash(row_key(action, tenant.strip().lower(), object_id.strip().lower(), sync_type))


_MAX_REPORT_LINE: Final = 1 << 20  # as ``batchsync report``: a longer line is not a report line


def _report_lines(path: str) -> Iterator[bytes]:
    """The report's lines; a longer one than ``_MAX_REPORT_LINE`` is skipped in pieces (never
    held in memory whole) and comes back as an empty line."""
    with open(path, "rb") as fh:
        while raw := fh.readline(_MAX_REPORT_LINE):
            if len(raw) == _MAX_REPORT_LINE and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = fh.readline(_MAX_REPORT_LINE)
                if not raw:
                    return  # torn at the end: as a torn last line
                raw = b"\n"
            yield raw


def read_resume_keys(path: str, *, unnamed_action: str) -> tuple[set[int], int]:
    """Keys of rows already ``ok`` in an existing report, and the count of lines read.

    Lines that are not JSON objects are ignored (a torn line is cut off by the writer
    before appending). Only ``status == "ok"`` counts: failed rows are tried again.
    ``unnamed_action`` is the action of lines without an ``action`` field (rule 1).
    """
    done: set[int] = set()
    count = 0
    for raw in _report_lines(path):
        if not raw.endswith(b"\n"):
            break  # torn last line from a crash
        count += 1
        try:  # a line anyone could have written there: anything odd just does not count
            doc = orjson.loads(raw)
            key = (
                line_key(doc, unnamed_action=unnamed_action)
                if isinstance(doc, dict) and doc.get("status") == "ok"
                else None
            )
        except Exception:
            key = None
        if key is not None:
            done.add(key)
    return done, count


def line_key(doc: Mapping[str, Any], *, unnamed_action: str) -> int | None:
    """The ``resume_key`` of a parsed report line; None when the line names no row (an
    ``invalid`` line, or one with a field missing).

    The one place that says which fields of a report line identify its row: ``--resume``
    and ``batchsync report`` (which settles each row to its last line) both use it. The
    object is ``connector`` (the Exchange connector sync) or ``id`` (null for an action on
    the tenant itself); ``syncType`` only where the action has one.
    """
    if doc.get("status") == "invalid":
        return None  # its values are the input's, as written: no row to key
    action, tenant = doc.get("action", unnamed_action), doc.get("tenant")
    if "connector" in doc:
        object_id = doc["connector"]
        if not isinstance(object_id, str):
            return None
    else:
        object_id = doc.get("id")  # None: an action on the tenant itself
    sync_type = doc.get("syncType", "")
    if (
        isinstance(action, str)
        and isinstance(tenant, str)
        and isinstance(object_id, str | None)
        and isinstance(sync_type, str)
    ):
        return resume_key(action, tenant, object_id or "", sync_type)
    return None


def resume_filter(items: Iterable[Item], done: set[int], *, action: str) -> Iterator[Item]:
    """Items less the rows already ``ok`` in the report being resumed (``done`` keys)."""
    for item in items:
        if isinstance(item, Row) and resume_key(action, *item.key) in done:
            continue
        yield item
