"""TokenProvider and its MSAL plumbing: real MSAL, real HTTPS on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http.server
import json
import logging
import os
import ssl
import stat
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from _support import client_certificate_pem
from msal_extensions.persistence import PersistenceNotFound

from batchsync._auth import (
    AccessToken,
    AuthMode,
    AuthSettings,
    TokenProvider,
    login_device_code,
    logout,
    signed_in_accounts,
)
from batchsync._clouds import Endpoints
from batchsync._errors import AuthError, ConfigError, RunStoppingAuthError
from batchsync._msal_http import TrustedSession
from batchsync._token_cache import (
    TokenCacheStore,
    merge_cache_states,
    open_token_cache,
    without_accounts,
)
from batchsync.simulator import (
    TECHNICIAN_UPN,
    FaultConfig,
    Simulator,
    SimulatorConfig,
    run_simulator,
)

SYSTEM_BUNDLE = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cret-value-that-must-not-leak"
REFRESH = "rt-value-that-must-not-leak"


# --- a tiny HTTPS server, for TLS trust and MSAL's caching traps ----------------------------

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, str]], Reply]


@dataclasses.dataclass
class TinyServer:
    """A threaded HTTPS server on 127.0.0.1 whose answers come from ``handler``."""

    url: str
    ca_path: str
    requests: collections.Counter[tuple[str, str]]  # (method, path) -> count


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tiny"
    reply: Handler
    seen: collections.Counter[tuple[str, str]]

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = dict(urllib.parse.parse_qsl(body))
        path = urllib.parse.urlsplit(self.path).path
        self.seen[(method, path)] += 1
        status, headers, payload = type(self).reply(method, path, form)
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def tiny_server(handler: Handler, tmp_path: Path) -> Iterator[TinyServer]:
    ca = trustme.CA()
    ca_path = tmp_path / "tiny-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    handler_cls = type("H", (_Handler,), {"reply": staticmethod(handler), "seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield TinyServer(f"https://127.0.0.1:{httpd.server_address[1]}", str(ca_path), seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, json.dumps(body).encode()


def _oidc(base: str, tenant: str) -> dict[str, Any]:
    return {
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
        "issuer": f"{base}/{tenant}/v2.0",
    }


def _endpoints(url: str) -> Endpoints:
    return Endpoints(graph_url=url, authority_host=url)


def _rsa_cert_pem(tmp_path: Path, *, password: str | None = None) -> tuple[Path, bytes]:
    """A self-signed RSA client certificate: (PEM file with key + cert, the cert's PEM)."""
    path = tmp_path / "client.pem"
    return path, client_certificate_pem(path, password=password)


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "mode"),
    [
        (AuthSettings(), AuthMode.DELEGATED),
        (AuthSettings(client_secret="x"), AuthMode.APP),
        (AuthSettings(certificate_path="c.pem"), AuthMode.APP),
        (AuthSettings(client_secret="x", refresh_token="r"), AuthMode.REFRESH_TOKEN),
        (AuthSettings(mode=AuthMode.DELEGATED, client_secret="x"), AuthMode.DELEGATED),
        (AuthSettings(mode=AuthMode.APP), AuthMode.APP),
    ],
)
def test_resolved_mode(settings: AuthSettings, mode: AuthMode) -> None:
    """auto picks refresh-token, then app (secret or certificate), then delegated."""
    assert settings.resolved_mode() is mode


def test_settings_repr_hides_secrets() -> None:
    """AuthSettings' repr shows no secret, password or refresh token."""
    text = repr(
        AuthSettings(client_secret=SECRET, refresh_token=REFRESH, certificate_password="pw-123")
    )
    assert SECRET not in text
    assert REFRESH not in text
    assert "pw-123" not in text


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (AuthSettings(mode=AuthMode.APP, client_secret="x"), "--client-id"),
        (AuthSettings(mode=AuthMode.APP, client_id=CLIENT_ID), "--client-secret"),
        (
            AuthSettings(mode=AuthMode.REFRESH_TOKEN, client_id=CLIENT_ID),
            "BATCHSYNC_REFRESH_TOKEN",
        ),
        (
            AuthSettings(client_id=CLIENT_ID, certificate_path="/nonexistent/cert.pem"),
            "cannot read the certificate file",
        ),
    ],
)
async def test_open_rejects_bad_settings(settings: AuthSettings, needle: str) -> None:
    """open() raises ConfigError (exit 2) with a message naming the fix."""
    provider = TokenProvider(settings, _endpoints("https://127.0.0.1:9"))
    with pytest.raises(ConfigError, match=needle) as info:
        await provider.open()
    assert info.value.exit_code == 2


