"""The edges of ``batchsync report``: stdin, stdout, the -o file, stderr lines, exit status.

A file given with -o is written beside itself and renamed over it once complete, so an
error never leaves half a result, and it is never one of the inputs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from ._digest import ReportFormat, digest_reports
from ._errors import BatchsyncError, ConfigError
from ._files import refuse_link
from ._render import Digest

__all__ = ["default_format", "run_report"]

_FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".txt": "table",
}


def default_format(output_path: str, *, stdout_is_terminal: bool) -> str:
    """-o's extension, else the table for people at a terminal and the merged JSONL in a pipe
    (where a program, or another batchsync, reads it)."""
    if output_path != "-":
        return _FORMAT_BY_SUFFIX.get(os.path.splitext(output_path)[1].lower(), "jsonl")
    return "table" if stdout_is_terminal else "jsonl"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _echo(message: str) -> None:
    print(f"batchsync report: {message}", file=sys.stderr, flush=True)


def run_report(
    paths: Sequence[str], *, output_path: str, fmt: str, failed_only: bool, version: str
) -> tuple[int, str | None]:
    """Run ``batchsync report``: (exit status, one error line or None)."""
    if output_path != "-":
        for path in paths:
            if path != "-" and _same_file(path, output_path):
                return 2, f"-o {output_path!r} is one of the reports read; write elsewhere"
    try:
        if output_path == "-":
            out = sys.stdout.buffer
            digest = _digest(paths, fmt, failed_only, version, out.write)
            out.flush()
        else:
            digest = _to_file(paths, output_path, fmt, failed_only, version)
    except BatchsyncError as exc:
        return exc.exit_code, exc.message
    except BrokenPipeError:
        # The reader (``| head``) has what it wanted; stop quietly without Python's
        # complaint about flushing a closed stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1, None
    except Exception as exc:  # a bug: one line for people, never a traceback
        return 1, f"internal error: {type(exc).__name__}: {exc}"
    return digest.exit_status, None


def _digest(
    paths: Sequence[str], fmt: str, failed_only: bool, version: str, write: Callable[[bytes], Any]
) -> Digest:
    return digest_reports(
        paths,
        fmt=ReportFormat(fmt),
        failed_only=failed_only,
        write=write,
        warn=_echo,
        stdin=sys.stdin.buffer,
        version=version,
    )


def _to_file(
    paths: Sequence[str], output_path: str, fmt: str, failed_only: bool, version: str
) -> Digest:
    # Replacing a link would not write through it; refusing one is still the clear answer
    # (the same as run's --report), and leaves what it names alone.
    refuse_link(output_path, what="-o")
    directory = os.path.dirname(os.path.abspath(output_path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".batchsync-report-", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write {output_path!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _digest(paths, fmt, failed_only, version, out.write)
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have made it
        os.replace(tmp, output_path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {output_path!r}: {exc.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return digest
