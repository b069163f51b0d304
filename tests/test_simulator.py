"""The built-in simulator over real HTTPS: real MSAL for its Entra side, aiohttp for Graph."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msal
import orjson
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from batchsync._net import make_ssl_context
from batchsync.simulator import (
    TECHNICIAN_UPN,
    FaultConfig,
    RetryAfterForm,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    connector_ids,
    format_env_lines,
)

TENANT = "contoso.onmicrosoft.com"
OTHER_TENANT = "2b7c9e4d-1f3a-4d5b-8c6e-0a9b8c7d6e5f"
CONNECTOR = "6f0c3a1e-9d2b-4c8a-b7e5-3a1f2d4c6b8e"
OTHER_CONNECTOR = "9b1d4f6a-3c5e-4a7b-8d9f-2e4c6a8b0d1f"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NO_THROTTLE = ThrottleConfig(write_limit=0)


# --------------------------------------------------------------------------- MSAL helpers


class TrustingSession(requests.Session):
    """Trusts the simulator's CA even though REQUESTS_CA_BUNDLE would override ``verify``."""

    def __init__(self, ca_path: str) -> None:
        super().__init__()
        self._ca_path = ca_path

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["verify"] = self._ca_path
        return settings


def scopes(sim: Simulator) -> list[str]:
    return [f"{sim.url}/.default"]


def confidential(
    sim: Simulator, tenant: str = TENANT, credential: Any = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential=sim.config.client_secret if credential is None else credential,
        authority=f"{sim.url}/{tenant}",
        instance_discovery=False,
        http_client=TrustingSession(sim.ca_pem_path),
    )


def public(sim: Simulator, tenant: str, cache: Any = None) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        sim.config.client_id,
        authority=f"{sim.url}/{tenant}",
        instance_discovery=False,
        http_client=TrustingSession(sim.ca_pem_path),
        token_cache=cache,
    )


@dataclasses.dataclass(frozen=True)
class AppCertificate:
    key_pem: str
    cert_pem: str
    sha1_hex: str


def _make_certificate() -> AppCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchsync test app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return AppCertificate(
        key_pem=key_pem.decode(),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        sha1_hex=cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is SHA-1
    )


@pytest.fixture(scope="module")
def app_certificates() -> tuple[AppCertificate, AppCertificate]:
    """The app's registered certificate and one the app does not know."""
    return _make_certificate(), _make_certificate()


# --------------------------------------------------------------------------- Graph helpers


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Client:
    """Raw HTTPS calls to the simulator, as batchsync's engine makes them."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def token(self, tenant: str = TENANT) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.sim.config.client_id,
            "client_secret": self.sim.config.client_secret,
            "scope": f"{self.sim.url}/.default",
        }
        url = f"{self.sim.url}/{tenant}/oauth2/v2.0/token"
        async with self.session.post(url, data=form) as response:
            assert response.status == 200
            return str((await response.json())["access_token"])

    async def call(
        self,
        method: str,
        url_or_path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        url = url_or_path if url_or_path.startswith("https://") else self.sim.url + url_or_path
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with self.session.request(method, url, data=data, headers=sent) as response:
            return Answer(response.status, response.headers, await response.read())

    async def sync(
        self,
        token: str | None,
        connector: str = CONNECTOR,
        sync_type: str = "fullSync",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        path = f"/v1.0/deviceManagement/exchangeConnectors/{connector}/sync"
        return await self.call(
            "POST", path, token=token, body={"syncType": sync_type}, headers=headers
        )


@contextlib.asynccontextmanager
async def graph_client(sim: Simulator) -> AsyncIterator[Client]:
    connector = aiohttp.TCPConnector(ssl=make_ssl_context(sim.ca_pem_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Client(sim, session)


def configure(sim: Simulator, **changes: Any) -> None:
    """Swap the running simulator's config, keeping its client secret."""
    sim.set_config(dataclasses.replace(sim.config, **changes))


# --------------------------------------------------------------------------- Entra with MSAL