async def test_open_delegated_without_account_says_login(tmp_path: Path) -> None:
    """Delegated mode with an empty token cache tells the user to run `batchsync login`."""
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=CLIENT_ID,
        token_cache_path=str(tmp_path / "cache.json"),
    )
    with pytest.raises(ConfigError, match="batchsync login"):
        await TokenProvider(settings, _endpoints("https://127.0.0.1:9")).open()


async def test_open_rejects_cert_without_key(tmp_path: Path) -> None:
    """A certificate file without a private key is a configuration error."""
    _, cert_pem = _rsa_cert_pem(tmp_path)
    only_cert = tmp_path / "only-cert.pem"
    only_cert.write_bytes(cert_pem)
    settings = AuthSettings(client_id=CLIENT_ID, certificate_path=str(only_cert))
    with pytest.raises(ConfigError, match="private key and the certificate"):
        await TokenProvider(settings, _endpoints("https://127.0.0.1:9")).open()


async def test_open_rejects_wrong_cert_password(tmp_path: Path) -> None:
    """An encrypted key with a missing or wrong password is a configuration error."""
    path, _ = _rsa_cert_pem(tmp_path, password="right-pw")
    for password in (None, "wrong-pw"):
        settings = AuthSettings(
            client_id=CLIENT_ID, certificate_path=str(path), certificate_password=password
        )
        with pytest.raises(ConfigError, match="password") as info:
            await TokenProvider(settings, _endpoints("https://127.0.0.1:9")).open()
        assert "right-pw" not in str(info.value)


async def test_open_accepts_encrypted_cert(tmp_path: Path) -> None:
    """An encrypted key with the right password opens, and the repr shows no secret."""
    path, _ = _rsa_cert_pem(tmp_path, password="right-pw")
    settings = AuthSettings(
        client_id=CLIENT_ID, certificate_path=str(path), certificate_password="right-pw"
    )
    async with TokenProvider(settings, _endpoints("https://127.0.0.1:9")) as provider:
        assert provider.mode is AuthMode.APP
        assert "right-pw" not in repr(provider)
        assert "PRIVATE KEY" not in repr(provider)


def test_signed_in_accounts_and_logout_on_missing_cache(tmp_path: Path) -> None:
    """With no cache file there is no account, and logout is a no-op."""
    settings = AuthSettings(token_cache_path=str(tmp_path / "none.json"))
    assert signed_in_accounts(settings) == []
    assert logout(settings) == []


# --- TLS trust of MSAL's session ------------------------------------------------------------


def _hello(method: str, path: str, form: dict[str, str]) -> Reply:
    return _json(200, {"ok": True}, {"Retry-After": "7"})


def test_session_trusts_ca_bundle_despite_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE at the system bundle, --ca-bundle still works."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)
    with tiny_server(_hello, tmp_path) as server, TrustedSession(ca_bundle=server.ca_path) as s:
        response = s.get(server.url + "/x")
        assert response.status_code == 200
        assert s.last_response().status == 200
        assert s.last_response().retry_after_s == 7.0


