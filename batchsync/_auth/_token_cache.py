"""The persistent MSAL token cache of ``batchsync login`` and ``run --auth delegated``.

Rules:

1. Encrypted where the platform offers it (msal-extensions: DPAPI on Windows, Keychain on
   macOS, libsecret on Linux). Where it does not (a headless Linux server), a plain file
   that only its owner can read (mode 0600, directory 0700), said once on stderr.
2. Every read and every write holds msal-extensions' ``CrossPlatLock`` (``PATH.lockfile``),
   and a plain file is replaced atomically, so a process never reads a half-written cache.
3. A write merges (``merge_cache_states``): entries this process changed since it loaded
   the cache replace the stored ones; all others stay as another process left them. Two
   runs sharing one cache keep each other's tokens, and a ``logout`` made meanwhile is not
   undone.
4. The caller decides when to write: ``TokenProvider`` once at the end of a run (also when
   interrupted), never once per token, unlike msal-extensions' ``PersistedTokenCache``.
5. Tokens are trusted only from the user's own regular file (``_files`` rule 3): a symbolic
   link, a FIFO or device, or another user's file at the cache path is a ``ConfigError``,
   never read (a FIFO would hang the read), never chmod-ed through. A file whose JSON is not
   the shape MSAL writes is "damaged", one line that says what to do. ``logout`` works on
   any of them: it removes whatever is at the path (``unlink`` never follows a link).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import msal
from msal_extensions import (
    CrossPlatLock,
    FilePersistence,
    LockError,
    build_encrypted_persistence,
)
from msal_extensions.persistence import PersistenceDecryptionError, PersistenceNotFound

from .._errors import ConfigError
from .._files import open_private, tighten_mode

__all__ = [
    "PRIVATE_FILE",
    "PersistenceFactory",
    "TokenCacheStore",
    "merge_cache_states",
    "open_token_cache",
    "replace_retrying",
    "shape_problem",
    "without_accounts",
]

_log = logging.getLogger(__name__)

PersistenceFactory = Callable[[str], Any]
"""Builds an encrypted msal-extensions persistence for a path, or raises if unavailable."""

_RELOGIN = "run `batchsync logout`, then `batchsync login`"
# How a plain cache file is kept private, in the words of this platform.
PRIVATE_FILE = "mode 0600" if os.name == "posix" else "in your user profile"
_WHAT = "the token cache"
# MSAL's credential tables: {kind: {key: entry}}, each entry a flat object of plain values.
_KINDS = ("AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata")
_TEXT = frozenset(
    {
        "home_account_id",
        "environment",
        "realm",
        "client_id",
        "username",
        "credential_type",
        "secret",
        "target",
        "local_account_id",
        "family_id",
        "authority_type",
    }
)
_STALE_LOCK_S = 30.0  # a lock older than this was left by a killed process
_ACCOUNT = "Account"

_warned_paths: set[str] = set()
_warned_lock = threading.Lock()


# --- pure state helpers (the cache's JSON: {credential type: {key: entry}}) ---------------------


def merge_cache_states(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any]:
    """Three-way merge of serialized MSAL caches.

    ``base`` is what this process loaded, ``ours`` what it holds now, ``theirs`` what is
    stored now. An entry ours changed (added, replaced or removed) since ``base`` wins;
    every other entry is taken from ``theirs``.
    """
    merged: dict[str, Any] = {}
    for kind in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(kind), ours.get(kind), theirs.get(kind)
        if not all(isinstance(x, dict | None) for x in (b, o, t)):
            merged[kind] = copy.deepcopy(o if kind in ours else t)  # not a credential table
            continue
        b, o = b or {}, o or {}
        table = dict(t or {})
        for key in set(b) | set(o):
            if o.get(key) != b.get(key):
                if key in o:
                    table[key] = o[key]
                else:
                    table.pop(key, None)
        if table or kind in theirs or kind in ours:
            merged[kind] = copy.deepcopy(table)
    return merged


def without_accounts(
    state: Mapping[str, Any], usernames: Collection[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """``state`` without the accounts named (all when None) and every token of theirs.

    Returns (the remaining state, the usernames removed). Tokens belong to an account by
    ``home_account_id``; app metadata stays.
    """
    wanted = None if usernames is None else {u.lower() for u in usernames}
    table = state.get(_ACCOUNT)
    accounts: Mapping[str, Any] = table if isinstance(table, dict) else {}
    doomed_ids: set[str] = set()
    removed: list[str] = []
    for entry in accounts.values():
        if not isinstance(entry, dict):
            continue
        name = entry.get("username")
        if wanted is None or (isinstance(name, str) and name.lower() in wanted):
            home = entry.get("home_account_id")
            if isinstance(home, str):
                doomed_ids.add(home)
            if isinstance(name, str) and name not in removed:
                removed.append(name)
    remaining: dict[str, Any] = {}
    for kind, table in state.items():
        if not isinstance(table, dict):
            remaining[kind] = copy.deepcopy(table)
            continue
        remaining[kind] = {
            key: copy.deepcopy(entry)
            for key, entry in table.items()
            if not (isinstance(entry, dict) and entry.get("home_account_id") in doomed_ids)
        }
    return remaining, removed


def _has_accounts(state: Mapping[str, Any]) -> bool:
    return bool(state.get(_ACCOUNT))


def shape_problem(state: object) -> str | None:
    """Why a parsed cache is not the shape MSAL writes (rule 5), or None.

    Checked before MSAL or the merge ever touch it, so a crafted or mangled cache is one
    clear error instead of a traceback deep inside MSAL.
    """
    if not isinstance(state, dict):
        return "not a JSON object"
    for kind in _KINDS:
        table = state.get(kind)
        if table is None:
            continue
        if not isinstance(table, dict):
            return f"{kind} is not an object"
        for entry in table.values():
            if not isinstance(entry, dict):
                return f"an {kind} entry is not an object"
            for name, value in entry.items():
                if not isinstance(value, str | int | float | bool | None):
                    return f"{kind} field {name!r} is not a plain value"
                if name in _TEXT and not isinstance(value, str | None):
                    return f"{kind} field {name!r} is not text"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --- persistence ---------------------------------------------------------------------------------


class _PrivateFilePersistence(FilePersistence):  # type: ignore[misc]  # msal_extensions is untyped
    """msal-extensions' ``FilePersistence``, written atomically as a new 0600 file.

    ``FilePersistence.save`` truncates the file in place (a reader may see it half written)
    and keeps the mode of an existing file; a new file replacing the old one has neither
    problem, whatever the old file's mode was.
    """

    is_encrypted = False

    def load(self) -> str:
        """The file's text, read only from the user's own regular file (rule 5)."""
        path: str = self.get_location()
        fd = open_private(path, what=_WHAT)
        if fd is None:
            raise PersistenceNotFound(message="no token cache yet", location=path)
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def save(self, content: str) -> None:
        path: str = self.get_location()
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            replace_retrying(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def replace_retrying(
    src: str,
    dst: str,
    *,
    attempts: int = 10,
    delay_s: float = 0.05,
    replace: Callable[[str, str], None] = os.replace,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``os.replace``, tried again while the target is held open elsewhere.

    On Windows a file another process has open (a virus scanner, a backup agent, a second
    batchsync reading the cache) cannot be replaced for a moment: PermissionError. A few
    tries over about half a second ride that out; POSIX never raises it here.
    """
    for attempt in range(1, attempts + 1):
        try:
            replace(src, dst)
            return
        except PermissionError:
            if attempt == attempts:
                raise
            sleep(delay_s * attempt)


