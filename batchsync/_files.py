"""Opening the files batchsync writes, and its token cache, without following planted links.

An output path may sit in a directory others can write (``/tmp``, a shared folder), where a
symbolic link planted at that name would make ``--overwrite`` truncate, and ``--resume``
cut and append to, whatever file the link names. Rules:

1. A symbolic link to a regular file is refused with one clear line, never written through.
   Where the OS has ``O_NOFOLLOW`` (Linux, macOS, BSD) the kernel refuses the link as part
   of the open itself, so no race is left; elsewhere (Windows, where creating a link needs a
   privilege or developer mode) ``lstat`` before and ``fstat`` after the open must name the
   same regular file.
2. A link to something that is not a regular file (``/dev/stdout``, a shell's ``>(...)``
   pipe) is written through: truncating or appending to a pipe or terminal harms nothing.
3. A private file (the token cache) must also be a regular file owned by the user running
   batchsync, checked on the open descriptor (``O_NONBLOCK``: a FIFO planted there cannot
   make the open hang), and its mode is tightened on that descriptor (``fchmod``), never
   through a path a link could redirect. Where there are no POSIX owners and modes
   (Windows), the file's protection is the ACL of the user's profile directory and DPAPI.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Final

from ._errors import ConfigError

__all__ = ["open_output", "open_private", "refuse_link", "tighten_mode"]

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_BINARY: Final = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
# What open(O_NOFOLLOW) answers for a final symbolic link: ELOOP (Linux, macOS), EMLINK
# (FreeBSD), EFTYPE (NetBSD).
_LINK_ERRNOS: Final = frozenset(
    e for e in (errno.ELOOP, getattr(errno, "EMLINK", None), getattr(errno, "EFTYPE", None)) if e
)
_getuid = getattr(os, "getuid", None)
_fchmod = getattr(os, "fchmod", None)


def _link_refused(what: str, path: str) -> ConfigError:
    return ConfigError(
        f"{what} {path!r} is a symbolic link to a file; batchsync does not write through links "
        "(one planted in a shared directory would redirect the write): give the real path"
    )


def refuse_link(path: str, *, what: str) -> None:
    """``ConfigError`` when ``path`` is a symbolic link to a regular file (rule 1); for
    writers that replace the file instead of opening it (``batchsync report -o``)."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode) and stat.S_ISREG(os.stat(path).st_mode):
            raise _link_refused(what, path)
    except OSError:
        return  # no such file, or a dangling link: replacing it writes nothing elsewhere


def open_output(path: str, flags: int, *, what: str, mode: int = 0o644) -> int:
    """``os.open(path, flags, mode)`` without following a link to a file (rules 1 and 2).

    Raises ``ConfigError`` (one line naming ``what``) for a refused link or a failed open.
    """
    if not _NOFOLLOW:  # rule 1 without the kernel's help: never O_TRUNC a link's target
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return _through_link(path, flags, what=what)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _BINARY, mode)
    except OSError as exc:
        if _NOFOLLOW and exc.errno in _LINK_ERRNOS:
            return _through_link(path, flags, what=what)
        raise ConfigError(f"cannot open {what} {path!r}: {exc.strerror}") from None
    if not _NOFOLLOW:
        _same_file_or_close(fd, path, what=what)
    return fd


def _through_link(path: str, flags: int, *, what: str) -> int:
    """A link's target, opened only if it is not a regular file (rule 2); it is opened
    without O_TRUNC/O_CREAT and checked on the descriptor, so a swapped link gains nothing."""
    safe = flags & ~(os.O_TRUNC | os.O_CREAT | getattr(os, "O_EXCL", 0))
    try:
        fd = os.open(path, safe | _BINARY)
    except OSError as exc:
        raise ConfigError(f"cannot open {what} {path!r}: {exc.strerror}") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _link_refused(what, path)
    return fd


def _same_file_or_close(fd: int, path: str, *, what: str) -> None:
    """No O_NOFOLLOW (rule 1): what the path names now must be the file that was opened."""
    try:
        now = os.lstat(path)
    except OSError:
        now = None
    opened = os.fstat(fd)
    if now is None or stat.S_ISLNK(now.st_mode) or not os.path.samestat(now, opened):
        if not stat.S_ISREG(opened.st_mode):
            return  # rule 2: a pipe or a device behind a link
        os.close(fd)
        raise _link_refused(what, path)


def open_private(path: str, *, what: str) -> int | None:
    """A read-only descriptor on the user's own regular file at ``path``, None when there is
    none (rule 3). ``ConfigError`` for a link, a FIFO or a device, or another user's file."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    if stat.S_ISLNK(before.st_mode):
        raise ConfigError(
            f"{what} {path!r} is a symbolic link; batchsync keeps tokens only in a file of its "
            "own: give the real path (--token-cache)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    try:
        _check_private(os.fstat(fd), before, path, what=what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_private(st: os.stat_result, before: os.stat_result, path: str, *, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"{what} {path!r} is not a regular file (a FIFO, a device or a directory); remove "
            "it or give another --token-cache"
        )
    if not _NOFOLLOW and not os.path.samestat(st, before):
        raise ConfigError(f"{what} {path!r} changed while it was opened; try again")
    if _getuid is not None and st.st_uid != _getuid():
        raise ConfigError(
            f"{what} {path!r} belongs to another user (uid {st.st_uid}); batchsync does not "
            "trust tokens it did not store: remove it or give another --token-cache"
        )


def tighten_mode(path: str, *, what: str) -> None:
    """Make the user's own file at ``path`` readable by them alone (0600), on a checked
    descriptor (rule 3). A missing file is fine; a file that fails the checks is a
    ``ConfigError``. Does nothing where modes do not exist (Windows: no ``fchmod``)."""
    fd = open_private(path, what=what)
    if fd is None:
        return
    try:
        if _fchmod is not None and os.fstat(fd).st_mode & 0o077:
            with contextlib.suppress(OSError):  # a filesystem without modes (vfat, some SMB)
                _fchmod(fd, 0o600)
    finally:
        os.close(fd)
