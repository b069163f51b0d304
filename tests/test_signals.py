"""One route for Ctrl-C, SIGTERM and Ctrl-Break, also where the loop has no signal handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from _support import posix_only

from batchsync._signals import ENDING_SIGNALS, interrupt_like_ctrl_c, signal_route

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