def _probe(persistence: Any) -> None:
    """Raise if the encrypted store cannot be used (e.g. a locked or absent keychain)."""
    # Nothing stored yet, or a damaged entry: the store itself works.
    with contextlib.suppress(PersistenceNotFound, PersistenceDecryptionError):
        persistence.load()


def _encryption_name() -> str:
    if sys.platform.startswith("win"):
        return "DPAPI"
    if sys.platform == "darwin":
        return "the Keychain"
    return "libsecret"


def _warn_plaintext_once(path: str, reason: str) -> None:
    with _warned_lock:
        if path in _warned_paths:
            return
        _warned_paths.add(path)
    _log.warning(
        "cannot encrypt the token cache with %s here (%s); keeping it in %s, a plain file "
        "only you can read (%s)",
        _encryption_name(),
        reason,
        path,
        PRIVATE_FILE,
    )


class TokenCacheStore:
    """Where one token cache lives and how it is read and written (rules in the module doc).

    ``load`` returns an in-memory ``msal.SerializableTokenCache`` and remembers what it
    read; ``save`` writes that cache back, merged with what other processes stored since.
    """

    def __init__(self, path: str, persistence: Any, *, encrypted: bool) -> None:
        self.path = path
        self.encrypted = encrypted
        self._persistence = persistence
        self._lock_path = path + ".lockfile"
        self._base: dict[str, Any] = {}
        self.saves = 0

    def __repr__(self) -> str:
        kind = "encrypted" if self.encrypted else "plaintext-0600"
        return f"<TokenCacheStore {self.path!r} {kind} saves={self.saves}>"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._clear_planted_lock()
        self._clear_stale_lock()
        try:
            lock = CrossPlatLock(self._lock_path)
            lock.__enter__()
        except LockError as exc:
            raise ConfigError(
                f"the token cache {self.path!r} stays locked by another process "
                f"({_first_line(exc)}); if no batchsync is running, delete {self._lock_path!r}"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the token cache {self.path!r} ({exc.strerror or exc})"
            ) from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def _clear_planted_lock(self) -> None:
        """batchsync creates its lock file (``open(..., 'x')``); a symbolic link there was
        planted, and a lock that opens it for writing (portalocker's) would truncate what
        it names: remove the link (``unlink`` never follows it)."""
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.lstat(self._lock_path).st_mode):
                os.remove(self._lock_path)
                _log.warning("removed a symbolic link at the lock file %s", self._lock_path)

    def _clear_stale_lock(self) -> None:
        """Remove a lock file left by a killed process (without portalocker, msal-extensions
        locks by creating the file). The lock is held for milliseconds, so an old one is
        stale."""
        with contextlib.suppress(OSError):
            age = time.time() - os.path.getmtime(self._lock_path)
            if age > _STALE_LOCK_S:
                os.remove(self._lock_path)
                _log.warning("removed a stale lock file %s (%.0f s old)", self._lock_path, age)

    def _read_state(self) -> dict[str, Any]:
        fd = open_private(self.path, what=_WHAT)  # rule 5, whatever persistence reads it
        if fd is not None:
            os.close(fd)
        try:
            text = self._persistence.load()
        except PersistenceNotFound:
            return {}
        except ConfigError:
            raise
        except Exception as exc:  # decryption, keychain or file errors
            raise ConfigError(
                f"cannot read the token cache {self.path!r} ({_first_line(exc)}); {_RELOGIN}"
            ) from None
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str) or not text.strip():
            return {}
        try:
            state = json.loads(text)
        except (ValueError, RecursionError):
            raise ConfigError(
                f"the token cache {self.path!r} is damaged (not JSON): {_RELOGIN}"
            ) from None
        problem = shape_problem(state)
        if problem is not None:
            raise ConfigError(f"the token cache {self.path!r} is damaged ({problem}): {_RELOGIN}")
        assert isinstance(state, dict)
        return state

    def load(self) -> msal.SerializableTokenCache:
        """The stored cache (empty when none), read under the lock."""
        with self._locked():
            state = self._read_state()
        cache = msal.SerializableTokenCache()
        if state:
            try:
                cache.deserialize(json.dumps(state))
            except (TypeError, ValueError):
                raise ConfigError(f"the token cache {self.path!r} is damaged: {_RELOGIN}") from None
        self._base = state
        return cache

    def save(self, cache: msal.SerializableTokenCache) -> bool:
        """Write ``cache`` back, merged with the stored one; False when nothing was written.

        Nothing is written when the cache has not changed, or when the sign-in this process
        loaded was removed meanwhile (``batchsync logout``): a logout is never undone.
        Raises ConfigError when the cache cannot be written.
        """
        if not cache.has_state_changed:
            return False
        ours: dict[str, Any] = json.loads(cache.serialize())
        with self._locked():
            fd = open_private(self.path, what=_WHAT)  # never replace another user's file
            if fd is not None:
                os.close(fd)
            try:
                theirs = self._read_state()
            except ConfigError as exc:
                _log.debug("replacing an unreadable token cache: %s", exc.message)
                theirs = {}
            if _has_accounts(self._base) and not _has_accounts(theirs):
                _log.warning(
                    "the sign-in was removed from the token cache %s while this process "
                    "ran (batchsync logout?); not storing its refreshed tokens",
                    self.path,
                )
                self._base = ours
                return False
            merged = merge_cache_states(self._base, ours, theirs)
            self._write(merged)
        self._base = ours
        self.saves += 1
        return True

    def _write(self, state: Mapping[str, Any]) -> None:
        try:
            self._persistence.save(json.dumps(state, indent=4))
        except Exception as exc:
            raise ConfigError(
                f"cannot write the token cache {self.path!r} ({_first_line(exc)})"
            ) from None

    def remove_accounts(self, usernames: Collection[str] | None = None) -> list[str]:
        """Forget the accounts named (every one when None) and all their tokens.

        When no account remains, the cache is emptied and its file deleted. Works on any
        cache (rule 5): one that cannot be read (damaged, a link, a FIFO) is removed whole,
        with a warning. Returns the usernames removed.
        """
        with self._locked():
            try:
                state = self._read_state()
            except ConfigError as exc:
                _log.warning("%s; removing it", exc.message.removesuffix(f": {_RELOGIN}"))
                state = {}
            remaining, removed = without_accounts(state, usernames)
            if _has_accounts(remaining):
                if removed:
                    self._write(remaining)
            else:
                if self.encrypted:
                    self._write({})  # the secret store holds the data, not the file
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise ConfigError(
                        f"cannot remove the token cache {self.path!r}: {exc.strerror}"
                    ) from None
        self._base = {}
        return removed


