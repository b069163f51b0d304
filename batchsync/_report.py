"""Report lines: one JSON object per input row, written whole and flushed as each row ends.

The report is both the audit record and the resume log, so a line is encoded completely
before a single ``os.write`` of it (no buffering layer that could split it), and a file
report is opened for append: a crash leaves at most one torn last line, which
``--resume`` cuts off before appending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import logging
import math
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Final

import orjson

from ._errors import (
    AuthError,
    BatchsyncError,
    ConfigError,
    ErrorKind,
    GraphError,
    InputError,
    ReportError,
    ReportWriteError,
    ThrottledError,
)
from ._files import open_output

__all__ = [
    "Outcome",
    "ReportError",
    "ReportWriter",
    "Settled",
    "Status",
    "encode_outcome",
    "rfc3339",
    "settled_outcome",
]

log = logging.getLogger(__name__)


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    INVALID = "invalid"
    SKIPPED = "skipped"
    PLANNED = "planned"


@dataclasses.dataclass(frozen=True, slots=True)
class Settled:
    """An answer the action settles itself, before any retry policy: the row's status and
    error (an Autopilot sync already running is neither a failure nor worth a retry)."""

    status: Status
    error: ReportError | None


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How one input row ended; becomes exactly one report line."""

    line: int
    fields: Mapping[str, str | None]  # the action's row fields (tenant, connector, syncType)
    status: Status
    http_status: int | None = None
    attempts: int = 0
    throttled: int = 0
    error: ReportError | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    started_at: float = 0.0  # seconds since the Unix epoch
    finished_at: float = 0.0
    extra: Mapping[str, str] | None = None

    @property
    def tenant(self) -> str | None:
        return self.fields.get("tenant")

    def raise_for_error(self) -> None:
        """Raise a failed or invalid row's error, for callers who prefer exceptions (as httpx's
        ``raise_for_status``); return for ok, skipped and planned rows.

        Kind ``auth`` raises ``AuthError``, ``throttled`` ``ThrottledError``, ``http``
        ``GraphError`` (with ``status``), ``input`` ``InputError``, and the others
        (``network``, ``timeout``, ``interrupted``) ``BatchsyncError``; each carries the
        report's code, message and tenant.
        """
        err = self.error
        if err is None or self.status not in (Status.FAILED, Status.INVALID):
            return
        tenant = self.tenant
        if err.kind is ErrorKind.AUTH:
            raise AuthError(err.message, code=err.code, tenant=tenant)
        if err.kind is ErrorKind.THROTTLED:
            raise ThrottledError(err.message, code=err.code, tenant=tenant, status=self.http_status)
        if err.kind is ErrorKind.HTTP:
            raise GraphError(err.message, code=err.code, tenant=tenant, status=self.http_status)
        if err.kind is ErrorKind.INPUT:
            raise InputError(err.message, code=err.code, tenant=tenant)
        raise BatchsyncError(err.message, code=err.code, tenant=tenant)


def _settled_factory() -> Callable[
    [int, Mapping[str, str | None], Status, ReportError | None, float, Mapping[str, str] | None],
    Outcome,
]:
    """``Outcome(...)`` for a row that ends where it is read (invalid, skipped, planned),
    without the frozen dataclass ``__init__``: its ``object.__setattr__`` per field cost
    2.8 us a row, the largest single cost of a million-row dry run. Same object as
    ``Outcome(...)`` (a test checks it)."""
    new = object.__new__
    (
        set_line, set_fields, set_status, set_http, set_attempts, set_throttled,
        set_error, set_request, set_client_request, set_started, set_finished, set_extra,
    ) = (Outcome.__dict__[name].__set__ for name in Outcome.__slots__)  # fmt: skip

    def settled(
        line: int,
        fields: Mapping[str, str | None],
        status: Status,
        error: ReportError | None,
        at: float,
        extra: Mapping[str, str] | None,
    ) -> Outcome:
        outcome = new(Outcome)
        set_line(outcome, line)
        set_fields(outcome, fields)
        set_status(outcome, status)
        set_http(outcome, None)
        set_attempts(outcome, 0)
        set_throttled(outcome, 0)
        set_error(outcome, error)
        set_request(outcome, None)
        set_client_request(outcome, None)
        set_started(outcome, at)
        set_finished(outcome, at)
        set_extra(outcome, extra)
        return outcome

    return settled


settled_outcome: Final = _settled_factory()

_last_second: tuple[int | None, str] = (None, "")
_last_stamp: tuple[float, str] = (math.nan, "")  # NaN equals nothing


