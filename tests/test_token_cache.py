"""The persistent token cache: encrypted where possible, private, locked, merged."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _support import posix_only
from msal_extensions.persistence import PersistenceNotFound

from batchsync._auth import (
    AuthSettings,
    logout,
    signed_in_accounts,
)
from batchsync._auth._token_cache import (
    TokenCacheStore,
    merge_cache_states,
    open_token_cache,
    replace_retrying,
    without_accounts,
)
from batchsync._errors import ConfigError

# --- the persistent token cache ---------------------------------------------------------------


def _state(**tables: dict[str, Any]) -> dict[str, Any]:
    return {kind: dict(table) for kind, table in tables.items()}


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "merged"),
    [
        # ours added an entry, theirs added another: both kept
        (
            _state(AccessToken={}),
            _state(AccessToken={"a": {"v": 1}}),
            _state(AccessToken={"b": {"v": 2}}),
            _state(AccessToken={"a": {"v": 1}, "b": {"v": 2}}),
        ),
        # ours rotated a refresh token: ours wins over the stored one
        (
            _state(RefreshToken={"r": {"v": 1}}),
            _state(RefreshToken={"r": {"v": 2}}),
            _state(RefreshToken={"r": {"v": 1}}),
            _state(RefreshToken={"r": {"v": 2}}),
        ),
        # ours left an entry alone, theirs rotated it: theirs wins
        (
            _state(RefreshToken={"r": {"v": 1}}),
            _state(RefreshToken={"r": {"v": 1}}),
            _state(RefreshToken={"r": {"v": 3}}),
            _state(RefreshToken={"r": {"v": 3}}),
        ),
        # ours removed an entry: it goes, even though theirs still has it
        (
            _state(AccessToken={"a": {"v": 1}}),
            _state(AccessToken={}),
            _state(AccessToken={"a": {"v": 1}, "b": {"v": 2}}),
            _state(AccessToken={"b": {"v": 2}}),
        ),
        # theirs removed an entry ours never touched: it stays removed
        (
            _state(AccessToken={"a": {"v": 1}}),
            _state(AccessToken={"a": {"v": 1}, "c": {"v": 4}}),
            _state(AccessToken={}),
            _state(AccessToken={"c": {"v": 4}}),
        ),
    ],
)
def test_merge_cache_states(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], merged: dict[str, Any]
) -> None:
    """A save keeps what ours changed since loading and what others stored otherwise."""
    assert merge_cache_states(base, ours, theirs) == merged


def test_without_accounts_removes_their_tokens_only() -> None:
    """Removing an account removes every entry with its home_account_id, nothing else."""
    state = {
        "Account": {
            "a1": {"home_account_id": "u1", "username": "one@x"},
            "a2": {"home_account_id": "u2", "username": "two@x"},
        },
        "RefreshToken": {"r1": {"home_account_id": "u1"}, "r2": {"home_account_id": "u2"}},
        "AccessToken": {"t1": {"home_account_id": "u1"}},
        "AppMetadata": {"m": {"client_id": "c"}},
    }
    remaining, removed = without_accounts(state, ["ONE@x"])
    assert removed == ["one@x"]
    assert remaining == {
        "Account": {"a2": {"home_account_id": "u2", "username": "two@x"}},
        "RefreshToken": {"r2": {"home_account_id": "u2"}},
        "AccessToken": {},
        "AppMetadata": {"m": {"client_id": "c"}},
    }
    everything, all_removed = without_accounts(state, None)
    assert all_removed == ["one@x", "two@x"]
    assert everything["Account"] == {}


def _no_encryption(path: str) -> Any:
    raise ImportError("Unable to import module 'gi'\nmore text")


class _FakeKeyring:
    """An encrypted persistence stand-in: the data lives in memory, the file is a signal."""

    is_encrypted = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: str | None = None

    def save(self, content: str) -> None:
        self.data = content
        Path(self.path).touch()

    def load(self) -> str:
        if self.data is None:
            raise PersistenceNotFound()
        return self.data

    def time_last_modified(self) -> float:
        return os.path.getmtime(self.path)

    def get_location(self) -> str:
        return self.path


def _fake_app_cache(store: TokenCacheStore, key: str, username: str = "u@x") -> Any:
    """Load the store's cache and add an account with one access token (no network)."""
    cache = store.load()
    cache.deserialize(
        json.dumps(
            merge_cache_states(
                {},
                {
                    "Account": {
                        f"acc-{username}": {"home_account_id": username, "username": username}
                    },
                    "AccessToken": {key: {"home_account_id": username, "secret": f"at-{key}"}},
                },
                json.loads(cache.serialize()),
            )
        )
    )
    cache.has_state_changed = True
    return cache