def open_token_cache(
    path: str,
    *,
    encrypted_persistence: PersistenceFactory | None = build_encrypted_persistence,
    warn: bool = True,
    check: bool = True,
) -> TokenCacheStore:
    """The token cache at ``path``: encrypted when ``encrypted_persistence`` works here,
    else a 0600 plain file (``warn``: say so on stderr, once per path and process).

    Raises ConfigError when the cache's directory cannot be created, or (``check``, rule 5)
    when what is at ``path`` is not the user's own regular file; ``logout`` passes
    ``check=False`` to remove whatever it is.
    """
    path = os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the token cache's directory for {path!r}: {exc.strerror or exc}"
        ) from None
    if check:
        fd = open_private(path, what=_WHAT)
        if fd is not None:
            os.close(fd)
    reason = "encryption not requested"
    if encrypted_persistence is not None:
        try:
            persistence = encrypted_persistence(path)
            _probe(persistence)
        except Exception as exc:  # ImportError (no PyGObject), RuntimeError (no keyring), ...
            reason = _first_line(exc)
        else:
            return TokenCacheStore(path, persistence, encrypted=True)
    if warn:
        _warn_plaintext_once(path, reason)
    if check:  # a file from elsewhere, readable by others: close it, on a checked descriptor
        tighten_mode(path, what=_WHAT)  # (Windows: no fchmod; the user profile keeps it private)
    return TokenCacheStore(path, _PrivateFilePersistence(path), encrypted=False)
