"""Settling a report: which line is each row's final outcome, in bounded memory.

Rules (the report is the resume log, so a row may have several lines):

1. A row's final outcome is its last line, the row named as ``--resume`` names it
   (``_filters.line_key``): a row that failed and then succeeded counts once, as ok.
2. A line that names no complete row (an ``invalid`` line) and a ``duplicate`` line (a
   later input row with the key of an earlier one) stand for their input line, so they
   are settled by ``line`` instead; a later line of a complete row with the same ``line``
   supersedes them (the input was fixed and the run resumed).
3. Nothing here does I/O or keeps a parsed line: per line it keeps 16 bytes (``line`` and
   a slot in a table of 64-bit key hashes), so a million lines settle in ~40 MB.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._filters import line_key
from ._report import Status

__all__ = ["Settler", "report_line_problem"]

_STATUSES: Final = frozenset(s.value for s in Status)
_MAX_LINES: Final = 2**32 - 2  # ordinals are stored in 32 bits (+1, 0 marks a free slot)


_TEXT_FIELDS: Final = ("tenant", "connector", "id", "syncType", "action")
_ERROR_FIELDS: Final = ("kind", "code", "message")


def report_line_problem(doc: object) -> str | None:
    """Why a parsed JSON value is not a report line, or None when it is one.

    A report may come from anywhere, so the fields that are read back (the row's names,
    ``error``) must have the types ``batchsync run`` writes: what passes here is safe to
    count, render and turn into input rows.
    """
    if not isinstance(doc, dict):
        return "not a JSON object"
    line = doc.get("line")
    if not isinstance(line, int) or isinstance(line, bool) or line < 0:
        return "no line number"
    status = doc.get("status")
    if not isinstance(status, str) or status not in _STATUSES:
        return "no status (ok, failed, invalid, skipped or planned)"
    for name in _TEXT_FIELDS:
        if not isinstance(doc.get(name, ""), str | None):
            return f"{name} is not text"
    error = doc.get("error")
    if error is not None:
        if not isinstance(error, dict):
            return "error is not an object"
        for name in _ERROR_FIELDS:
            if not isinstance(error.get(name), str | None):
                return f"error.{name} is not text"
    return None


class _LastOrdinal:
    """Open-addressing table (linear probing, at most half full) of 64-bit key hashes ->
    the ordinal of the last line with that key, in flat arrays of 12 bytes a slot.

    A million keys take 24 MB (36 MB while growing) where a dict of Python ints takes
    over 100 MB. Keys are compared by hash only: two rows share one with probability
    about n**2 / 2**65 (3e-8 for a million rows), as for ``--resume``'s keys.
    """

    __slots__ = ("_count", "_keys", "_mask", "_vals")

    def __init__(self, log2_size: int = 12) -> None:
        self._count = 0
        self._alloc(1 << log2_size)

    def _alloc(self, size: int) -> None:
        self._keys = array("q", [0]) * size
        self._vals = array("I", [0]) * size  # ordinal + 1; 0 marks a free slot
        self._mask = size - 1

    def put(self, key: int, ordinal: int) -> None:
        keys, vals, mask = self._keys, self._vals, self._mask
        i = key & mask
        while vals[i] and keys[i] != key:
            i = (i + 1) & mask
        if not vals[i]:
            keys[i] = key
            self._count = count = self._count + 1
            vals[i] = ordinal + 1
            if count + count > mask:
                self._grow()
            return
        vals[i] = ordinal + 1

    def _grow(self) -> None:
        old_keys, old_vals = self._keys, self._vals
        self._alloc(2 * (self._mask + 1))
        keys, vals, mask = self._keys, self._vals, self._mask
        for key, val in zip(old_keys, old_vals, strict=True):
            if val:
                i = key & mask
                while vals[i]:
                    i = (i + 1) & mask
                keys[i] = key
                vals[i] = val

    def ordinals(self) -> Iterator[int]:
        return (val - 1 for val in self._vals if val)


class Settler:
    """Feed every report line in order with ``add``; ``finals`` then tells which are final.

    Lines are numbered by ``add`` (their ordinal, 0-based, across all inputs); the caller
    keeps whatever it needs to find a line again (a file offset per ordinal).
    """

    __slots__ = ("_by_key", "_by_line", "_finals", "_lines", "_unnamed_action", "count")

    def __init__(self, *, unnamed_action: str) -> None:
        """``unnamed_action``: the action of lines without an ``action`` field (older
        reports, all of the default action)."""
        self._unnamed_action = unnamed_action
        self._by_key = _LastOrdinal()
        self._by_line: dict[int, int] = {}  # line -> ordinal, for rule 2's lines
        self._lines = array("I")
        self._finals: bytearray | None = None
        self.count = 0

    def add(self, doc: Mapping[str, Any]) -> int:
        """Note one report line (``report_line_problem(doc)`` is None); returns its ordinal."""
        ordinal = self.count
        if ordinal >= _MAX_LINES:
            raise OverflowError("more than 4,294,967,294 report lines")
        line: int = doc["line"]
        self._lines.append(min(line, _MAX_LINES))
        key = line_key(doc, unnamed_action=self._unnamed_action)
        error = doc.get("error")
        duplicate = isinstance(error, dict) and error.get("kind") == "duplicate"
        if key is None or duplicate:
            self._by_line[line] = ordinal
        else:
            self._by_key.put(key, ordinal)
            if self._by_line and line in self._by_line and self._by_line[line] < ordinal:
                del self._by_line[line]
        self.count = ordinal + 1
        return ordinal

    def finals(self) -> bytearray:
        """One byte per ordinal, 1 for a row's final line (computed once; frees the table)."""
        if self._finals is None:
            finals = bytearray(self.count)
            for ordinal in self._by_key.ordinals():
                finals[ordinal] = 1
            for ordinal in self._by_line.values():
                finals[ordinal] = 1
            self._finals = finals
            self._by_key = _LastOrdinal(1)
            self._by_line = {}
        return self._finals

    def in_line_order(self) -> Iterator[int]:
        """The final ordinals ordered by ``line`` (ties in report order).

        Already in order (one run, nothing resumed) costs nothing more; otherwise one sort
        of 64-bit ints (``line << 32 | ordinal``), ~40 MB for a million rows.
        """
        finals, lines = self.finals(), self._lines
        previous, ordered = -1, True
        for ordinal in _set_positions(finals):
            line = lines[ordinal]
            if line < previous:
                ordered = False
                break
            previous = line
        if ordered:
            return self.in_report_order()
        keys = sorted(lines[o] << 32 | o for o in _set_positions(finals))
        return (key & 0xFFFFFFFF for key in keys)

    def in_report_order(self) -> Iterator[int]:
        """The final ordinals in the order the lines were added."""
        return _set_positions(self.finals())


def _set_positions(flags: bytearray) -> Iterator[int]:
    """Positions of the non-zero bytes (``bytearray.find`` skips runs of zeros in C)."""
    find = flags.find
    i = find(1)
    while i >= 0:
        yield i
        i = find(1, i + 1)
