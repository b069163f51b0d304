"""Ctrl-C, SIGTERM and Ctrl-Break: one route from the operating system to a run.

Rules:

1. Until the engine runs (imports, option checks, preflight), SIGTERM and Ctrl-Break end
   the process as Ctrl-C does: ``KeyboardInterrupt``, one line, exit 130 (``__main__``
   installs that before importing anything else; ``interrupt_like_ctrl_c`` again for a
   command's coroutine).
2. While the engine runs, each of them calls the engine's ``interrupt`` on the event loop:
   the first starts the grace, the second ends it. ``loop.add_signal_handler`` where the
   loop offers it (Unix); elsewhere (Windows' default loop) ``signal.signal`` hands over
   with ``call_soon_threadsafe``, so Ctrl-C keeps its grace there too.
3. What was installed before is put back when the run ends.
4. A ``KeyboardInterrupt`` that Python dropped (raised inside a callback that cannot raise,
   such as the import system's weakref callbacks) is raised again at the next checkpoint,
   ``raise_if_signalled``: before a command starts (where Ctrl-C goes back to Python's own
   handler, ``give_ctrl_c_back``), before a run's loop starts and before its signals are
   routed. The handler ``__main__`` installs keeps what it raised in its
   ``received``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = [
    "ENDING_SIGNALS",
    "give_ctrl_c_back",
    "interrupt_like_ctrl_c",
    "raise_if_signalled",
    "signal_route",
]

# SIGBREAK is Windows' Ctrl-Break (also what `taskkill` without /F sends a console process).
ENDING_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM) + (
    (signal.Signals(signal.SIGBREAK),) if hasattr(signal, "SIGBREAK") else ()
)

_Handler = Callable[[int, FrameType | None], object] | int | None


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _records(handler: object) -> bool:
    """Whether ``handler`` keeps the signal it raised for (``__main__``'s does, rule 4)."""
    return isinstance(getattr(handler, "received", None), int)


def raise_if_signalled() -> None:
    """Raise the ``KeyboardInterrupt`` of an ending signal that Python dropped (rule 4)."""
    for sig in ENDING_SIGNALS:
        if getattr(signal.getsignal(sig), "received", 0):
            raise KeyboardInterrupt


def give_ctrl_c_back() -> None:
    """Rule 4's checkpoint, then Ctrl-C is Python's own again, as a command expects:
    ``asyncio.run`` cancels its task on Ctrl-C only when it finds Python's handler."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (a test harness)
    raise_if_signalled()
    if _records(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def interrupt_like_ctrl_c() -> None:
    """From now on SIGTERM and Ctrl-Break raise ``KeyboardInterrupt``, as Ctrl-C does (the
    start-up handler, which remembers, is kept), and Ctrl-C is Python's own."""
    if threading.current_thread() is not threading.main_thread():
        return
    give_ctrl_c_back()
    for sig in ENDING_SIGNALS:
        if sig is not signal.SIGINT and not _records(signal.getsignal(sig)):
            signal.signal(sig, _raise_keyboard_interrupt)


@contextlib.contextmanager
def signal_route(
    enabled: bool, *, prefer_loop: bool = True
) -> Iterator[Callable[[Callable[[], None]], None] | None]:
    """A hook that routes the ending signals to a callback on the running loop (rule 2).

    Yields None when ``enabled`` is false; ``prefer_loop=False`` forces the ``signal.signal``
    route that Windows uses (tests run it here).
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield None
        return
    raise_if_signalled()
    import asyncio  # the CLI imports this module before it needs a loop

    loop = asyncio.get_running_loop()
    on_loop: list[signal.Signals] = []
    previous: dict[signal.Signals, _Handler] = {}

    def hook(callback: Callable[[], None]) -> None:
        def hand_over(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(callback)

        for sig in ENDING_SIGNALS:
            if prefer_loop:
                try:
                    loop.add_signal_handler(sig, callback)
                    on_loop.append(sig)
                    continue
                except (NotImplementedError, RuntimeError):  # Windows' loops have none
                    pass
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, hand_over)

    try:
        yield hook
    finally:
        for sig in on_loop:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_loop:
            # remove_signal_handler put back Python's defaults: keep rule 1 for what follows.
            interrupt_like_ctrl_c()
