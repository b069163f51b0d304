"""The persistent token cache: encrypted where possible, private, locked, merged."""

from __future__ import annotations

import json
import logging
import os
import stat
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