def test_client_credentials_with_secret(simulator_in_thread: Simulator) -> None:
    """MSAL gets an app token with the client secret; discovery and token are counted."""
    sim = simulator_in_thread
    result = confidential(sim).acquire_token_for_client(scopes(sim))
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == sim.config.token_lifetime_s
    assert isinstance(result["access_token"], str)
    stats = sim.stats.snapshot()
    assert stats.discovery_requests == {TENANT: 1}
    assert stats.token_requests == {(TENANT, "client_credentials"): 1}


def test_client_credentials_with_certificate(
    simulator_in_thread: Simulator, app_certificates: tuple[AppCertificate, AppCertificate]
) -> None:
    """A certificate assertion works with x5t (RS256) and x5t#S256 (PS256); another key fails."""
    sim = simulator_in_thread
    registered, unknown = app_certificates
    configure(sim, certificate_pem=registered.cert_pem.encode())
    by_thumbprint = {"private_key": registered.key_pem, "thumbprint": registered.sha1_hex}
    by_certificate = {"private_key": registered.key_pem, "public_certificate": registered.cert_pem}
    for credential in (by_thumbprint, by_certificate):
        result = confidential(sim, credential=credential).acquire_token_for_client(scopes(sim))
        assert "access_token" in result, result.get("error_description")
    stranger = {"private_key": unknown.key_pem, "thumbprint": unknown.sha1_hex}
    result = confidential(sim, credential=stranger).acquire_token_for_client(scopes(sim))
    assert (result["error"], result["error_codes"]) == ("invalid_client", [700027])
    forged = {"private_key": unknown.key_pem, "thumbprint": registered.sha1_hex}
    result = confidential(sim, credential=forged).acquire_token_for_client(scopes(sim))
    assert result["error_codes"] == [700027]
    assert "signature" in result["error_description"]


def test_wrong_secret_and_wrong_client_id(simulator_in_thread: Simulator) -> None:
    """A wrong secret answers invalid_client 7000215; an unknown app unauthorized_client 700016."""
    sim = simulator_in_thread
    wrong = "wrong-secret-value"
    result = confidential(sim, credential=wrong).acquire_token_for_client(scopes(sim))
    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000215])
    assert result["error_description"].startswith("AADSTS7000215: ")
    assert wrong not in orjson.dumps(result).decode()
    app = msal.ConfidentialClientApplication(
        str(uuid.uuid4()),
        client_credential=sim.config.client_secret,
        authority=f"{sim.url}/{TENANT}",
        instance_discovery=False,
        http_client=TrustingSession(sim.ca_pem_path),
    )
    result = app.acquire_token_for_client(scopes(sim))
    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])
    assert TENANT in result["error_description"]


def test_scope_must_be_the_simulator_graph_default(simulator_in_thread: Simulator) -> None:
    """A scope of another resource (real Graph) answers invalid_scope AADSTS70011."""
    sim = simulator_in_thread
    result = confidential(sim).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert (result["error"], result["error_codes"]) == ("invalid_scope", [70011])


def test_one_refresh_token_works_at_two_tenants(simulator_in_thread: Simulator) -> None:
    """The technician's refresh token is redeemed at two tenants; each answer is that tenant's."""
    sim = simulator_in_thread
    tids = []
    for tenant in (TENANT, OTHER_TENANT):
        result = public(sim, tenant).acquire_token_by_refresh_token(sim.refresh_token, scopes(sim))
        assert "access_token" in result, result.get("error_description")
        assert result["refresh_token"] != sim.refresh_token  # rotated, the old one still works
        assert result["id_token_claims"]["preferred_username"] == TECHNICIAN_UPN
        tids.append(result["id_token_claims"]["tid"])
    assert tids == [TENANT, OTHER_TENANT]
    assert sim.stats.snapshot().token_requests == {
        (TENANT, "refresh_token"): 1,
        (OTHER_TENANT, "refresh_token"): 1,
    }


def test_revoked_refresh_tokens(simulator_in_thread: Simulator) -> None:
    """With revoked_refresh_tokens every redemption answers invalid_grant AADSTS700082."""
    sim = simulator_in_thread
    configure(sim, revoked_refresh_tokens=True)
    result = public(sim, TENANT).acquire_token_by_refresh_token(sim.refresh_token, scopes(sim))
    assert (result["error"], result["error_codes"]) == ("invalid_grant", [700082])


