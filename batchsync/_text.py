"""Bytes to bounded text: the encoding sniffed, lines capped, blank and ``#`` lines skipped.

The layer under every reader of ``_input``. Rules:

1. Excel's encodings are recognised: UTF-8 with or without BOM, UTF-16/32 with a BOM, and
   BOM-less UTF-16 by its zero bytes; undecodable bytes become U+FFFD, which marks the row.
2. Memory is bounded: a physical line (or CSV record) longer than ``max_bytes`` is skipped
   chunk by chunk and reported, never buffered whole.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import BinaryIO, Final

__all__ = [
    "TOO_LONG",
    "CsvFeed",
    "Lines",
    "TooLong",
    "csv_records",
    "next_line",
    "open_text",
]


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
        # No BOM: a header or JSON line starts with a printable character, so one followed
        # (or preceded) by NUL, then another non-NUL/NUL pair, is UTF-16 without a BOM. A
        # control character first (a UTF-8 file of NULs and line ends) stays UTF-8.
        if prefix[0] >= 0x20 and not prefix[1] and prefix[2] and not prefix[3]:
            return "utf-16-le"
        if not prefix[0] and prefix[1] >= 0x20 and not prefix[2] and prefix[3]:
            return "utf-16-be"
    return "utf-8-sig"


def open_text(stream: BinaryIO) -> tuple[io.TextIOWrapper[io.BufferedReader[_Prefixed]], str]:
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


class TooLong(Exception):
    """Raised by the CSV line feed through csv.reader when a record outgrows the cap."""


class Lines:
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


class CsvFeed:
    """The lines csv.reader pulls: skips blanks and comments where a record starts, caps the
    size of a record (a quoted field may span lines) and notes undecodable bytes.

    The reader pulls lines only inside ``next(reader)``, so the consumer sets ``at_start``
    after each record it gets and the feed knows which pulls start a record. A record's size
    counts its line breaks (in the fast path, the last one too: two bytes of slack).
    """

    __slots__ = ("_lines", "_max", "_readline", "_record_bytes", "at_start", "bad_encoding")

    def __init__(self, lines: Lines) -> None:
        self._lines = lines
        self._readline = lines.readline
        self._max = lines.max_bytes
        self._record_bytes = 0
        self.at_start = True
        self.bad_encoding = False

    def __iter__(self) -> CsvFeed:
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
                    raise TooLong
                self.at_start = False
                self._record_bytes = nbytes
                self.bad_encoding = not ascii_line and "\ufffd" in line
                return line
            self._record_bytes += nbytes
            if self._record_bytes > limit:
                raise TooLong
            if not ascii_line and "\ufffd" in line:
                self.bad_encoding = True
            return line


def csv_records(feed: CsvFeed, delimiter: str) -> Iterator[list[str] | str]:
    """The records of a CSV body; one that outgrows the cap (or trips csv's own field limit)
    comes as the hint to add to its ``line_too_long`` message instead, and reading goes on
    with the next record. ``feed.bad_encoding`` describes the record just yielded."""
    while True:
        reader = csv.reader(feed, delimiter=delimiter, skipinitialspace=True, strict=False)
        try:
            for rec in reader:
                feed.at_start = True
                yield rec
            return
        except TooLong:
            feed.at_start = True
            yield "; is a quote left open?"
        except csv.Error as exc:  # only csv's own field size limit is left to trip
            feed.at_start = True
            yield f" ({str(exc)[:80]})"


TOO_LONG: Final = object()  # what next_line gives for a line over the cap


def next_line(feed: CsvFeed) -> str | object | None:
    """The next line that is not blank or a comment; ``TOO_LONG``; None at the end."""
    feed.at_start = True
    try:
        return next(feed)
    except StopIteration:
        return None
    except TooLong:
        return TOO_LONG
