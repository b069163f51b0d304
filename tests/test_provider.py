"""TokenProvider: one token per tenant, single-flight, retries, run stops; real MSAL on HTTPS."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from _auth_support import (
    CLIENT_ID,
    REFRESH,
    SECRET,
    Reply,
    Script,
    configure,
    endpoints_for,
    oidc,
    provider_for,
    reply_json,
    rsa_cert_pem,
    signed_in,
    tiny_server,
    token_reply,
)

from batchsync._auth import (
    AuthMode,
    AuthSettings,
    TokenProvider,
)
from batchsync._auth._msal import Attempt
from batchsync._errors import AuthError, RunStoppingAuthError
from batchsync.simulator import (
    FaultConfig,
    Simulator,
)


async def test_expired_token_is_refreshed_on_the_clock(tmp_path: Path) -> None:
    """A token is reused until refresh_margin_s before expiry, then a new one is fetched."""
    base = {"url": ""}
    script = Script(lambda: base["url"], [token_reply()])
    now = [1000.0]
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(
            settings,
            endpoints_for(server.url),
            ca_bundle=server.ca_path,
            refresh_margin_s=300,
            clock=lambda: now[0],
        ) as provider:
            first = await provider.get("t1")
            assert first.expires_at == 1000.0 + 3600
            now[0] += 3600 - 301
            assert await provider.get("t1") is first
            now[0] += 2
            second = await provider.get("t1")
            assert second is not first
            assert provider.tokens_acquired == 2
    assert server.requests[("POST", "/t1/oauth2/v2.0/token")] == 2


async def test_timeout_is_retried_then_fails_tenant_only(tmp_path: Path) -> None:
    """A token call that exceeds timeout_s is retried, then fails (not remembered)."""
    release = threading.Event()

    def slow(method: str, path: str, form: dict[str, str]) -> Reply:
        if method == "GET":
            return reply_json(200, oidc(base["url"], path.split("/")[1]))
        release.wait(5)
        return token_reply()

    base = {"url": ""}
    with tiny_server(slow, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        provider = TokenProvider(
            settings,
            endpoints_for(server.url),
            ca_bundle=server.ca_path,
            timeout_s=0.2,
            retry_attempts=2,
            retry_base_s=0.001,
        )
        try:
            with pytest.raises(AuthError, match="after 2 attempts") as info:
                await provider.get("t1")
            assert not isinstance(info.value, RunStoppingAuthError)
            assert provider.token_requests_failed == 1
        finally:
            release.set()
            await provider.aclose()


async def test_refresh_token_rotation_uses_newest(tmp_path: Path) -> None:
    """Each redemption uses the newest refresh token Entra returned."""
    seen: list[str] = []
    base = {"url": ""}

    def rotating(method: str, path: str, form: dict[str, str]) -> Reply:
        if method == "GET":
            return reply_json(200, oidc(base["url"], path.split("/")[1]))
        seen.append(form.get("refresh_token", ""))
        body = {"token_type": "Bearer", "expires_in": 3600, "access_token": "at"}
        return reply_json(200, {**body, "refresh_token": f"rt-rotated-{len(seen)}"})

    with tiny_server(rotating, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, refresh_token=REFRESH)
        async with TokenProvider(
            settings, endpoints_for(server.url), ca_bundle=server.ca_path
        ) as provider:
            for tenant in ("t1", "t2", "t3"):
                await provider.get(tenant)
    assert seen == [REFRESH, "rt-rotated-1", "rt-rotated-2"]


async def test_app_secret_three_tenants(sim: Simulator) -> None:
    """Client credentials give one token per tenant: one token and one discovery request."""
    tenants = ["contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com", "tailspin.onmicrosoft.com"]
    async with provider_for(sim) as provider:
        tokens = [await provider.get(t) for t in tenants]
    assert [t.tenant for t in tokens] == tenants
    assert len({t.value for t in tokens}) == 3
    for tenant in tenants:
        assert sim.stats.token_requests[(tenant, "client_credentials")] == 1
        assert sim.stats.discovery_requests[tenant] == 1
    assert provider.tokens_acquired == 3
    assert provider.token_requests_failed == 0


async def test_concurrent_gets_share_one_request(sim: Simulator) -> None:
    """20 concurrent get() for one tenant make exactly one token request, then reuse it."""
    configure(sim, token_latency_s=0.05)
    async with provider_for(sim) as provider:
        tokens = await asyncio.gather(*(provider.get("contoso.onmicrosoft.com") for _ in range(20)))
        assert len({id(t) for t in tokens}) == 1
        assert await provider.get("contoso.onmicrosoft.com") is tokens[0]
    assert sim.stats.token_requests[("contoso.onmicrosoft.com", "client_credentials")] == 1


async def test_cancelled_leader_hands_over(sim: Simulator) -> None:
    """If the caller leading an acquisition is cancelled, a waiting caller still gets a token."""
    configure(sim, token_latency_s=0.2)
    async with provider_for(sim) as provider:
        leader = asyncio.ensure_future(provider.get("t1.onmicrosoft.com"))
        await asyncio.sleep(0.05)
        follower = asyncio.ensure_future(provider.get("t1.onmicrosoft.com"))
        await asyncio.sleep(0.01)
        leader.cancel()
        token = await follower
        assert token.tenant == "t1.onmicrosoft.com"
        assert leader.cancelled()


async def test_invalidate_forces_a_fresh_token(sim: Simulator) -> None:
    """invalidate() makes the next get() request a new token; a stale invalidate is ignored."""
    async with provider_for(sim) as provider:
        first = await provider.get("t1.onmicrosoft.com")
        provider.invalidate(first)
        second = await provider.get("t1.onmicrosoft.com")
        assert second.value != first.value
        provider.invalidate(first)  # another row reporting the same old 401
        assert await provider.get("t1.onmicrosoft.com") is second
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 2


async def test_refresh_token_two_tenants(sim: Simulator) -> None:
    """One refresh token is redeemed for two tenants, one request each."""
    settings = AuthSettings(client_id=sim.config.client_id, refresh_token=sim.refresh_token)
    async with provider_for(sim, settings) as provider:
        assert provider.mode is AuthMode.REFRESH_TOKEN
        a = await provider.get("contoso.onmicrosoft.com")
        b = await provider.get("fabrikam.onmicrosoft.com")
        assert a.value != b.value
        assert sim.refresh_token not in repr(provider)
    assert sim.stats.token_requests[("contoso.onmicrosoft.com", "refresh_token")] == 1
    assert sim.stats.token_requests[("fabrikam.onmicrosoft.com", "refresh_token")] == 1


async def test_tenant_error_fails_only_that_tenant(sim: Simulator) -> None:
    """AADSTS700016 fails that tenant once (no retry, remembered); others go on."""
    configure(sim, tenant_errors={"bad.onmicrosoft.com": 700016})
    async with provider_for(sim) as provider:
        with pytest.raises(AuthError) as info:
            await provider.get("bad.onmicrosoft.com")
        err = info.value
        assert not isinstance(err, RunStoppingAuthError)
        assert err.code == "AADSTS700016"
        assert err.tenant == "bad.onmicrosoft.com"
        assert err.message.startswith("tenant 'bad.onmicrosoft.com': token failed (AADSTS700016)")
        assert "an admin of the tenant must consent" in err.message
        assert "Trace ID" not in err.message
        with pytest.raises(AuthError) as again:
            await provider.get("bad.onmicrosoft.com")
        assert again.value is err
        assert (await provider.get("good.onmicrosoft.com")).tenant == "good.onmicrosoft.com"
        assert provider.token_requests_failed == 1
    assert sim.stats.token_requests[("bad.onmicrosoft.com", "client_credentials")] == 1


async def test_wrong_secret_stops_the_run(sim: Simulator) -> None:
    """A wrong client secret raises RunStoppingAuthError; any later get() raises it at once."""
    settings = AuthSettings(client_id=sim.config.client_id, client_secret="wrong-secret-value")
    async with provider_for(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError) as info:
            await provider.get("t1.onmicrosoft.com")
        assert info.value.code == "AADSTS7000215"
        assert "--client-secret" in info.value.message
        assert "wrong-secret-value" not in info.value.message
        with pytest.raises(RunStoppingAuthError) as later:
            await provider.get("t2.onmicrosoft.com")
        assert later.value is info.value
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 1
    assert ("t2.onmicrosoft.com", "client_credentials") not in sim.stats.token_requests
    assert "t2.onmicrosoft.com" not in sim.stats.discovery_requests


async def test_unknown_tenant_is_a_tenant_error(sim: Simulator) -> None:
    """An unknown tenant (discovery fails in MSAL's constructor) is AuthError AADSTS90002."""
    configure(sim, unknown_tenants=frozenset({"nope.onmicrosoft.com"}))
    async with provider_for(sim) as provider:
        with pytest.raises(AuthError) as info:
            await provider.get("nope.onmicrosoft.com")
        assert not isinstance(info.value, RunStoppingAuthError)
        assert info.value.code == "AADSTS90002"
        assert "not found" in info.value.message
        with pytest.raises(AuthError):
            await provider.get("nope.onmicrosoft.com")
        assert (await provider.get("t1.onmicrosoft.com")).tenant == "t1.onmicrosoft.com"
    assert sim.stats.discovery_requests["nope.onmicrosoft.com"] == 1


async def test_transient_503_is_retried(sim: Simulator) -> None:
    """Two 503 temporarily_unavailable answers are retried, then the token comes."""
    configure(sim, faults=FaultConfig(token_unavailable_first=2))
    async with provider_for(sim) as provider:
        token = await provider.get("t1.onmicrosoft.com")
        assert token.tenant == "t1.onmicrosoft.com"
        assert provider.token_retries == 2
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 3


async def test_transient_errors_give_up_after_attempts(sim: Simulator) -> None:
    """Endless 503s fail the tenant after retry_attempts, and are not remembered."""
    configure(sim, faults=FaultConfig(token_unavailable_first=100))
    async with provider_for(sim, retry_attempts=3) as provider:
        with pytest.raises(AuthError, match="after 3 attempts") as info:
            await provider.get("t1.onmicrosoft.com")
        assert not isinstance(info.value, RunStoppingAuthError)
        configure(sim, faults=FaultConfig())
        assert (await provider.get("t1.onmicrosoft.com")).tenant == "t1.onmicrosoft.com"


async def test_certificate_auth(sim: Simulator, tmp_path: Path) -> None:
    """A PEM with key and certificate authenticates (signed client assertion)."""
    path, cert_pem = rsa_cert_pem(tmp_path)
    configure(sim, certificate_pem=cert_pem)
    settings = AuthSettings(client_id=sim.config.client_id, certificate_path=str(path))
    async with provider_for(sim, settings) as provider:
        assert (await provider.get("t1.onmicrosoft.com")).tenant == "t1.onmicrosoft.com"
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 1


async def test_unregistered_certificate_stops_the_run(sim: Simulator, tmp_path: Path) -> None:
    """A certificate the app does not know is refused for every tenant (AADSTS700027)."""
    path, _ = rsa_cert_pem(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_pem = rsa_cert_pem(tmp_path / "other")
    configure(sim, certificate_pem=other_pem)
    settings = AuthSettings(client_id=sim.config.client_id, certificate_path=str(path))
    async with provider_for(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError) as info:
            await provider.get("t1.onmicrosoft.com")
    assert info.value.code == "AADSTS700027"


async def test_revoked_refresh_token_stops_the_run(sim: Simulator) -> None:
    """An expired refresh token (AADSTS700082) stops the run and says to sign in again."""
    configure(sim, revoked_refresh_tokens=True)
    settings = AuthSettings(client_id=sim.config.client_id, refresh_token=sim.refresh_token)
    async with provider_for(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError, match="batchsync login") as info:
            await provider.get("t1.onmicrosoft.com")
    assert info.value.code == "AADSTS700082"


async def test_unknown_refresh_token_stops_the_run_after_one_refusal(sim: Simulator) -> None:
    """A refresh token Entra does not know (invalid_grant, AADSTS9002313) is refused once,
    for the first tenant; every tenant then fails with that refusal, sending nothing more."""
    settings = AuthSettings(client_id=sim.config.client_id, refresh_token="0.AXkA-not-known")
    tenants = [f"c{i}.onmicrosoft.com" for i in range(20)]
    async with provider_for(sim, settings) as provider:
        results = await asyncio.gather(*(provider.get(t) for t in tenants), return_exceptions=True)
    assert all(isinstance(r, RunStoppingAuthError) for r in results), results
    assert {r.code for r in results if isinstance(r, AuthError)} == {"AADSTS9002313"}
    first = results[0]
    assert isinstance(first, AuthError)
    assert "BATCHSYNC_REFRESH_TOKEN" in first.message
    assert "batchsync login" in first.message
    assert "0.AXkA-not-known" not in first.message
    assert sim.stats.token_requests.total() == 1


async def test_token_concurrency_bounds_requests(sim: Simulator) -> None:
    """At most token_concurrency token requests run at once."""
    configure(sim, token_latency_s=0.05)
    async with provider_for(sim, token_concurrency=2) as provider:
        await asyncio.gather(*(provider.get(f"t{i}.onmicrosoft.com") for i in range(8)))
    assert 1 <= sim.stats.max_concurrent_tokens <= 2


async def test_repr_shows_state_not_secrets(sim: Simulator) -> None:
    """The provider's repr shows live counts and never a secret or a token."""
    provider = provider_for(sim)
    async with provider:
        token = await provider.get("t1.onmicrosoft.com")
        text = repr(provider)
    assert "tenants=1" in text
    assert "mode=app" in text
    assert sim.config.client_secret not in text
    assert token.value not in text


async def test_run_stop_skips_queued_token_requests(sim: Simulator, tmp_path: Path) -> None:
    """Once the sign-in is known revoked, queued tenants are not sent to Entra at all."""
    settings = await signed_in(sim, tmp_path)
    configure(sim, revoked_refresh_tokens=True, token_latency_s=0.02)
    tenants = [f"c{i}.onmicrosoft.com" for i in range(30)]
    async with provider_for(sim, settings, token_concurrency=2) as provider:
        results = await asyncio.gather(*(provider.get(t) for t in tenants), return_exceptions=True)
    assert all(isinstance(r, RunStoppingAuthError) for r in results)
    assert {r.code for r in results if isinstance(r, RunStoppingAuthError)} == {"AADSTS700082"}
    sent = sum(n for (_, grant), n in sim.stats.token_requests.items() if grant == "refresh_token")
    assert 1 <= sent <= 4  # at most two rounds of token_concurrency, not one per tenant


@pytest.mark.parametrize("offset", [200, 215, 230, 250])
async def test_secret_straddling_the_cut_is_redacted_first(tmp_path: Path, offset: int) -> None:
    """An Entra description that echoes the client secret across the 240-character cut
    leaves no piece of it in the message: redaction runs before the cut."""
    description = f"AADSTS7000215: {'x' * offset}{SECRET} and more words."
    body = {"error": "invalid_client", "error_codes": [7000215], "error_description": description}
    base = {"url": ""}
    script = Script(lambda: base["url"], [reply_json(401, body)])
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(mode=AuthMode.APP, client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(
            settings, endpoints_for(server.url), ca_bundle=server.ca_path, retry_base_s=0.001
        ) as provider:
            with pytest.raises(RunStoppingAuthError) as info:
                await provider.get("t1")
    message = info.value.message
    assert "AADSTS7000215" in message
    assert not any(SECRET[:n] in message for n in range(6, len(SECRET) + 1)), message


def test_attempt_repr_never_shows_the_msal_result() -> None:
    """The internal Attempt's repr (what a log line or a traceback would print) names the
    keys of MSAL's answer and the exception's type, never a token."""
    result = {"access_token": "at-value-that-must-not-leak", "refresh_token": REFRESH}
    attempt = Attempt(result=result, exc=ValueError(f"body with {REFRESH}"))
    for text in (repr(attempt), str(attempt), f"{attempt!r}", repr([attempt])):
        assert "at-value-that-must-not-leak" not in text
        assert REFRESH not in text
        assert "access_token" in text
        assert "ValueError" in text
