"""``python -m batchsync`` and the console script: an ending signal is exit 130 from here on.

``main`` installs the handlers as its first instruction, before click, the engine, aiohttp
or MSAL are imported (a few hundred milliseconds): until a command routes signals itself
(``run_async``, ``login``, ``simulator``), SIGTERM and Ctrl-Break raise
``KeyboardInterrupt`` as Ctrl-C does, and what escapes is one line and exit 130, never a
traceback or the 143 of an unhandled SIGTERM. Only ``signal`` and ``sys`` are imported
first, and ``import batchsync`` itself loads nothing.

Python drops an exception raised while it runs a callback that cannot raise (the import
system's weakref callbacks run all through start-up: "Exception ignored in ..."), so a
signal there would be lost and the command would run on. The handler remembers what it
raised; the checkpoints after the imports (here, ``_signals.raise_if_signalled``) raise it
again.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]

_ENDING = ("SIGINT", "SIGTERM", "SIGBREAK")


class _Raise:
    """An ending signal's handler until a command routes it: ``KeyboardInterrupt``, and the
    signal kept in ``received`` (the attribute ``_signals.raise_if_signalled`` looks for)."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.received = signum
        raise KeyboardInterrupt


_HANDLER = _Raise()


def main() -> None:
    """Run the ``batchsync`` command line."""
    for name in _ENDING:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        if name == "SIGINT" and signal.getsignal(sig) is not signal.default_int_handler:
            continue  # ignored (a background job's Ctrl-C): it stays ignored
        signal.signal(sig, _HANDLER)
    try:
        from .cli import main as cli

        if _HANDLER.received:  # raised during the imports, where Python dropped it
            raise KeyboardInterrupt
        cli()
    except KeyboardInterrupt:
        _ignore_ending_signals()  # a second signal must not tear the last line
        sys.stderr.write("batchsync: interrupted\n")
        sys.stderr.flush()
        sys.exit(130)
    except SystemExit:
        # The command is done and its status said: a signal now, while the interpreter
        # shuts down (with Python's handlers gone), must not turn it into a 143.
        _ignore_ending_signals()
        raise


def _ignore_ending_signals() -> None:
    for name in _ENDING:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


if __name__ == "__main__":
    main()