@posix_only
def test_plaintext_fallback_warns_once_and_is_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without encryption the cache is a 0600 file in a 0700 directory, said once on stderr."""
    path = tmp_path / "new-dir" / "cache.json"
    with caplog.at_level(logging.WARNING, logger="batchsync"):
        store = open_token_cache(str(path), encrypted_persistence=_no_encryption)
        open_token_cache(str(path), encrypted_persistence=_no_encryption)
    warnings = [r.getMessage() for r in caplog.records if "cannot encrypt" in r.getMessage()]
    assert len(warnings) == 1
    assert "ImportError: Unable to import module 'gi'" in warnings[0]
    assert "0600" in warnings[0]
    assert not store.encrypted
    assert store.save(_fake_app_cache(store, "k1"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert "at-k1" in path.read_text()
    assert not Path(str(path) + ".lockfile").exists()  # the lock is released


@posix_only
def test_plaintext_cache_with_wide_mode_is_tightened(tmp_path: Path) -> None:
    """An existing cache file readable by others becomes 0600, and stays so after a save."""
    path = tmp_path / "cache.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    store = open_token_cache(str(path), encrypted_persistence=_no_encryption, warn=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store.save(_fake_app_cache(store, "k1"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_encrypted_persistence_is_preferred(tmp_path: Path) -> None:
    """Where encryption works, tokens go to it and the file on disk holds none of them."""
    keyrings: list[_FakeKeyring] = []

    def factory(path: str) -> _FakeKeyring:
        keyrings.append(_FakeKeyring(path))
        return keyrings[-1]

    path = tmp_path / "cache.json"
    store = open_token_cache(str(path), encrypted_persistence=factory)
    assert store.encrypted
    assert store.save(_fake_app_cache(store, "k1"))
    assert path.read_text() == ""
    assert keyrings[0].data is not None
    assert "at-k1" in keyrings[0].data
    assert [n for n in store.remove_accounts()] == ["u@x"]
    assert keyrings[0].data == "{}"
    assert not path.exists()


def test_save_merges_with_another_process(tmp_path: Path) -> None:
    """Two stores on one path (two processes) keep both their tokens; neither loses any."""
    path = str(tmp_path / "cache.json")
    first = open_token_cache(path, encrypted_persistence=None, warn=False)
    second = open_token_cache(path, encrypted_persistence=None, warn=False)
    cache_a = _fake_app_cache(first, "from-a")
    cache_b = _fake_app_cache(second, "from-b")
    assert first.save(cache_a)
    assert second.save(cache_b)
    stored = json.loads(Path(path).read_text())
    assert set(stored["AccessToken"]) == {"from-a", "from-b"}
    assert not second.save(cache_b)  # unchanged since: nothing written


def test_logout_meanwhile_is_not_undone(tmp_path: Path) -> None:
    """A process that loaded a sign-in which was logged out meanwhile does not restore it."""
    path = str(tmp_path / "cache.json")
    store = open_token_cache(path, encrypted_persistence=None, warn=False)
    store.save(_fake_app_cache(store, "k1"))
    running = open_token_cache(path, encrypted_persistence=None, warn=False)
    cache = running.load()
    assert open_token_cache(path, encrypted_persistence=None, warn=False).remove_accounts() == [
        "u@x"
    ]
    assert not Path(path).exists()
    cache.has_state_changed = True
    assert not running.save(cache)
    assert not Path(path).exists()


def test_damaged_cache_says_logout_login(tmp_path: Path) -> None:
    """A cache file that is not a token cache is a ConfigError naming logout and login."""
    path = tmp_path / "cache.json"
    path.write_text("not json")
    settings = AuthSettings(token_cache_path=str(path))
    with pytest.raises(ConfigError, match="batchsync logout") as info:
        signed_in_accounts(settings)
    assert info.value.exit_code == 2
    assert logout(settings) == []  # a damaged cache is removed all the same
    assert not path.exists()


def test_stale_lock_of_a_killed_process_is_cleared(tmp_path: Path) -> None:
    """A lock file left behind long ago (a killed process) does not block the cache."""
    path = tmp_path / "cache.json"
    store = open_token_cache(str(path), encrypted_persistence=None, warn=False)
    store.save(_fake_app_cache(store, "k1"))
    lock = Path(str(path) + ".lockfile")
    lock.write_text("12345 batchsync")
    os.utime(lock, (1_000_000_000, 1_000_000_000))
    assert "acc-u@x" in json.loads(store.load().serialize())["Account"]
    assert not lock.exists()


def test_replace_is_retried_while_the_file_is_held_open() -> None:
    """A cache another process holds open (Windows: PermissionError) is replaced on a retry."""
    calls: list[tuple[str, str]] = []
    waits: list[float] = []

    def held_twice(src: str, dst: str) -> None:
        calls.append((src, dst))
        if len(calls) < 3:
            raise PermissionError(13, "the file is used by another process")

    replace_retrying("tmp", "cache.json", replace=held_twice, sleep=waits.append)
    assert calls == [("tmp", "cache.json")] * 3
    assert len(waits) == 2


def test_replace_gives_up_after_its_attempts() -> None:
    """A file held open for good raises the PermissionError after the last attempt."""

    def always_held(src: str, dst: str) -> None:
        raise PermissionError(13, "the file is used by another process")

    with pytest.raises(PermissionError):
        replace_retrying("tmp", "cache.json", attempts=3, replace=always_held, sleep=lambda _: None)


# --- a cache path others may have shaped ---------------------------------------------------------

_SHAPES = [
    ("[]", "not a JSON object"),
    ('{"Account": []}', "Account is not an object"),
    ('{"Account": {"a": "x"}}', "an Account entry is not an object"),
    ('{"Account": {"a": {"home_account_id": ["x"], "username": "u"}}}', "is not a plain value"),
    ('{"RefreshToken": {"r": {"secret": 5}}}', "'secret' is not text"),
    ("[" * 5000 + "]" * 5000, "damaged"),
]


@pytest.mark.parametrize(("content", "why"), _SHAPES)
def test_wrong_shape_is_one_clear_error_and_logout_removes_it(
    tmp_path: Path, content: str, why: str
) -> None:
    """Valid JSON of the wrong shape is one ConfigError (damaged, why, logout then login),
    never a traceback from MSAL or the merge; `logout` works on it and removes it."""
    path = tmp_path / "cache.json"
    path.write_text(content)
    settings = AuthSettings(token_cache_path=str(path))
    with pytest.raises(ConfigError, match="damaged") as info:
        signed_in_accounts(settings)
    assert why in info.value.message
    assert "batchsync logout" in info.value.message
    assert logout(settings) == []
    assert not path.exists()


def test_symlinked_cache_is_refused_and_never_chmod_through(tmp_path: Path) -> None:
    """A cache path that is a symbolic link is refused (not read, its target's mode left
    alone); `logout` removes the link, never the file it names."""
    target = tmp_path / "someone-elses-file"
    target.write_text("{}")
    os.chmod(target, 0o644)
    link = tmp_path / "cache.json"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        open_token_cache(str(link), encrypted_persistence=None)
    with pytest.raises(ConfigError, match="symbolic link"):
        signed_in_accounts(AuthSettings(token_cache_path=str(link)))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert logout(AuthSettings(token_cache_path=str(link))) == []
    assert not link.is_symlink()
    assert target.read_text() == "{}"


def test_a_planted_lock_link_is_removed_not_followed(tmp_path: Path) -> None:
    """A symbolic link at the lock file's name is removed, and what it names is untouched."""
    path = tmp_path / "cache.json"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    Path(str(path) + ".lockfile").symlink_to(victim)
    store = open_token_cache(str(path), encrypted_persistence=None, warn=False)
    assert store.save(_fake_app_cache(store, "k1"))
    assert victim.read_text() == "keep me"
    assert not Path(str(path) + ".lockfile").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_fifo_at_the_cache_path_does_not_hang(tmp_path: Path) -> None:
    """A FIFO at the cache path is refused at once (a read would block forever), in a
    separate process with a deadline; `logout` removes it."""
    path = tmp_path / "cache.json"
    os.mkfifo(path)
    env = dict(os.environ, BATCHSYNC_TOKEN_CACHE=str(path))
    status = subprocess.run(
        [sys.executable, "-m", "batchsync", "login", "--status"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert status.returncode == 2, status.stderr
    assert b"is not a regular file" in status.stderr
    assert logout(AuthSettings(token_cache_path=str(path))) == []
    assert not path.exists()


def _foreign_file(tmp_path: Path) -> Path:
    """A file owned by another user: chown'ed when we are root, else a system file."""
    if os.getuid() == 0:
        path = tmp_path / "cache.json"
        path.write_text("{}")
        os.chown(path, 65534, 65534)
        return path
    for candidate in ("/etc/passwd", "/etc/hosts"):
        if os.path.isfile(candidate) and os.stat(candidate).st_uid != os.getuid():
            return Path(candidate)
    pytest.skip("no file of another user to point the cache at")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_cache_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """Tokens are never trusted from another user's file: refused with one clear error
    (the file is left as it was)."""
    path = _foreign_file(tmp_path)
    before = os.stat(path)
    with pytest.raises(ConfigError, match="belongs to another user"):
        signed_in_accounts(AuthSettings(token_cache_path=str(path)))
    with pytest.raises(ConfigError, match="belongs to another user"):
        open_token_cache(str(path), encrypted_persistence=None)
    after = os.stat(path)
    assert (after.st_mode, after.st_uid, after.st_size) == (
        before.st_mode,
        before.st_uid,
        before.st_size,
    )