def rfc3339(epoch_s: float) -> str:
    """``2026-11-25T19:16:47.123Z``: RFC 3339, UTC, millisecond precision.

    Rows end many to a second (and a batch of rows settled at once shares one time), so
    the last stamp and the formatted second are kept: ``strftime`` per row was the largest
    cost of a million-row dry run.
    """
    global _last_second, _last_stamp
    last_epoch, stamp = _last_stamp
    if epoch_s == last_epoch:
        return stamp
    second, micros = divmod(round(epoch_s * 1_000_000), 1_000_000)  # as datetime rounds
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = dt.datetime.fromtimestamp(second, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _last_second = (second, prefix)
    stamp = f"{prefix}{micros // 1000:03d}Z"
    _last_stamp = (epoch_s, stamp)
    return stamp


_APPEND_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE
# orjson writes an enum through its ``value`` attribute, a Python call: 1.5 us a line.
_STATUS_VALUES: Final = {status: status.value for status in Status}


def encode_outcome(outcome: Outcome) -> bytes:
    """One report line, newline included, with the contract's fields in a stable order.

    Built as one dict display.
    """
    err = outcome.error
    started_at, finished_at = outcome.started_at, outcome.finished_at
    started = rfc3339(started_at)
    same = finished_at == started_at
    doc: dict[str, Any] = {
        "line": outcome.line,
        **outcome.fields,
        "status": _STATUS_VALUES[outcome.status],
        "http_status": outcome.http_status,
        "attempts": outcome.attempts,
        "throttled": outcome.throttled,
        "error": None
        if err is None
        else {"kind": err.kind.value, "code": err.code, "message": err.message},
        "request_id": outcome.request_id,
        "client_request_id": outcome.client_request_id,
        "started_at": started,
        "finished_at": started if same else rfc3339(finished_at),
        "duration_ms": 0 if same else max(0, round((finished_at - started_at) * 1000)),
    }
    if outcome.extra is not None:
        doc["extra"] = dict(outcome.extra)
    return orjson.dumps(doc, option=_APPEND_NEWLINE)


class ReportWriter:
    """Writes report lines whole: one ``os.write`` per line on a descriptor, or one
    ``write`` + ``flush`` on a stream that has none (an embedding application's buffer).

    Blocking: ``run`` writes through ``_writer.LineWriter``'s thread, never on the loop.
    """

    def __init__(
        self, fd: int | None, *, name: str, owns_fd: bool, stream: IO[bytes] | None = None
    ) -> None:
        self._fd = fd
        self._stream = stream
        self._name = name
        self._owns_fd = owns_fd
        self.lines_written = 0

    @classmethod
    def to_stream(cls, stream: IO[bytes]) -> ReportWriter:
        """Report to an already open binary stream (standard output)."""
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            return cls(None, name=getattr(stream, "name", "<stream>"), owns_fd=False, stream=stream)
        stream.flush()
        return cls(fd, name="<stdout>", owns_fd=False)

    @classmethod
    def open_path(
        cls, path: str, *, resume: bool, overwrite: bool, what: str = "report"
    ) -> ReportWriter:
        """Open a report file for append, refusing to clobber an existing report silently.

        ``what`` names the file in messages; only a ``report`` can be resumed. A symbolic
        link to a file is refused (``_files``: it could make ``--overwrite`` truncate, or
        ``--resume`` cut, a file the user never named); the size is read on the opened file.
        """
        # open_output adds O_BINARY: Windows' C runtime would otherwise write \n as \r\n.
        flags = os.O_CREAT | os.O_APPEND | (os.O_RDWR if resume else os.O_WRONLY)
        if overwrite and not resume:
            flags |= os.O_TRUNC
        fd = open_output(path, flags, what=what)
        try:
            st = os.fstat(fd)
            size = st.st_size
            if size and not resume and not overwrite:
                how = (
                    "pass --resume to finish that run, or --overwrite to replace it"
                    if what == "report"
                    else "pass --overwrite to replace it"
                )
                raise ConfigError(f"{what} {path!r} already exists and is not empty; {how}")
            if resume and size and stat.S_ISREG(st.st_mode):
                try:
                    _cut_torn_tail(fd, path)
                except OSError as exc:
                    raise ConfigError(
                        f"report {path!r} ends with a torn line that --resume must cut off, "
                        f"but cannot ({exc.strerror}); make the file writable (an append-only "
                        "file: chattr -a) or delete its last, torn line, then run the same "
                        "command again"
                    ) from None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, name=path, owns_fd=True)

    def fileno(self) -> int | None:
        """The descriptor written to, or None for a stream without one."""
        return self._fd

    def write(self, outcome: Outcome) -> None:
        """One line, written and flushed at once (raises ``ReportWriteError``)."""
        self.write_bytes(encode_outcome(outcome))

    def write_many(self, outcomes: Sequence[Outcome]) -> None:
        """Several whole lines in one write (rows settled together, nothing sent for them)."""
        if outcomes:
            self.write_bytes(b"".join(map(encode_outcome, outcomes)), lines=len(outcomes))

    def write_bytes(self, data: bytes | bytearray | memoryview, *, lines: int = 1) -> None:
        try:
            if self._fd is None:
                assert self._stream is not None
                self._stream.write(data)
                self._stream.flush()
            else:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
        except BrokenPipeError:
            raise ReportWriteError(
                "the report's reader closed the pipe; stopped (write the report to a file "
                "with -o to keep every line, and finish with --resume)"
            ) from None
        except OSError as exc:
            raise ReportWriteError(
                f"cannot write the report ({exc.strerror}); stopped. Free the space or fix "
                "the path, then run the same command with --resume"
            ) from None
        self.lines_written += lines

    def close(self) -> None:
        if self._owns_fd and self._fd is not None:
            with contextlib.suppress(OSError):  # fsync is unsupported on some pipes/filesystems
                os.fsync(self._fd)
            os.close(self._fd)
            self._owns_fd = False

    def __repr__(self) -> str:
        return f"<ReportWriter {self._name} lines_written={self.lines_written}>"


def _cut_torn_tail(fd: int, path: str) -> None:
    """Truncate a report to its last newline, so appended lines start on a fresh line
    (raises ``OSError``: an append-only file refuses the truncation).

    Reads through ``fd`` (opened read-write for ``--resume``), never the path again.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    # Walk back in blocks to the last newline.
    pos = size
    keep = 0
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        os.lseek(fd, pos, os.SEEK_SET)
        block = _read_exactly(fd, step)
        idx = block.rfind(b"\n")
        if idx >= 0:
            keep = pos + idx + 1
            break
    os.ftruncate(fd, keep)
    log.warning("report %s ended with a torn line (%d bytes); cut it off", path, size - keep)


def _read_exactly(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0 and (chunk := os.read(fd, n)):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
