"""``python -m batchsync`` and the console script: an ending signal is exit 130 from here on.

``main`` installs the handlers as its first instruction, before click, the engine, aiohttp
or MSAL are imported (a few hundred milliseconds): until a command routes signals itself
(``run_async``, ``login``, ``simulator``), SIGTERM and Ctrl-Break raise
``KeyboardInterrupt`` as Ctrl-C does, and what escapes is one line and exit 130, never a
traceback or the 143 of an unhandled SIGTERM. Only ``signal`` and ``sys`` are imported
first, and ``import batchsync`` itself loads nothing.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]

_ENDING = ("SIGTERM", "SIGBREAK")  # SIGINT already raises KeyboardInterrupt (or is ignored)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Run the ``batchsync`` command line."""
    for name in _ENDING:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _raise_keyboard_interrupt)
    try:
        from .cli import main as cli

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
    for name in ("SIGINT", *_ENDING):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


if __name__ == "__main__":
    main()
