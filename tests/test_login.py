"""Delegated sign-in: device-code login, the cached account, logout; real MSAL on HTTPS."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from _auth_support import (
    configure,
    endpoints_for,
    provider_for,
    signed_in,
)
from _support import posix_only

from batchsync._auth import (
    AuthMode,
    AuthSettings,
    login_device_code,
    logout,
    signed_in_accounts,
)
from batchsync._errors import AuthError, ConfigError, RunStoppingAuthError
from batchsync.simulator import (
    TECHNICIAN_UPN,
    Simulator,
)


def test_signed_in_accounts_and_logout_on_missing_cache(tmp_path: Path) -> None:
    """With no cache file there is no account, and logout is a no-op."""
    settings = AuthSettings(token_cache_path=str(tmp_path / "none.json"))
    assert signed_in_accounts(settings) == []
    assert logout(settings) == []


# --- delegated mode ---------------------------------------------------------------------------


@posix_only
async def test_delegated_end_to_end(sim: Simulator, tmp_path: Path) -> None:
    """Device-code login, then silent tokens for 5 tenants (one refresh each), reused by a
    new provider from the 0600 cache file without signing in again; logout forgets it."""
    cache_path = tmp_path / "cache" / "token_cache.json"
    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=sim.config.client_id, token_cache_path=str(cache_path)
    )
    endpoints = endpoints_for(sim.url)
    shown: list[str] = []
    username = await login_device_code(
        settings, endpoints, ca_bundle=sim.ca_pem_path, echo=shown.append
    )
    assert username == TECHNICIAN_UPN
    assert len(shown) == 1
    assert "enter the code" in shown[0]
    assert stat.S_IMODE(os.stat(cache_path).st_mode) == 0o600
    assert signed_in_accounts(settings) == [TECHNICIAN_UPN]
    assert sim.stats.token_requests[("organizations", "device_code")] == 1

    tenants = [f"customer{i}.onmicrosoft.com" for i in range(5)]
    async with provider_for(sim, settings) as provider:
        assert provider.mode is AuthMode.DELEGATED
        tokens = await asyncio.gather(*(provider.get(t) for t in tenants))
        text = repr(provider)
    assert all(t.value not in text for t in tokens)
    for tenant in tenants:
        assert sim.stats.token_requests[(tenant, "refresh_token")] == 1
    assert stat.S_IMODE(os.stat(cache_path).st_mode) == 0o600

    before = sim.stats.token_requests.total()
    async with provider_for(sim, settings) as again:  # a new process, same cache file
        reused = [await again.get(t) for t in tenants]
        assert [t.value for t in reused] == [t.value for t in tokens]
        assert sim.stats.token_requests.total() == before  # served from the cache
        again.invalidate(reused[0])
        fresh = await again.get(tenants[0])
        assert fresh.value != reused[0].value
    assert sim.stats.token_requests[(tenants[0], "refresh_token")] == 2
    assert sim.stats.token_requests[("organizations", "device_code")] == 1

    assert logout(settings) == [TECHNICIAN_UPN]
    assert not cache_path.exists()
    with pytest.raises(ConfigError, match="batchsync login"):
        await provider_for(sim, settings).open()


async def test_delegated_expired_sign_in_stops_the_run(sim: Simulator, tmp_path: Path) -> None:
    """A cached sign-in whose refresh token Entra refuses stops the run with `batchsync login`."""
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=sim.config.client_id,
        token_cache_path=str(tmp_path / "c.json"),
    )
    await login_device_code(settings, endpoints_for(sim.url), ca_bundle=sim.ca_pem_path, echo=print)
    configure(sim, revoked_refresh_tokens=True)
    async with provider_for(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError, match="batchsync login") as info:
            await provider.get("t1.onmicrosoft.com")
        assert info.value.code == "AADSTS700082"
        with pytest.raises(RunStoppingAuthError):
            await provider.get("t2.onmicrosoft.com")


async def test_login_failures_are_auth_errors(sim: Simulator, tmp_path: Path) -> None:
    """Login to an unknown tenant, or a code nobody approves in time, raises AuthError
    and writes no cache."""
    cache_path = tmp_path / "c.json"
    settings = AuthSettings(client_id=sim.config.client_id, token_cache_path=str(cache_path))
    configure(
        sim, unknown_tenants=frozenset({"nope.onmicrosoft.com"}), auto_approve_device_code=False
    )
    with pytest.raises(AuthError, match="sign-in failed") as info:
        await login_device_code(
            settings,
            endpoints_for(sim.url),
            tenant="nope.onmicrosoft.com",
            ca_bundle=sim.ca_pem_path,
            echo=print,
        )
    assert info.value.code == "AADSTS90002"
    with pytest.raises(AuthError, match="not completed in time"):
        await login_device_code(
            settings,
            endpoints_for(sim.url),
            ca_bundle=sim.ca_pem_path,
            echo=print,
            timeout_s=0,
        )
    assert not cache_path.exists()


def _cached_realms(path: str) -> set[str]:
    state = json.loads(Path(path).read_text())
    return {entry["realm"] for entry in state.get("AccessToken", {}).values()}


@posix_only
async def test_delegated_cache_is_saved_once_at_the_end(sim: Simulator, tmp_path: Path) -> None:
    """Tokens for many tenants leave the cache file untouched until close, then one save
    stores all of them."""
    settings = await signed_in(sim, tmp_path)
    path = str(settings.token_cache_path)
    before = os.stat(path)
    tenants = [f"c{i}.onmicrosoft.com" for i in range(6)]
    async with provider_for(sim, settings) as provider:
        await asyncio.gather(*(provider.get(t) for t in tenants))
        during = os.stat(path)
        assert (during.st_ino, during.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert not set(tenants) & _cached_realms(path)
    assert os.stat(path).st_ino != before.st_ino
    assert set(tenants) <= _cached_realms(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_delegated_cache_is_saved_on_interruption(sim: Simulator, tmp_path: Path) -> None:
    """A run cancelled mid-way (Ctrl-C) still stores the tokens it had refreshed."""
    settings = await signed_in(sim, tmp_path)
    got = asyncio.Event()

    async def run() -> None:
        async with provider_for(sim, settings) as provider:
            await provider.get("c1.onmicrosoft.com")
            got.set()
            await asyncio.Event().wait()  # an endless run

    task = asyncio.ensure_future(run())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "c1.onmicrosoft.com" in _cached_realms(str(settings.token_cache_path))
