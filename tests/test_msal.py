"""MSAL's HTTP on the run's loop (LoopSession): our TLS trust, and MSAL's caching traps."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import requests
from _auth_support import (
    CLIENT_ID,
    REFRESH,
    SECRET,
    SYSTEM_BUNDLE,
    Reply,
    Script,
    endpoints_for,
    error_reply,
    reply_json,
    tiny_server,
    token_reply,
)

from batchsync._auth import (
    AuthMode,
    AuthSettings,
    TokenProvider,
)
from batchsync._auth._msal import LoopSession, ResponseInfo
from batchsync._errors import RunStoppingAuthError
from batchsync._net import env_proxy, open_session

# --- TLS trust of MSAL's HTTP -------------------------------------------------------------


def _hello(method: str, path: str, form: dict[str, str]) -> Reply:
    return reply_json(200, {"ok": True}, {"Retry-After": "7"})


async def test_session_trusts_ca_bundle_despite_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE at the system bundle, --ca-bundle still works,
    and the answer's status and Retry-After are remembered for the retry policy."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)
    with tiny_server(_hello, tmp_path) as server:
        async with open_session(ca_bundle=server.ca_path, limit=2, user_agent="t") as http:
            session = LoopSession(http, asyncio.get_running_loop(), timeout_s=5.0)
            response = await asyncio.to_thread(session.get, server.url + "/x")
            info = await asyncio.to_thread(
                lambda: (session.get(server.url + "/x"), session.last_response())[1]
            )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert info == ResponseInfo(status=200, retry_after_s=7.0)


async def test_session_without_ca_bundle_does_not_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --ca-bundle the test CA is not trusted, even when the env names its bundle,
    and a caller's ``verify=False`` changes nothing: verification is never turned off."""
    with tiny_server(_hello, tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        monkeypatch.setenv("CURL_CA_BUNDLE", server.ca_path)
        async with open_session(ca_bundle=None, limit=2, user_agent="t") as http:
            session = LoopSession(http, asyncio.get_running_loop(), timeout_s=5.0)
            for kwargs in ({}, {"verify": False}):
                with pytest.raises(requests.exceptions.SSLError):
                    await asyncio.to_thread(session.get, server.url + "/x", **kwargs)
        assert server.requests.total() == 0


def test_env_proxy_follows_https_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to token and Graph traffic alike, and NO_PROXY exempts hosts."""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "graph.example")
    found = env_proxy("https://login.example/t/oauth2/v2.0/token")
    assert str(found["proxy"]) == "http://proxy.invalid:3128"
    assert found["proxy_headers"]["Proxy-Authorization"].startswith("Basic ")
    assert env_proxy("https://graph.example/v1.0/") == {}


# --- MSAL's http cache would hide retries -----------------------------------------------------


@pytest.mark.parametrize("mode", [AuthMode.REFRESH_TOKEN, AuthMode.APP])
async def test_retries_reach_entra_despite_msal_http_cache(tmp_path: Path, mode: AuthMode) -> None:
    """A 503 without Retry-After and a retryable 400 are retried on the wire, not from
    MSAL's http cache (which would replay them for 5 to 60 s); discovery happens once."""
    base = {"url": ""}
    script = Script(
        lambda: base["url"],
        [
            error_reply(503, 90033, "temporarily_unavailable"),
            error_reply(400, 650051, "invalid_grant"),
            token_reply(),
        ],
    )
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(
            mode=mode, client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH
        )
        async with TokenProvider(
            settings, endpoints_for(server.url), ca_bundle=server.ca_path, retry_base_s=0.001
        ) as provider:
            token = await provider.get("contoso.onmicrosoft.com")
            assert token.value == "at-1"
            assert provider.token_retries == 2
    token_path = "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    discovery = "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    assert server.requests[("POST", token_path)] == 3
    assert server.requests[("GET", discovery)] == 1


async def test_discovery_is_cached_across_forget(tmp_path: Path) -> None:
    """After forget(), a tenant's new MSAL app reuses the cached discovery document."""
    base = {"url": ""}
    script = Script(lambda: base["url"], [token_reply()])
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(
            settings, endpoints_for(server.url), ca_bundle=server.ca_path
        ) as provider:
            await provider.get("t1")
            provider.forget("t1")
            await provider.get("t1")
    assert server.requests[("GET", "/t1/v2.0/.well-known/openid-configuration")] == 1
    assert server.requests[("POST", "/t1/oauth2/v2.0/token")] == 2


async def test_untrusted_authority_stops_the_run(tmp_path: Path) -> None:
    """A TLS verification failure stops the run at once, naming --ca-bundle."""
    script = Script(lambda: "", [token_reply()])
    with tiny_server(script, tmp_path) as server:
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(settings, endpoints_for(server.url)) as provider:
            with pytest.raises(RunStoppingAuthError, match="--ca-bundle"):
                await provider.get("t1")
            with pytest.raises(RunStoppingAuthError):
                await provider.get("t2")
    assert sum(server.requests.values()) == 0  # the handshake failed: no request was read


# --- what a failed token request keeps --------------------------------------------------------


async def test_token_5xx_keeps_entra_code_and_message(tmp_path: Path) -> None:
    """A 503 whose body is Entra's error (AADSTS90033) keeps that code and its sentence, though
    MSAL raises a bare MsalServiceError for any 5xx."""
    from batchsync._errors import AuthError
    from batchsync.simulator import FaultConfig, run_simulator

    async with run_simulator() as sim:
        sim.set_config(
            dataclasses.replace(sim.config, faults=FaultConfig(token_unavailable_first=9))
        )
        settings = AuthSettings(client_id=sim.config.client_id, refresh_token=sim.refresh_token)
        async with TokenProvider(
            settings,
            endpoints_for(sim.url),
            ca_bundle=sim.ca_pem_path,
            retry_attempts=2,
            retry_base_s=0.001,
        ) as provider:
            with pytest.raises(AuthError) as info:
                await provider.get("contoso.onmicrosoft.com")
    assert not isinstance(info.value, RunStoppingAuthError)
    assert info.value.code == "AADSTS90033"
    assert "A transient error has occurred" in info.value.message
