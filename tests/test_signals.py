"""One route for Ctrl-C, SIGTERM and Ctrl-Break, also where the loop has no signal handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from _support import posix_only

from batchsync._signals import (
    ENDING_SIGNALS,
    give_ctrl_c_back,
    interrupt_like_ctrl_c,
    raise_if_signalled,
    signal_route,
)

pytestmark = posix_only  # sends itself real signals


@pytest.mark.parametrize("prefer_loop", [True, False])
async def test_each_signal_reaches_the_callback_on_the_loop(prefer_loop: bool) -> None:
    """SIGINT and SIGTERM each call the callback on the loop, through the loop's handlers or,
    as on Windows, through signal.signal; what was installed before comes back after."""
    before = {sig: signal.getsignal(sig) for sig in ENDING_SIGNALS}
    calls: list[str] = []
    got = asyncio.Event()

    def callback() -> None:
        calls.append("interrupt")
        got.set()

    with signal_route(True, prefer_loop=prefer_loop) as hook:
        assert hook is not None
        hook(callback)
        for sig in (signal.SIGINT, signal.SIGTERM):
            got.clear()
            os.kill(os.getpid(), sig)
            await asyncio.wait_for(got.wait(), 5)
    assert calls == ["interrupt", "interrupt"]
    after = {sig: signal.getsignal(sig) for sig in ENDING_SIGNALS}
    if prefer_loop:  # the loop restores Python's defaults; rule 1 is put back on top
        assert after[signal.SIGINT] is signal.default_int_handler
    else:
        assert after == before


def _signal_self_and_wait(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)  # the handler raises here, at once


def test_before_the_engine_sigterm_is_a_keyboard_interrupt() -> None:
    """Until a run routes signals, SIGTERM raises KeyboardInterrupt, as Ctrl-C does (exit 130)."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interrupt_like_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            _signal_self_and_wait(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_disabled_route_installs_nothing() -> None:
    """A library run (handle_signals=False) leaves the process's handlers alone."""

    async def main() -> None:
        with signal_route(False) as hook:
            assert hook is None

    before = signal.getsignal(signal.SIGINT)
    asyncio.run(main())
    assert signal.getsignal(signal.SIGINT) is before


class _SignalsWhileCollected:
    """An object whose ``__del__`` gets an ending signal: Python drops what its handler
    raises there ("Exception ignored in"), as in the import system's weakref callbacks."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig

    def __del__(self) -> None:
        os.kill(os.getpid(), self.sig)
        for _ in range(100_000):  # the handler runs at one of these bytecodes
            pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_dropped_keyboard_interrupt_is_raised_at_the_next_checkpoint(
    sig: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal whose KeyboardInterrupt Python dropped is not lost: the start-up handler
    kept it, and raise_if_signalled (before a command, a run's loop, its routing) raises it."""
    from batchsync.__main__ import _Raise

    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: dropped.append(u.exc_type))
    previous = signal.getsignal(sig)
    signal.signal(sig, _Raise())
    try:
        raise_if_signalled()  # nothing received yet: no-op
        obj = _SignalsWhileCollected(sig)
        del obj
        assert dropped == [KeyboardInterrupt], "the setup must reproduce the dropped signal"
        with pytest.raises(KeyboardInterrupt):
            raise_if_signalled()
        with pytest.raises(KeyboardInterrupt):
            give_ctrl_c_back()  # a command's first step checks too
        with pytest.raises(KeyboardInterrupt):
            interrupt_like_ctrl_c()  # ...and run_async's
    finally:
        signal.signal(sig, previous)


def test_before_the_loop_ctrl_c_is_pythons_and_sigterm_keeps_the_start_up_handler() -> None:
    """interrupt_like_ctrl_c hands Ctrl-C back to Python (asyncio.Runner handles it only
    then) and keeps the start-up handler of SIGTERM, which remembers what it raised."""
    from batchsync.__main__ import _Raise

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    start_up = _Raise()
    try:
        signal.signal(signal.SIGINT, start_up)
        signal.signal(signal.SIGTERM, start_up)
        interrupt_like_ctrl_c()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert id(signal.getsignal(signal.SIGTERM)) == id(start_up)  # kept
        with pytest.raises(KeyboardInterrupt):
            _signal_self_and_wait(signal.SIGTERM)
        assert start_up.received == signal.SIGTERM
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