def test_session_without_ca_bundle_does_not_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --ca-bundle the test CA is not trusted, even when the env names its bundle."""
    with tiny_server(_hello, tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
        monkeypatch.setenv("CURL_CA_BUNDLE", server.ca_path)
        with TrustedSession() as s, pytest.raises(requests.exceptions.SSLError):
            s.get(server.url + "/x")
        with TrustedSession() as s, pytest.raises(requests.exceptions.SSLError):
            s.get(server.url + "/x", verify=False)  # verification is never turned off


def test_session_keeps_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY still applies (trust_env), while verify stays pinned."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    with TrustedSession() as s:
        merged = s.merge_environment_settings("https://login.example", {}, None, None, None)
    assert merged["proxies"].get("https") == "http://proxy.invalid:3128"
    assert merged["verify"] is True


def test_proxy_pools_use_the_pinned_trust() -> None:
    """Connections tunnelled through a proxy verify with the same pinned SSLContext."""
    with TrustedSession() as s:
        manager = s.get_adapter("https://login.example").proxy_manager_for(  # type: ignore[attr-defined]
            "http://proxy.invalid:3128"
        )
        assert manager.connection_pool_kw["ssl_context"] is s.ssl_context


# --- MSAL's http cache would hide retries -----------------------------------------------------


class _Script:
    """Token endpoint answers in order; the last one repeats."""

    def __init__(self, base: Callable[[], str], answers: list[Reply]) -> None:
        self._base = base
        self._answers = answers
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, form: dict[str, str]) -> Reply:
        tenant = path.split("/")[1]
        if method == "GET" and path.endswith("/openid-configuration"):
            return _json(200, _oidc(self._base(), tenant))
        with self._lock:
            answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return answer


def _token_reply() -> Reply:
    return _json(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "at-1"})


def _error_reply(
    status: int, code: int, error: str, headers: dict[str, str] | None = None
) -> Reply:
    return _json(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: Try later.\r\nTrace ID: x",
            "error_codes": [code],
        },
        headers,
    )


@pytest.mark.parametrize("mode", [AuthMode.REFRESH_TOKEN, AuthMode.APP])
async def test_retries_reach_entra_despite_msal_http_cache(tmp_path: Path, mode: AuthMode) -> None:
    """A 503 without Retry-After and a retryable 400 are retried on the wire, not from
    MSAL's http cache (which would replay them for 5 to 60 s); discovery happens once."""
    base = {"url": ""}
    script = _Script(
        lambda: base["url"],
        [
            _error_reply(503, 90033, "temporarily_unavailable"),
            _error_reply(400, 650051, "invalid_grant"),
            _token_reply(),
        ],
    )
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(
            mode=mode, client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH
        )
        async with TokenProvider(
            settings, _endpoints(server.url), ca_bundle=server.ca_path, retry_base_s=0.001
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
    script = _Script(lambda: base["url"], [_token_reply()])
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(
            settings, _endpoints(server.url), ca_bundle=server.ca_path
        ) as provider:
            await provider.get("t1")
            provider.forget("t1")
            await provider.get("t1")
    assert server.requests[("GET", "/t1/v2.0/.well-known/openid-configuration")] == 1
    assert server.requests[("POST", "/t1/oauth2/v2.0/token")] == 2


async def test_untrusted_authority_stops_the_run(tmp_path: Path) -> None:
    """A TLS verification failure stops the run at once, naming --ca-bundle."""
    script = _Script(lambda: "", [_token_reply()])
    with tiny_server(script, tmp_path) as server:
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(settings, _endpoints(server.url)) as provider:
            with pytest.raises(RunStoppingAuthError, match="--ca-bundle"):
                await provider.get("t1")
            with pytest.raises(RunStoppingAuthError):
                await provider.get("t2")
    assert sum(server.requests.values()) == 0  # the handshake failed: no request was read


async def test_expired_token_is_refreshed_on_the_clock(tmp_path: Path) -> None:
    """A token is reused until refresh_margin_s before expiry, then a new one is fetched."""
    base = {"url": ""}
    script = _Script(lambda: base["url"], [_token_reply()])
    now = [1000.0]
    with tiny_server(script, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        async with TokenProvider(
            settings,
            _endpoints(server.url),
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
            return _json(200, _oidc(base["url"], path.split("/")[1]))
        release.wait(5)
        return _token_reply()

    base = {"url": ""}
    with tiny_server(slow, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, client_secret=SECRET)
        provider = TokenProvider(
            settings,
            _endpoints(server.url),
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


def test_access_token_repr_hides_value() -> None:
    """An AccessToken's repr never shows the token."""
    assert "at-secret" not in repr(AccessToken(value="at-secret", expires_at=1.0, tenant="t"))


async def test_refresh_token_rotation_uses_newest(tmp_path: Path) -> None:
    """Each redemption uses the newest refresh token Entra returned."""
    seen: list[str] = []
    base = {"url": ""}

    def rotating(method: str, path: str, form: dict[str, str]) -> Reply:
        if method == "GET":
            return _json(200, _oidc(base["url"], path.split("/")[1]))
        seen.append(form.get("refresh_token", ""))
        body = {"token_type": "Bearer", "expires_in": 3600, "access_token": "at"}
        return _json(200, {**body, "refresh_token": f"rt-rotated-{len(seen)}"})

    with tiny_server(rotating, tmp_path) as server:
        base["url"] = server.url
        settings = AuthSettings(client_id=CLIENT_ID, refresh_token=REFRESH)
        async with TokenProvider(
            settings, _endpoints(server.url), ca_bundle=server.ca_path
        ) as provider:
            for tenant in ("t1", "t2", "t3"):
                await provider.get(tenant)
    assert seen == [REFRESH, "rt-rotated-1", "rt-rotated-2"]


# --- against the simulator (real MSAL over HTTPS) ------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(SimulatorConfig()) as simulator:
        yield simulator


def _provider(sim: Simulator, settings: AuthSettings | None = None, **kwargs: Any) -> TokenProvider:
    settings = settings or AuthSettings(
        mode=AuthMode.APP, client_id=sim.config.client_id, client_secret=sim.config.client_secret
    )
    kwargs.setdefault("retry_base_s", 0.001)
    return TokenProvider(settings, _endpoints(sim.url), ca_bundle=sim.ca_pem_path, **kwargs)


def _configure(sim: Simulator, **changes: Any) -> None:
    sim.set_config(dataclasses.replace(sim.config, **changes))


async def test_app_secret_three_tenants(sim: Simulator) -> None:
    """Client credentials give one token per tenant: one token and one discovery request."""
    tenants = ["contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com", "tailspin.onmicrosoft.com"]
    async with _provider(sim) as provider:
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
    _configure(sim, token_latency_s=0.05)
    async with _provider(sim) as provider:
        tokens = await asyncio.gather(*(provider.get("contoso.onmicrosoft.com") for _ in range(20)))
        assert len({id(t) for t in tokens}) == 1
        assert await provider.get("contoso.onmicrosoft.com") is tokens[0]
    assert sim.stats.token_requests[("contoso.onmicrosoft.com", "client_credentials")] == 1


async def test_cancelled_leader_hands_over(sim: Simulator) -> None:
    """If the caller leading an acquisition is cancelled, a waiting caller still gets a token."""
    _configure(sim, token_latency_s=0.2)
    async with _provider(sim) as provider:
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
    async with _provider(sim) as provider:
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
    async with _provider(sim, settings) as provider:
        assert provider.mode is AuthMode.REFRESH_TOKEN
        a = await provider.get("contoso.onmicrosoft.com")
        b = await provider.get("fabrikam.onmicrosoft.com")
        assert a.value != b.value
        assert sim.refresh_token not in repr(provider)
    assert sim.stats.token_requests[("contoso.onmicrosoft.com", "refresh_token")] == 1
    assert sim.stats.token_requests[("fabrikam.onmicrosoft.com", "refresh_token")] == 1


async def test_tenant_error_fails_only_that_tenant(sim: Simulator) -> None:
    """AADSTS700016 fails that tenant once (no retry, remembered); others go on."""
    _configure(sim, tenant_errors={"bad.onmicrosoft.com": 700016})
    async with _provider(sim) as provider:
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
    async with _provider(sim, settings) as provider:
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
    _configure(sim, unknown_tenants=frozenset({"nope.onmicrosoft.com"}))
    async with _provider(sim) as provider:
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
    _configure(sim, faults=FaultConfig(token_unavailable_first=2))
    async with _provider(sim) as provider:
        token = await provider.get("t1.onmicrosoft.com")
        assert token.tenant == "t1.onmicrosoft.com"
        assert provider.token_retries == 2
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 3


async def test_transient_errors_give_up_after_attempts(sim: Simulator) -> None:
    """Endless 503s fail the tenant after retry_attempts, and are not remembered."""
    _configure(sim, faults=FaultConfig(token_unavailable_first=100))
    async with _provider(sim, retry_attempts=3) as provider:
        with pytest.raises(AuthError, match="after 3 attempts") as info:
            await provider.get("t1.onmicrosoft.com")
        assert not isinstance(info.value, RunStoppingAuthError)
        _configure(sim, faults=FaultConfig())
        assert (await provider.get("t1.onmicrosoft.com")).tenant == "t1.onmicrosoft.com"


async def test_certificate_auth(sim: Simulator, tmp_path: Path) -> None:
    """A PEM with key and certificate authenticates (signed client assertion)."""
    path, cert_pem = _rsa_cert_pem(tmp_path)
    _configure(sim, certificate_pem=cert_pem)
    settings = AuthSettings(client_id=sim.config.client_id, certificate_path=str(path))
    async with _provider(sim, settings) as provider:
        assert (await provider.get("t1.onmicrosoft.com")).tenant == "t1.onmicrosoft.com"
    assert sim.stats.token_requests[("t1.onmicrosoft.com", "client_credentials")] == 1


async def test_unregistered_certificate_stops_the_run(sim: Simulator, tmp_path: Path) -> None:
    """A certificate the app does not know is refused for every tenant (AADSTS700027)."""
    path, _ = _rsa_cert_pem(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_pem = _rsa_cert_pem(tmp_path / "other")
    _configure(sim, certificate_pem=other_pem)
    settings = AuthSettings(client_id=sim.config.client_id, certificate_path=str(path))
    async with _provider(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError) as info:
            await provider.get("t1.onmicrosoft.com")
    assert info.value.code == "AADSTS700027"


async def test_revoked_refresh_token_stops_the_run(sim: Simulator) -> None:
    """An expired refresh token (AADSTS700082) stops the run and says to sign in again."""
    _configure(sim, revoked_refresh_tokens=True)
    settings = AuthSettings(client_id=sim.config.client_id, refresh_token=sim.refresh_token)
    async with _provider(sim, settings) as provider:
        with pytest.raises(RunStoppingAuthError, match="batchsync login") as info:
            await provider.get("t1.onmicrosoft.com")
    assert info.value.code == "AADSTS700082"


async def test_token_concurrency_bounds_requests(sim: Simulator) -> None:
    """At most token_concurrency token requests run at once."""
    _configure(sim, token_latency_s=0.05)
    async with _provider(sim, token_concurrency=2) as provider:
        await asyncio.gather(*(provider.get(f"t{i}.onmicrosoft.com") for i in range(8)))
    assert 1 <= sim.stats.max_concurrent_tokens <= 2


async def test_repr_shows_state_not_secrets(sim: Simulator) -> None:
    """The provider's repr shows live counts and never a secret or a token."""
    provider = _provider(sim)
    async with provider:
        token = await provider.get("t1.onmicrosoft.com")
        text = repr(provider)
    assert "tenants=1" in text
    assert "mode=app" in text
    assert sim.config.client_secret not in text
    assert token.value not in text


# --- delegated mode ---------------------------------------------------------------------------


async def test_delegated_end_to_end(sim: Simulator, tmp_path: Path) -> None:
    """Device-code login, then silent tokens for 5 tenants (one refresh each), reused by a
    new provider from the 0600 cache file without signing in again; logout forgets it."""
    cache_path = tmp_path / "cache" / "token_cache.json"
    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=sim.config.client_id, token_cache_path=str(cache_path)
    )
    endpoints = _endpoints(sim.url)
    shown: list[str] = []
    username = await asyncio.to_thread(
        login_device_code, settings, endpoints, ca_bundle=sim.ca_pem_path, echo=shown.append
    )
    assert username == TECHNICIAN_UPN
    assert len(shown) == 1
    assert "enter the code" in shown[0]
    assert stat.S_IMODE(os.stat(cache_path).st_mode) == 0o600
    assert signed_in_accounts(settings) == [TECHNICIAN_UPN]
    assert sim.stats.token_requests[("organizations", "device_code")] == 1

    tenants = [f"customer{i}.onmicrosoft.com" for i in range(5)]
    async with _provider(sim, settings) as provider:
        assert provider.mode is AuthMode.DELEGATED
        tokens = await asyncio.gather(*(provider.get(t) for t in tenants))
        text = repr(provider)
    assert all(t.value not in text for t in tokens)
    for tenant in tenants:
        assert sim.stats.token_requests[(tenant, "refresh_token")] == 1
    assert stat.S_IMODE(os.stat(cache_path).st_mode) == 0o600

    before = sim.stats.token_requests.total()
    async with _provider(sim, settings) as again:  # a new process, same cache file
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
        await _provider(sim, settings).open()


async def test_delegated_expired_sign_in_stops_the_run(sim: Simulator, tmp_path: Path) -> None:
    """A cached sign-in whose refresh token Entra refuses stops the run with `batchsync login`."""
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=sim.config.client_id,
        token_cache_path=str(tmp_path / "c.json"),
    )
    await asyncio.to_thread(
        login_device_code, settings, _endpoints(sim.url), ca_bundle=sim.ca_pem_path, echo=print
    )
    _configure(sim, revoked_refresh_tokens=True)
    async with _provider(sim, settings) as provider:
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
    _configure(
        sim, unknown_tenants=frozenset({"nope.onmicrosoft.com"}), auto_approve_device_code=False
    )
    with pytest.raises(AuthError, match="sign-in failed") as info:
        await asyncio.to_thread(
            login_device_code,
            settings,
            _endpoints(sim.url),
            tenant="nope.onmicrosoft.com",
            ca_bundle=sim.ca_pem_path,
            echo=print,
        )
    assert info.value.code == "AADSTS90002"
    with pytest.raises(AuthError, match="not completed in time"):
        await asyncio.to_thread(
            login_device_code,
            settings,
            _endpoints(sim.url),
            ca_bundle=sim.ca_pem_path,
            echo=print,
            timeout_s=0,
        )
    assert not cache_path.exists()


def test_https_proxy_itself_is_verified_with_the_pinned_trust() -> None:
    """The TLS to an https:// proxy itself verifies with the same pinned SSLContext."""
    with TrustedSession() as s:
        manager = s.get_adapter("https://login.example").proxy_manager_for(  # type: ignore[attr-defined]
            "https://proxy.invalid:3129"
        )
        assert manager.proxy_ssl_context is s.ssl_context
        assert manager.connection_pool_kw["ssl_context"] is s.ssl_context


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


async def _signed_in(sim: Simulator, tmp_path: Path) -> AuthSettings:
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=sim.config.client_id,
        token_cache_path=str(tmp_path / "cache.json"),
    )
    await asyncio.to_thread(
        login_device_code,
        settings,
        _endpoints(sim.url),
        ca_bundle=sim.ca_pem_path,
        echo=lambda _: None,
    )
    return settings


def _cached_realms(path: str) -> set[str]:
    state = json.loads(Path(path).read_text())
    return {entry["realm"] for entry in state.get("AccessToken", {}).values()}


async def test_delegated_cache_is_saved_once_at_the_end(sim: Simulator, tmp_path: Path) -> None:
    """Tokens for many tenants leave the cache file untouched until close, then one save
    stores all of them."""
    settings = await _signed_in(sim, tmp_path)
    path = str(settings.token_cache_path)
    before = os.stat(path)
    tenants = [f"c{i}.onmicrosoft.com" for i in range(6)]
    async with _provider(sim, settings) as provider:
        await asyncio.gather(*(provider.get(t) for t in tenants))
        during = os.stat(path)
        assert (during.st_ino, during.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert not set(tenants) & _cached_realms(path)
    assert os.stat(path).st_ino != before.st_ino
    assert set(tenants) <= _cached_realms(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_delegated_cache_is_saved_on_interruption(sim: Simulator, tmp_path: Path) -> None:
    """A run cancelled mid-way (Ctrl-C) still stores the tokens it had refreshed."""
    settings = await _signed_in(sim, tmp_path)
    got = asyncio.Event()

    async def run() -> None:
        async with _provider(sim, settings) as provider:
            await provider.get("c1.onmicrosoft.com")
            got.set()
            await asyncio.Event().wait()  # an endless run

    task = asyncio.ensure_future(run())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "c1.onmicrosoft.com" in _cached_realms(str(settings.token_cache_path))


async def test_run_stop_skips_queued_token_requests(sim: Simulator, tmp_path: Path) -> None:
    """Once the sign-in is known revoked, queued tenants are not sent to Entra at all."""
    settings = await _signed_in(sim, tmp_path)
    _configure(sim, revoked_refresh_tokens=True, token_latency_s=0.02)
    tenants = [f"c{i}.onmicrosoft.com" for i in range(30)]
    async with _provider(sim, settings, token_concurrency=2) as provider:
        results = await asyncio.gather(*(provider.get(t) for t in tenants), return_exceptions=True)
    assert all(isinstance(r, RunStoppingAuthError) for r in results)
    assert {r.code for r in results if isinstance(r, RunStoppingAuthError)} == {"AADSTS700082"}
    sent = sum(n for (_, grant), n in sim.stats.token_requests.items() if grant == "refresh_token")
    assert 1 <= sent <= 4  # at most two rounds of token_concurrency, not one per tenant


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
