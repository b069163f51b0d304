"""Report lines written off the event loop: a queue the loop fills, a thread that writes.

A full pipe or a slow disk must never stop requests, timers or signals, so the loop only
encodes lines and queues them; a daemon thread writes them with ``ReportWriter``.

Rules:

1. In order, whole: lines are written in the order they were handed over, each whole and
   flushed at once; several may share one write, split only between lines, and a write to
   a pipe or socket is at most ``PIPE_BUF`` bytes, which the kernel writes all or nothing:
   a process killed while its reader is stalled never leaves half a line there.
2. Back-pressure: ``room()`` (the engine awaits it before taking more rows in) waits while
   ``max_queued`` lines or more are waiting. Handing a line over never waits: the rows
   already taken in still get theirs queued (at most the engine's look-ahead more).
3. Every queued line is written when the reader can take it: ``finish()`` waits for that as
   long as it takes, and as long as the writer gets on. But a reader that never drains
   cannot be waited for forever: after an interruption (Ctrl-C, SIGTERM, or the run
   failing), once the grace since the first one has run out (at once on a second one) and
   the thread has been stuck in one write for ``STALL_S``, the lines not yet written are
   given up. Their rows have no line, so they are not done: ``--resume`` does them again.
4. A failed write (the reader closed the pipe, the disk is full) ends the run: its
   ``ReportWriteError`` comes out of the next ``write``, ``room()`` or ``finish()``, and
   nothing more is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ._errors import ReportWriteError
from ._report import Outcome, ReportWriter, encode_outcome

__all__ = ["STALL_S", "LineWriter"]

STALL_S = 0.5  # one write blocked this long, with the grace over: the reader is stalled
_FILE_WRITE_MAX = 64 * 1024  # bytes per write to a file (or a stream without descriptor)
_ATOMIC_WRITE_MAX = getattr(select, "PIPE_BUF", 512)  # ...and to a pipe or a socket
_TICK_S = 0.1  # how often finish() looks again at a writer that is not done


class LineWriter:
    """Queues report lines on the loop and writes them on a thread of its own (rules above).

    ``grace_s`` is the run's ``--grace``: how long an interrupted run still waits for a
    stalled reader. Use it from the event loop's thread only (the writer thread aside).
    """

    def __init__(self, writer: ReportWriter, *, grace_s: float, max_queued: int = 1024) -> None:
        self._writer = writer
        self._grace_s = grace_s
        self._max = max(1, max_queued)
        self._low = self._max // 2
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition(threading.Lock())
        # Guarded by _cond: shared with the writer thread. Chunks of whole lines, each
        # [data, offset of its first unwritten line, lines left]; _queued counts the lines.
        self._chunks: deque[list[Any]] = deque()
        self._queued = 0
        self._busy_since: float | None = None  # time.monotonic() of the write in progress
        self._busy_lines = 0
        self._room_wanted = False  # room is cleared: tell the loop when the queue is below _low
        self._room_told = False  # ...and that is on its way to the loop
        self._progress_wanted = False  # finish() waits: tell the loop after each write
        self._closing = False
        self._abandoned = False
        self._error: ReportWriteError | None = None
        # Loop side.
        self._room = asyncio.Event()
        self._room.set()
        self._changed = asyncio.Event()  # set by the thread after each write
        self._interrupts = 0
        self._give_up_at: float | None = None  # loop time after which a stall is given up
        self.given_up = 0  # lines not written, given up (rule 3)
        limit = _FILE_WRITE_MAX
        fd = writer.fileno()
        if fd is not None:
            with contextlib.suppress(OSError):
                mode = os.fstat(fd).st_mode
                if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    limit = _ATOMIC_WRITE_MAX
        self._write_max = limit
        self._thread = threading.Thread(target=self._run, name="batchsync-report", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        with self._cond:
            queued, busy = self._queued, self._busy_lines
        return (
            f"<LineWriter {self._writer!r} queued={queued} writing={busy} "
            f"interrupts={self._interrupts} given_up={self.given_up}>"
        )

    # -- the loop's side ----------------------------------------------------------------------

    def write(self, outcome: Outcome) -> None:
        """Queue one row's line (never waits; raises the writer's ``ReportWriteError``)."""
        self._put(encode_outcome(outcome), 1)

    def write_many(self, outcomes: Sequence[Outcome]) -> None:
        """Queue several rows' lines, in order, as one chunk.

        Appended to one buffer as they are encoded, so each line's own bytes are freed at
        once: holding hundreds of them for the thread to free made glibc give the heap back
        and take it again, batch after batch (a million-row dry run spent 3 us a line so).
        """
        if outcomes:
            chunk = bytearray()
            for outcome in outcomes:
                chunk += encode_outcome(outcome)
            self._put(chunk, len(outcomes))

    def _put(self, chunk: bytes | bytearray, lines: int) -> None:
        if self._error is not None:
            raise self._error
        with self._cond:
            if self._abandoned:
                return  # given up (rule 3): the run is ending, its rows are not done
            self._chunks.append([chunk, 0, lines])
            self._queued += lines
            full = self._queued >= self._max and not self._room_wanted
            if full:
                self._room_wanted = True
            self._cond.notify()
        if full:
            # Cleared here, on the loop: the thread's set() comes later, through the loop.
            self._room.clear()

    async def room(self) -> None:
        """Return when fewer than ``max_queued`` lines wait (rule 2); raises the writer's
        ``ReportWriteError``."""
        while not self._room.is_set():
            await self._room.wait()
        if self._error is not None:
            raise self._error

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM (or the run failing): the first starts the grace a stalled
        reader still gets, the second ends it (rule 3)."""
        self._interrupts += 1
        if self._give_up_at is None:
            self._give_up_at = self._loop.time() + self._grace_s
        self._changed.set()

    async def finish(self) -> int:
        """Wait until every queued line is written, or given up (rule 3); returns how many
        were given up. Raises ``ReportWriteError`` if a write failed."""
        while True:
            with self._cond:
                self._progress_wanted = True
                idle = not self._queued and self._busy_since is None
                stuck_s = 0.0 if self._busy_since is None else time.monotonic() - self._busy_since
            if self._error is not None:
                raise self._error
            if idle:
                return 0
            over = self._interrupts >= 2 or (
                self._give_up_at is not None and self._loop.time() >= self._give_up_at
            )
            if over and stuck_s >= STALL_S:  # a writer that still gets on is waited for
                return self._give_up()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK_S):
                    await self._changed.wait()

    def _give_up(self) -> int:
        with self._cond:
            lost = self._queued + self._busy_lines
            self._chunks.clear()
            self._queued = 0
            self._abandoned = True
            self._cond.notify()
        self.given_up += lost
        return lost

    def close(self) -> None:
        """Stop the thread once it is done, and close the report; a thread still stuck in a
        write after a give-up is left to end with the process, its descriptor open."""
        with self._cond:
            self._closing = True
            stuck = self._busy_since is not None
            self._cond.notify()
        if not stuck:
            self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            self._writer.close()

    # -- the thread's side --------------------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queued and not self._closing and not self._abandoned:
                    cond.wait()
                if self._abandoned or not self._queued:
                    return  # given up, or closing with nothing left
                data, lines = self._take()
                self._queued -= lines
                self._busy_lines = lines
                self._busy_since = time.monotonic()
            error: ReportWriteError | None = None
            try:
                self._writer.write_bytes(data, lines=lines)
            except ReportWriteError as exc:
                error = exc
            with cond:
                self._busy_since = None
                self._busy_lines = 0
                if error is not None:
                    self._error = error
                    self._chunks.clear()
                    self._queued = 0
                room = (
                    self._room_wanted
                    and not self._room_told
                    and (error is not None or self._queued < self._low)
                )
                if room:
                    self._room_told = True
                wake = room or self._progress_wanted
            if wake:  # one cross-thread call only when the loop waits for this write
                self._signal()
            if error is not None:
                return

    def _take(self) -> tuple[bytes | memoryview, int]:
        """The next write (under ``_cond``): whole lines from the first chunks, at most
        ``_write_max`` bytes unless one line alone is longer (rule 1), and how many."""
        limit = self._write_max
        parts: list[memoryview] = []
        size = lines = 0
        chunks = self._chunks
        while chunks:
            entry = chunks[0]
            data, start, left = entry
            room = limit - size
            if len(data) - start <= room:
                parts.append(memoryview(data)[start:])
                size += len(data) - start
                lines += left
                chunks.popleft()
                continue
            # Only part of this chunk fits: up to its last line end within the room, or,
            # for a first line longer than the limit, that line alone.
            end = data.rfind(b"\n", start, start + room) + 1
            if end == 0 and not parts:
                end = data.index(b"\n", start) + 1
            if end > 0:
                n = data.count(b"\n", start, end)
                parts.append(memoryview(data)[start:end])
                lines += n
                entry[1], entry[2] = end, left - n
            break
        return (parts[0] if len(parts) == 1 else b"".join(parts)), lines

    def _signal(self) -> None:
        """Wake the loop's waiters (from the writer thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._on_progress)

    def _on_progress(self) -> None:
        """On the loop: a write is done. Room again only if the queue is still short by
        now: lines queued since the thread looked may have filled it up again."""
        self._changed.set()
        with self._cond:
            if not self._room_told:
                return
            self._room_told = False
            if self._error is None and self._queued >= self._max:
                return  # still full: room stays cleared, the thread tells again below _low
            self._room_wanted = False
        self._room.set()