def test_device_code_sign_in_then_silent_tokens(simulator_in_thread: Simulator) -> None:
    """Device-code sign-in makes an MSAL account whose refresh token serves another tenant."""
    sim = simulator_in_thread
    cache = msal.SerializableTokenCache()
    home = public(sim, "organizations", cache)
    flow = home.initiate_device_flow(scopes(sim))
    assert flow["user_code"] in flow["message"]
    assert "access_token" in home.acquire_token_by_device_flow(flow)
    [account] = home.get_accounts()
    assert account["username"] == TECHNICIAN_UPN
    customer = public(sim, OTHER_TENANT, cache)
    result = customer.acquire_token_silent(scopes(sim), account)
    assert result is not None
    assert result["id_token_claims"]["tid"] == OTHER_TENANT
    assert sim.stats.snapshot().token_requests == {
        ("organizations", "device_code"): 1,
        (OTHER_TENANT, "refresh_token"): 1,
    }


def test_device_code_pending_until_approved(simulator_in_thread: Simulator) -> None:
    """Without auto-approval polling answers authorization_pending until the code is approved."""
    sim = simulator_in_thread
    configure(sim, auto_approve_device_code=False)
    app = public(sim, "organizations")
    flow = app.initiate_device_flow(scopes(sim))
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda flow: True)
    assert (result["error"], result["error_codes"]) == ("authorization_pending", [70016])
    assert sim.approve_device_code(flow["user_code"]) == 1
    assert "access_token" in app.acquire_token_by_device_flow(flow)


def test_tenant_errors_have_entra_shapes(simulator_in_thread: Simulator) -> None:
    """Each configured AADSTS code answers with its OAuth error and Entra's error fields."""
    sim = simulator_in_thread
    expected = {
        50076: "interaction_required",
        53003: "invalid_grant",
        65001: "invalid_grant",
        700016: "unauthorized_client",
        50020: "invalid_grant",
        50034: "invalid_request",
        500011: "invalid_resource",
    }
    tenants = {code: f"t{code}.example.com" for code in expected}
    configure(sim, tenant_errors={tenant: code for code, tenant in tenants.items()})
    for code, error in expected.items():
        result = confidential(sim, tenants[code]).acquire_token_for_client(scopes(sim))
        assert (result["error"], result["error_codes"]) == (error, [code])
        assert result["error_description"].startswith(f"AADSTS{code}: ")
        assert UUID_RE.match(result["trace_id"])
        assert UUID_RE.match(result["correlation_id"])
        assert "timestamp" in result
    assert "access_token" in confidential(sim, TENANT).acquire_token_for_client(scopes(sim))


