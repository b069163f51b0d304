"""Blocking inputs handed to the event loop: a file or stdin read on a daemon thread.

A read may block forever (a stdin that never ends, a stalled pipe), so it never runs on the
loop nor on the default executor, whose threads the interpreter joins at exit: a thread
stuck there would keep a Ctrl-C'd run from exiting. Daemon threads end with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Generic, TypeVar, cast

__all__ = ["READ_BATCH", "Feed", "Primed", "default_stdin", "on_daemon_thread", "prime"]

READ_BATCH = 512  # items the reader hands over at once
_HANDOVER_S = 0.05  # a slow input's items reach the loop at most this long after arriving
_T = TypeVar("_T")
_R = TypeVar("_R")


class Feed(Generic[_T]):
    """Input items read on a daemon thread, in batches the loop asks for.

    The thread reads only while the loop waits in ``take`` (so the two never compete for
    the GIL, and nothing is read ahead of what the engine can take in) and hands over a
    batch when it has ``READ_BATCH`` items, when the input ends, or ``_HANDOVER_S`` after
    the batch's first item: a trickling stream (``discover | run -``) is dispatched as it
    arrives instead of after 512 more rows. A daemon thread: one blocked on a stdin that
    never ends cannot keep an interrupted run from exiting.
    """

    def __init__(self, items: Iterable[_T], loop: asyncio.AbstractEventLoop) -> None:
        self._items = items
        self._loop = loop
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buffer: list[_T] = []
        self._wanted = False  # the loop waits for items: the thread may read
        self._ended = False
        self._stopped = False
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._thread = threading.Thread(target=self._pump, name="batchsync-read", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Read no further (a thread blocked in a read ends with the process)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    async def take(self) -> list[_T]:
        """The next batch of items; [] once the input has ended.

        Raises what reading the input raised, after the items read before it.
        """
        first_at: float | None = None
        while True:
            with self._cond:
                count = len(self._buffer)
                if (
                    count >= READ_BATCH
                    or self._ended
                    or (first_at is not None and self._loop.time() - first_at >= _HANDOVER_S)
                ):
                    batch, self._buffer, self._wanted = self._buffer, [], False
                    if not batch and self._error is not None:
                        raise self._error
                    return batch
                self._wanted = True
                self._cond.notify()
                # Cleared under the lock: a state change after this look sets it again.
                self._ready.clear()
            if count and first_at is None:
                first_at = self._loop.time()
            if first_at is None:
                await self._ready.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(first_at + _HANDOVER_S - self._loop.time()):
                        await self._ready.wait()

    def _pump(self) -> None:
        # One lock round a item: append, then wait there if the batch is full. ``with
        # lock`` is the C lock's own (``with cond`` would add a Python call each way).
        cond, lock, buffer, full = self._cond, self._lock, self._buffer, READ_BATCH
        try:
            it = iter(self._items)
            with lock:
                while not self._wanted and not self._stopped:
                    cond.wait()
                if self._stopped:
                    return
            while True:
                item = next(it, None)  # outside the lock: it may block on a slow input
                if item is None:
                    break
                with lock:
                    buffer = self._buffer
                    buffer.append(item)
                    count = len(buffer)
                    if count >= full:
                        self._wanted = False
                    wake = count == 1 or count >= full
                    if not self._wanted:
                        if wake:
                            self._wake()
                            wake = False
                        while not self._wanted and not self._stopped:
                            cond.wait()
                    if self._stopped:
                        return
                if wake:
                    self._wake()
        except BaseException as exc:
            self._error = exc
        finally:
            with cond:
                self._ended = True
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._ready.set)


def default_stdin() -> IO[bytes]:
    """Standard input as an unbuffered file of our own on fd 0 (which it does not close).

    Not ``sys.stdin.buffer``: the reader thread may still be blocked reading a stdin that
    never ends when an interrupted run exits, and a buffered stdin whose lock that thread
    holds aborts the interpreter's shutdown ("could not acquire lock for <stdin>").
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness
        return sys.stdin.buffer
    return open(fd, "rb", buffering=0, closefd=False)


async def on_daemon_thread(fn: Callable[[_T], _R], arg: _T) -> _R:
    """``fn(arg)`` on a daemon thread of its own.

    For a read that may block on stdin forever: the default executor's threads are joined
    when the loop and the interpreter shut down, so one of them stuck in a read would keep
    a Ctrl-C'd run from exiting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_R] = loop.create_future()

    def settle(result: _R | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(cast(_R, result))

    def work() -> None:
        result: _R | None = None
        error: BaseException | None = None
        try:
            result = fn(arg)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="batchsync-prime", daemon=True).start()
    return await future


class Primed(Generic[_T]):
    """Items whose first one was read already: ``first`` (None for no item), then all.

    Iterate it once: the iterator is ``itertools.chain``'s, so the per-item step is C's,
    not a Python ``__next__`` (a million-row run steps through it a million times).
    """

    def __init__(self, first: _T | None, rest: Iterator[_T]) -> None:
        self.first = first
        self._rest = rest

    def __iter__(self) -> Iterator[_T]:
        if self.first is None:
            return self._rest
        return itertools.chain((self.first,), self._rest)


def prime(items: Iterator[_T]) -> Primed[_T]:
    """Read the first item now (on the caller's thread), so a bad header fails before any
    token is requested; the same items follow, and ``first`` tells who comes first."""
    return Primed(next(items, None), items)