def test_unknown_tenant_fails_in_msal_constructor(simulator_in_thread: Simulator) -> None:
    """An unknown tenant fails MSAL's discovery with ValueError carrying AADSTS90002."""
    sim = simulator_in_thread
    configure(sim, unknown_tenants=frozenset({"Gone.example.com"}))
    for tenant in ("gone.example.com", "not_a_tenant"):
        with pytest.raises(ValueError, match="Unable to get authority configuration") as info:
            confidential(sim, tenant)
        assert "AADSTS90002" in str(info.value.__context__)
    form = {"grant_type": "client_credentials", "client_id": sim.config.client_id}
    answer = requests.post(
        f"{sim.url}/gone.example.com/oauth2/v2.0/token",
        data=form,
        verify=sim.ca_pem_path,
        timeout=10,
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_tenant")


def test_token_temporarily_unavailable_first(simulator_in_thread: Simulator) -> None:
    """The first N token requests of a tenant answer 503 temporarily_unavailable, then succeed."""
    sim = simulator_in_thread
    configure(sim, faults=FaultConfig(token_unavailable_first=2))
    app = confidential(sim)
    for _ in range(2):
        with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
            app.acquire_token_for_client(scopes(sim))
    assert "access_token" in app.acquire_token_for_client(scopes(sim))
    assert sim.stats.snapshot().token_requests == {(TENANT, "client_credentials"): 3}


def test_serve_forever_stops_on_ctrl_c() -> None:
    """serve_forever serves until SIGINT, then exits cleanly and removes its CA file."""
    code = (
        "from batchsync.simulator import serve_forever\n"
        "serve_forever(on_ready=lambda sim: print(sim.url, sim.ca_pem_path, flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url, ca_path = proc.stdout.readline().split()
        answer = requests.get(
            f"{url}/{TENANT}/v2.0/.well-known/openid-configuration", verify=ca_path, timeout=10
        )
        assert answer.json()["token_endpoint"] == f"{url}/{TENANT}/oauth2/v2.0/token"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert not os.path.exists(ca_path)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM ends a Windows process at once")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_simulator_command_removes_its_ca_directory_on_sigterm(sig: str) -> None:
    """`batchsync simulator` stopped by SIGTERM (a service manager, `kill`) or SIGHUP (its
    terminal closed) stops as on Ctrl-C: its temporary CA directory is removed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchsync", "simulator", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ca_path = ""
        for line in proc.stderr:
            if line.startswith("export BATCHSYNC_CA_BUNDLE="):
                ca_path = shlex.split(line.split("=", 1)[1])[0]
                break
        assert os.path.isfile(ca_path)
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=10) == 0
        assert not os.path.exists(os.path.dirname(ca_path))
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- Graph


async def test_sync_answers_204_with_graph_headers(simulator: Simulator) -> None:
    """A sync answers 204 with request-id, the echoed client-request-id and diagnostics."""
    async with graph_client(simulator) as client:
        token = await client.token()
        crid = str(uuid.uuid4())
        answer = await client.sync(token, headers={"client-request-id": crid})
        generated = await client.sync(token, sync_type="deltaSync")
    assert (answer.status, answer.body) == (204, b"")
    assert answer.headers["client-request-id"] == crid
    assert UUID_RE.match(answer.headers["request-id"])
    assert "ServerInfo" in orjson.loads(answer.headers["x-ms-ags-diagnostic"])
    assert email.utils.parsedate_to_datetime(answer.headers["Date"])
    assert UUID_RE.match(generated.headers["client-request-id"])
    stats = simulator.stats
    assert stats.syncs == {CONNECTOR: 2}
    assert stats.sync_requests == {TENANT: 2}
    first = stats.sync_log[0]
    assert (first.tenant, first.connector, first.sync_type, first.status) == (
        TENANT,
        CONNECTOR,
        "fullSync",
        204,
    )
    assert (first.client_request_id, first.request_id) == (crid, answer.headers["request-id"])


async def test_bad_tokens_answer_401(simulator: Simulator) -> None:
    """No token, a forged token and an expired token each answer 401 InvalidAuthenticationToken."""
    async with graph_client(simulator) as client:
        token = await client.token()
        prefix, claims, mac = token.split(".")
        payload = orjson.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        payload["tid"] = OTHER_TENANT
        forged_claims = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()
        forged = f"{prefix}.{forged_claims}.{mac}"
        configure(simulator, token_lifetime_s=0)
        expired = await client.token()
        answers = [await client.sync(t) for t in (None, forged, expired, "garbage")]
    for answer in answers:
        assert answer.status == 401
        error = answer.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert error["innerError"]["request-id"] == answer.headers["request-id"]
        assert "Bearer" in answer.headers["WWW-Authenticate"]
    assert "expired" in answers[2].json()["error"]["message"]
    assert simulator.stats.unauthorized == 4
    assert simulator.stats.syncs == {}


async def test_bad_requests_answer_400(simulator: Simulator) -> None:
    """A connector that is not a GUID, or a wrong syncType, answers 400 BadRequest."""
    async with graph_client(simulator) as client:
        token = await client.token()
        answers = [
            await client.sync(token, connector="not-a-guid"),
            await client.sync(token, sync_type="FULLSYNC"),
            await client.call(
                "POST", f"/beta/deviceManagement/exchangeConnectors/{CONNECTOR}/sync", token=token
            ),
            await client.call("GET", "/v1.0/users", token=token),
        ]
    assert [a.status for a in answers] == [400, 400, 400, 400]
    assert {a.json()["error"]["code"] for a in answers} == {"BadRequest"}
    assert [e.status for e in simulator.stats.sync_log] == [400, 400, 400]


async def test_forbidden_tenant_and_missing_connector(simulator: Simulator) -> None:
    """A forbidden tenant answers 403 Forbidden; a missing connector 404 ResourceNotFound."""
    configure(
        simulator,
        forbidden_tenants=frozenset({OTHER_TENANT}),
        missing_connectors=frozenset({OTHER_CONNECTOR.upper()}),
    )
    async with graph_client(simulator) as client:
        forbidden = await client.sync(await client.token(OTHER_TENANT))
        listing = await client.call(
            "GET",
            "/v1.0/deviceManagement/exchangeConnectors",
            token=await client.token(OTHER_TENANT),
        )
        missing = await client.sync(await client.token(), connector=OTHER_CONNECTOR)
    assert (forbidden.status, forbidden.json()["error"]["code"]) == (403, "Forbidden")
    assert listing.status == 403
    assert (missing.status, missing.json()["error"]["code"]) == (404, "ResourceNotFound")


@pytest.mark.parametrize("form", ["seconds", "float", "date", "none"])
async def test_throttling_announces_retry_after_and_counts_early_requests(
    simulator: Simulator, form: RetryAfterForm
) -> None:
    """Over the write limit: 429 TooManyRequests in each Retry-After form; early retries count."""
    configure(
        simulator,
        throttle=ThrottleConfig(write_limit=2, window_s=1.0, retry_after=form),
        faults=FaultConfig(retry_after_s=2.5),
    )
    async with graph_client(simulator) as client:
        token = await client.token()
        accepted = [await client.sync(token) for _ in range(2)]
        throttled = await client.sync(token)
        await asyncio.sleep(0.3)  # past the in-flight grace: this one ignores the pause
        early = await client.sync(token)
        other_tenant = await client.sync(await client.token(OTHER_TENANT))
    assert [a.status for a in accepted] == [204, 204]
    assert (throttled.status, early.status, other_tenant.status) == (429, 429, 204)
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    value = throttled.headers.get("Retry-After")
    if form == "seconds":
        assert value == "3"  # max(slot frees in ~1 s, retry_after_s 2.5), rounded up
    elif form == "float":
        assert value == "2.500"
    elif form == "date":
        assert value is not None
        assert email.utils.parsedate_to_datetime(value).tzinfo is not None
    else:
        assert value is None
    assert simulator.stats.throttled == {TENANT: 2}
    assert simulator.stats.requests_during_pause == (0 if form == "none" else 1)


async def test_client_that_waits_is_not_counted(simulator: Simulator) -> None:
    """A client that waits the announced Retry-After gets 204 and no early request is counted."""
    configure(
        simulator,
        throttle=ThrottleConfig(write_limit=1, window_s=0.2, retry_after="float"),
        faults=FaultConfig(retry_after_s=0.1),
    )
    async with graph_client(simulator) as client:
        token = await client.token()
        assert (await client.sync(token)).status == 204
        throttled = await client.sync(token)
        assert throttled.status == 429
        await asyncio.sleep(float(throttled.headers["Retry-After"]))
        assert (await client.sync(token)).status == 204
    assert simulator.stats.requests_during_pause == 0


async def test_connector_cooldown_is_per_connector(simulator: Simulator) -> None:
    """A second sync of one connector within the cooldown gets 429; other connectors go on."""
    configure(simulator, throttle=ThrottleConfig(write_limit=0, connector_cooldown_s=30.0))
    async with graph_client(simulator) as client:
        token = await client.token()
        first = await client.sync(token)
        again = await client.sync(token)
        other = await client.sync(token, connector=OTHER_CONNECTOR)
    assert (first.status, again.status, other.status) == (204, 429, 204)
    assert again.headers["Retry-After"] == "30"
    assert simulator.stats.syncs == {CONNECTOR: 1, OTHER_CONNECTOR: 1}


async def test_first_requests_of_each_tenant_can_answer_503(simulator: Simulator) -> None:
    """``http_503_first`` answers each tenant's first sync requests 503 + Retry-After, then 204."""
    configure(simulator, throttle=NO_THROTTLE, faults=FaultConfig(http_503_first=2))
    async with graph_client(simulator) as client:
        token, other = await client.token(), await client.token(OTHER_TENANT)
        answers = [await client.sync(token) for _ in range(3)]
        first_other = await client.sync(other, connector=OTHER_CONNECTOR)
    assert [a.status for a in answers] == [503, 503, 204]
    assert answers[0].headers["Retry-After"] == "1"
    assert first_other.status == 503
    assert simulator.stats.faults["http_503_first"] == 3


async def test_faults_are_deterministic_by_seed(simulator: Simulator) -> None:
    """The same seed gives the same fault sequence; another seed a different one."""
    faults = FaultConfig(
        seed=7,
        http_500=0.15,
        http_502=0.1,
        http_503=0.1,
        http_503_retry_after=0.1,
        http_504=0.1,
        malformed=0.1,
        retry_after_s=0.1,
    )
    configure(simulator, throttle=NO_THROTTLE, faults=faults)

    async def run(client: Client, token: str) -> list[Answer]:
        return [await client.sync(token) for _ in range(40)]

    async with graph_client(simulator) as client:
        token = await client.token()
        first = await run(client, token)
        configure(simulator, faults=faults)  # restarts the sequence
        second = await run(client, token)
        configure(simulator, faults=dataclasses.replace(faults, seed=8))
        third = await run(client, token)
    statuses = [a.status for a in first]
    assert statuses == [a.status for a in second]
    assert statuses != [a.status for a in third]
    assert {204, 500, 502, 503, 504} <= set(statuses)
    for answer in first:
        if answer.status == 503 and "Retry-After" in answer.headers:
            assert answer.headers["Retry-After"] == "1"
        if answer.status >= 500 and answer.headers["Content-Type"].startswith("text/html"):
            with pytest.raises(orjson.JSONDecodeError):
                answer.json()
        elif answer.status >= 500:
            assert answer.json()["error"]["innerError"]["request-id"]
    injected = simulator.stats.faults
    assert injected["malformed"] > 0
    assert injected.total() == sum(1 for a in first + second + third if a.status != 204)


async def test_drop_and_slow_faults(simulator: Simulator) -> None:
    """A dropped request closes the connection; a slow one outlasts the client's timeout."""
    async with graph_client(simulator) as client:
        token = await client.token()
        configure(simulator, faults=FaultConfig(drop=1.0))
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.sync(token)
        assert simulator.stats.sync_log[-1].status == 0
        configure(simulator, faults=FaultConfig(slow=1.0, slow_s=30.0))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.sync(token)
    assert simulator.stats.faults == {"drop": 1, "slow": 1}


async def test_exchange_connectors_are_paged(simulator: Simulator) -> None:
    """The connector list pages by page_size with @odata.nextLink and matches connector_ids."""
    config = dataclasses.replace(simulator.config, connectors_per_tenant={TENANT.upper(): 5})
    missing = connector_ids(TENANT, config)[1]
    config = dataclasses.replace(config, missing_connectors=frozenset({missing}))
    simulator.set_config(config)
    expected = connector_ids(TENANT, config)
    assert len(expected) == 4
    assert missing not in expected
    async with graph_client(simulator) as client:
        token = await client.token()
        pages, url = [], "/v1.0/deviceManagement/exchangeConnectors"
        while url:
            page = (await client.call("GET", url, token=token)).json()
            pages.append(page)
            url = page.get("@odata.nextLink", "")
        single = await client.call(
            "GET", f"/v1.0/deviceManagement/exchangeConnectors/{expected[0]}", token=token
        )
        open_world = await client.call(
            "GET", f"/beta/deviceManagement/exchangeConnectors/{CONNECTOR}", token=token
        )
        gone = await client.call(
            "GET", f"/v1.0/deviceManagement/exchangeConnectors/{missing}", token=token
        )
        bad_page = await client.call(
            "GET", "/v1.0/deviceManagement/exchangeConnectors?$skiptoken=nope", token=token
        )
        other = await client.call(
            "GET",
            "/v1.0/deviceManagement/exchangeConnectors?$top=100",
            token=await client.token("fabrikam.com"),
        )
    assert [len(p["value"]) for p in pages] == [2, 2]
    items = [item for p in pages for item in p["value"]]
    assert [item["id"] for item in items] == expected
    for item in items:
        assert item["status"] in ("connected", "disconnected")
        assert item["exchangeConnectorType"] == "onPremises"
        assert {"lastSyncDateTime", "serverName", "version", "primarySmtpAddress"} <= set(item)
    assert all(p["@odata.context"].endswith("#deviceManagement/exchangeConnectors") for p in pages)
    assert single.json()["id"] == expected[0]
    assert single.json()["status"] == items[0]["status"]
    assert (open_world.json()["id"], open_world.json()["status"]) == (CONNECTOR, "connected")
    assert (gone.status, bad_page.status) == (404, 400)
    default_ids = connector_ids("fabrikam.com")
    assert [c["id"] for c in other.json()["value"]] == default_ids[:2]
    assert len(default_ids) <= 3


async def test_gdap_customers_are_paged(simulator: Simulator) -> None:
    """delegatedAdminCustomers lists the configured GDAP customers, page by page."""
    customers = (TENANT, OTHER_TENANT, "fabrikam.com")
    configure(simulator, gdap_customers=customers)
    async with graph_client(simulator) as client:
        token = await client.token("partner.example.com")
        url, seen = "/v1.0/tenantRelationships/delegatedAdminCustomers", []
        while url:
            page = (await client.call("GET", url, token=token)).json()
            seen.extend(page["value"])
            url = page.get("@odata.nextLink", "")
    assert [c["tenantId"] for c in seen] == list(customers)
    assert all(c["id"] == c["tenantId"] and c["displayName"] for c in seen)


async def test_stats_snapshot_reset_and_concurrency(simulator: Simulator) -> None:
    """Stats count concurrent Graph requests; snapshots are copies; reset zeroes in place."""
    configure(simulator, throttle=NO_THROTTLE, graph_latency_s=0.2)
    async with graph_client(simulator) as client:
        token = await client.token()
        answers = await asyncio.gather(*(client.sync(token) for _ in range(8)))
    assert {a.status for a in answers} == {204}
    snapshot = simulator.stats.snapshot()
    assert snapshot.max_concurrent_graph >= 2
    assert snapshot.max_concurrent_tokens == 1
    assert snapshot.graph_requests == {TENANT: 8}
    simulator.reset_stats()
    assert simulator.stats.syncs == {}
    assert simulator.stats.sync_log == []
    assert snapshot.syncs == {CONNECTOR: 8}
    assert len(snapshot.sync_log) == 8


def test_env_lines_and_reprs_hide_nothing_they_should_not(
    simulator_in_thread: Simulator,
) -> None:
    """env() and export lines point batchsync at the simulator; reprs hide secrets and tokens."""
    sim = simulator_in_thread
    env = sim.env()
    assert env == {
        "BATCHSYNC_GRAPH_URL": sim.url,
        "BATCHSYNC_AUTHORITY_HOST": sim.url,
        "BATCHSYNC_CA_BUNDLE": sim.ca_pem_path,
        "BATCHSYNC_CLIENT_ID": sim.config.client_id,
        "BATCHSYNC_REFRESH_TOKEN": sim.refresh_token,
    }
    parsed = dict(shlex.split(line)[1].split("=", 1) for line in format_env_lines(sim))
    assert parsed == env
    assert all(line.startswith("export BATCHSYNC_") for line in format_env_lines(sim))
    assert sim.url.startswith("https://127.0.0.1:")
    for text in (repr(sim), repr(sim.config), repr(sim.stats)):
        assert sim.refresh_token not in text
        assert sim.config.client_secret not in text


def test_config_validation() -> None:
    """Impossible configs are refused at construction, and names are lower-cased."""
    with pytest.raises(ValueError, match="sum"):
        FaultConfig(http_500=0.7, http_503=0.7)
    with pytest.raises(ValueError, match="retry_after"):
        ThrottleConfig(retry_after="minutes")  # type: ignore[arg-type]
    config = SimulatorConfig(tenant_errors={"Contoso.COM": 65001}, unknown_tenants={"A.com"})  # type: ignore[arg-type]
    assert config.tenant_errors == {"contoso.com": 65001}
    assert config.unknown_tenants == frozenset({"a.com"})
    assert SimulatorConfig().client_secret != SimulatorConfig().client_secret
