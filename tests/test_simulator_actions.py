"""The simulator's Intune sync family over real HTTPS: objects, listings, actions, limits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shlex
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
import pytest
import requests

from batchsync._net import make_ssl_context
from batchsync.simulator import (
    ACTIONS,
    NAMESPACES,
    FaultConfig,
    ObjectKind,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    connector_ids,
    object_count,
    object_ids,
    object_properties,
    singleton_id,
)

TENANT = "contoso.onmicrosoft.com"
OTHER_TENANT = "2b7c9e4d-1f3a-4d5b-8c6e-0a9b8c7d6e5f"
NO_THROTTLE = ThrottleConfig(write_limit=0)
DEVICES = "/v1.0/deviceManagement/managedDevices"
VPP = "/v1.0/deviceAppManagement/vppTokens"
DEP = "/beta/deviceManagement/depOnboardingSettings"
AUTOPILOT = "/beta/deviceManagement/windowsAutopilotSettings"
PLAY = "/beta/deviceManagement/androidManagedStoreAccountEnterpriseSettings"
CONNECTORS = "/v1.0/deviceManagement/exchangeConnectors"


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])

    @property
    def message(self) -> str:
        return str(self.json()["error"]["message"])


class Client:
    """Raw HTTPS calls to the simulator with app tokens from its token endpoint."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        self._tokens: dict[str, str] = {}

    async def token(self, tenant: str = TENANT) -> str:
        if tenant not in self._tokens:
            form = {
                "grant_type": "client_credentials",
                "client_id": self.sim.config.client_id,
                "client_secret": self.sim.config.client_secret,
                "scope": f"{self.sim.url}/.default",
            }
            url = f"{self.sim.url}/{tenant}/oauth2/v2.0/token"
            async with self.session.post(url, data=form) as response:
                assert response.status == 200
                self._tokens[tenant] = str((await response.json())["access_token"])
        return self._tokens[tenant]

    async def call(
        self,
        method: str,
        path: str,
        *,
        tenant: str = TENANT,
        body: Any = None,
        raw: bytes | None = None,
        token: str | None = "",
    ) -> Answer:
        url = path if path.startswith("https://") else self.sim.url + path
        headers = {"client-request-id": str(uuid.uuid4())}
        bearer = await self.token(tenant) if token == "" else token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, url, data=data, headers=headers) as response:
            return Answer(response.status, response.headers, await response.read())

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Answer:
        return await self.call("POST", path, **kw)

    async def all_pages(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        pages, url = [], path
        while url:
            answer = await self.get(url, **kw)
            assert answer.status == 200, answer.body
            pages.append(answer.json())
            url = answer.json().get("@odata.nextLink", "")
        return pages


@contextlib.asynccontextmanager
async def graph_client(sim: Simulator) -> AsyncIterator[Client]:
    connector = aiohttp.TCPConnector(ssl=make_ssl_context(sim.ca_pem_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Client(sim, session)


def configure(sim: Simulator, **changes: Any) -> None:
    """Swap the running simulator's config, keeping its client secret."""
    sim.set_config(dataclasses.replace(sim.config, **changes))


def sync_path(kind: ObjectKind, object_id: str = "", *, version: str = "") -> str:
    """The POST path of the action on ``kind`` (``version`` defaults to what it needs)."""
    [action] = [a for a in ACTIONS if a.kind == kind]
    version = version or ("beta" if action.beta_only else "v1.0")
    item = "" if action.singleton else f"/{object_id}"
    return f"/{version}/{action.collection}{item}/{action.operation}"


def first(kind: ObjectKind, tenant: str = TENANT, config: SimulatorConfig | None = None) -> str:
    ids = object_ids(kind, tenant, config)
    assert ids, f"{tenant} has no {kind}"
    return ids[0]


WITH_OBJECTS: dict[str, Any] = {
    "devices_per_tenant": {TENANT: 3, OTHER_TENANT: 2},
    "vpp_tokens_per_tenant": {TENANT: 2, OTHER_TENANT: 1},
    "dep_settings_per_tenant": {TENANT: 1, OTHER_TENANT: 1},
    "managed_play_bind_status": {TENANT: "boundAndValidated", OTHER_TENANT: "notBound"},
    "sync_duration_s": 0.0,
}


# --------------------------------------------------------------------------- objects


def test_object_ids_are_deterministic_per_tenant_and_configurable() -> None:
    """Ids are uuid5(namespace, tenant + index), counts come from the config or a hash."""
    config = SimulatorConfig(devices_per_tenant={TENANT.upper(): 4}, missing_objects=frozenset())
    devices = object_ids("device", TENANT, config)
    assert devices == [str(uuid.uuid5(NAMESPACES["device"], f"{TENANT}{i}")) for i in range(4)]
    assert object_ids("device", TENANT.upper(), config) == devices
    gone = SimulatorConfig(devices_per_tenant={TENANT: 4}, missing_objects={devices[1].upper()})  # type: ignore[arg-type]
    assert object_ids("device", TENANT, gone) == [devices[0], *devices[2:]]
    assert object_count("device", TENANT, gone) == 4
    ranges: tuple[tuple[ObjectKind, int], ...] = (
        ("device", 5),
        ("vpp", 2),
        ("dep", 1),
        ("connector", 3),
    )
    for kind, most in ranges:
        counts = {object_count(kind, f"t{i}.example.com") for i in range(200)}
        assert counts == set(range(most + 1)), kind
    assert object_ids("connector", "fabrikam.com") == connector_ids("fabrikam.com")
    assert (
        object_count("device", "x.example.com", SimulatorConfig(default_devices_per_tenant=7)) == 7
    )
    assert object_ids("autopilot", TENANT) == [singleton_id("autopilot", TENANT)]
    without = SimulatorConfig(tenants_without_autopilot=frozenset({TENANT.upper()}))
    assert object_ids("autopilot", TENANT, without) == []
    assert object_ids("managed_play", TENANT, without) == [singleton_id("managed_play", TENANT)]
    assert singleton_id("autopilot", TENANT) != singleton_id("autopilot", OTHER_TENANT)
    with pytest.raises(ValueError, match="singleton"):
        singleton_id("device", TENANT)


def test_a_hundred_thousand_device_ids_are_cheap() -> None:
    """50 tenants x 2,000 devices: ids made once (cached), each object's properties in µs."""
    tenants = [str(uuid.uuid5(NAMESPACES["device"], f"bench-{i}")) for i in range(50)]
    config = SimulatorConfig(devices_per_tenant=dict.fromkeys(tenants, 2000))
    started = time.perf_counter()
    ids = [object_ids("device", tenant, config) for tenant in tenants]
    assert sum(map(len, ids)) == 100_000
    assert len({i for tenant_ids in ids for i in tenant_ids}) == 100_000
    again = time.perf_counter()
    assert [object_ids("device", tenant, config) for tenant in tenants] == ids
    assert time.perf_counter() - again < (again - started) / 2 + 0.05  # the cache answers
    assert time.perf_counter() - started < 5.0


def test_object_properties_are_realistic() -> None:
    """Each kind has the properties actions.md lists, with values from Graph's enums."""
    config = SimulatorConfig(devices_per_tenant={TENANT: 200}, vpp_tokens_per_tenant={TENANT: 2})
    devices = [
        object_properties("device", TENANT, d, config) for d in object_ids("device", TENANT, config)
    ]
    assert {d["operatingSystem"] for d in devices} == {"Windows", "iOS", "Android", "macOS"}
    assert {d["complianceState"] for d in devices} >= {"compliant", "noncompliant"}
    for device in devices:
        assert {"id", "deviceName", "osVersion", "lastSyncDateTime", "managementAgent"} <= set(
            device
        )
        assert device["userPrincipalName"].endswith("@" + TENANT)
    vpp = object_properties("vpp", TENANT, first("vpp", TENANT, config), config)
    assert vpp["state"] in {"valid", "expired"}
    assert vpp["lastSyncStatus"] == "completed"
    assert vpp["token"].startswith("VPP.")
    assert {"organizationName", "appleId", "expirationDateTime", "lastSyncDateTime"} <= set(vpp)
    dep = object_properties("dep", TENANT, str(uuid.uuid4()), config)
    assert {"tokenName", "appleIdentifier", "lastSyncErrorCode", "tokenExpirationDateTime"} <= set(
        dep
    )
    autopilot = object_properties("autopilot", TENANT, singleton_id("autopilot", TENANT))
    assert autopilot["syncStatus"] == "completed"
    assert {"lastSyncDateTime", "lastManualSyncTriggerDateTime"} <= set(autopilot)
    play = object_properties("managed_play", TENANT, singleton_id("managed_play", TENANT), config)
    assert play["bindStatus"] in {"boundAndValidated", "notBound"}
    assert {"lastAppSyncDateTime", "lastAppSyncStatus", "ownerUserPrincipalName"} <= set(play)
    statuses = {
        object_properties(
            "managed_play", f"t{i}.example.com", singleton_id("managed_play", f"t{i}.example.com")
        )["bindStatus"]
        for i in range(60)
    }
    assert statuses == {"boundAndValidated", "notBound"}


# --------------------------------------------------------------------------- each action


async def test_device_sync_answers_204_and_the_device_shows_it(simulator: Simulator) -> None:
    """syncDevice: 204 with Graph's headers; the device then shows the sync it was asked for."""
    configure(simulator, **WITH_OBJECTS)
    device = first("device", TENANT, simulator.config)
    async with graph_client(simulator) as client:
        before = (await client.get(f"{DEVICES}/{device}")).json()
        answer = await client.post(sync_path("device", device))
        beta = await client.post(sync_path("device", device, version="beta"))
        after = (await client.get(f"/beta/deviceManagement/managedDevices/{device}")).json()
    assert (answer.status, answer.body, beta.status) == (204, b"", 204)
    assert {"request-id", "client-request-id", "x-ms-ags-diagnostic"} <= set(answer.headers)
    assert before["deviceActionResults"] == []
    assert after["lastSyncDateTime"] > before["lastSyncDateTime"]
    assert after["deviceActionResults"][0]["actionName"] == "syncDevice"
    assert after["deviceActionResults"][0]["actionState"] == "done"
    assert after["@odata.context"].endswith("#deviceManagement/managedDevices/$entity")
    stats = simulator.stats
    assert stats.syncs == {device: 2}
    assert stats.action_syncs == {("device-sync", TENANT): 2}
    event = stats.sync_log[0]
    assert (event.action, event.object_id, event.sync_type, event.status) == (
        "device-sync",
        device,
        None,
        204,
    )


@pytest.mark.parametrize("form", ["entity", "value", "none"])
async def test_vpp_sync_licenses_answers_200_with_the_token(
    simulator: Simulator, form: str
) -> None:
    """syncLicenses: 200 with the vppToken (inProgress), as an entity, in "value", or bodiless."""
    configure(simulator, **{**WITH_OBJECTS, "sync_duration_s": 0.3}, vpp_sync_body=form)
    token_id = first("vpp", TENANT, simulator.config)
    async with graph_client(simulator) as client:
        answer = await client.post(sync_path("vpp", token_id))
        running = (await client.get(f"{VPP}/{token_id}")).json()
        await asyncio.sleep(0.35)
        done = (await client.get(f"{VPP}/{token_id}")).json()
    assert answer.status == 200
    if form == "none":
        assert answer.body == b""
    else:
        body = answer.json()["value"] if form == "value" else answer.json()
        assert (body["id"], body["lastSyncStatus"]) == (token_id, "inProgress")
        assert body["token"].startswith("VPP.")
    assert running["lastSyncStatus"] == "inProgress"
    assert done["lastSyncStatus"] in {"completed", "failed"}
    assert done["lastSyncDateTime"] >= running["lastSyncDateTime"]
    assert simulator.stats.syncs == {token_id: 1}
    assert simulator.stats.action_statuses == {("vpp-license-sync", 200): 1}


async def test_dep_autopilot_and_managed_play_are_beta_only(simulator: Simulator) -> None:
    """The beta-only actions and reads answer 204/200 on beta, 400 segment-not-found on v1.0."""
    configure(simulator, **WITH_OBJECTS)
    dep = first("dep", TENANT, simulator.config)
    async with graph_client(simulator) as client:
        on_beta = [
            await client.post(sync_path("dep", dep)),
            await client.post(sync_path("autopilot")),
            await client.post(sync_path("managed_play")),
        ]
        on_v1 = [
            await client.post(sync_path("dep", dep, version="v1.0")),
            await client.post(sync_path("autopilot", version="v1.0")),
            await client.post(sync_path("managed_play", version="v1.0")),
            await client.get(DEP.replace("/beta/", "/v1.0/")),
            await client.get(AUTOPILOT.replace("/beta/", "/v1.0/")),
        ]
        reads = [await client.get(path) for path in (DEP, AUTOPILOT, PLAY)]
    assert [a.status for a in on_beta] == [204, 204, 204]
    assert [a.status for a in on_v1] == [400] * 5
    assert {a.code for a in on_v1} == {"BadRequest"}
    assert on_v1[0].message == "Resource not found for the segment 'depOnboardingSettings'."
    assert on_v1[1].message == "Resource not found for the segment 'windowsAutopilotSettings'."
    assert [a.status for a in reads] == [200, 200, 200]
    assert [item["id"] for item in reads[0].json()["value"]] == [dep]
    assert reads[1].json()["id"] == singleton_id("autopilot", TENANT)
    assert reads[1].json()["syncStatus"] == "inProgress"  # autopilot_sync_s: 3 s by default
    assert reads[2].json()["bindStatus"] == "boundAndValidated"
    assert simulator.stats.sync_requests == {TENANT: 3}  # v1.0 paths are no action
    assert simulator.stats.syncs == {
        dep: 1,
        singleton_id("autopilot", TENANT): 1,
        singleton_id("managed_play", TENANT): 1,
    }


async def test_autopilot_answers_409_while_syncing_then_429_in_cooldown(
    simulator: Simulator,
) -> None:
    """Autopilot: 204, 409 while the sync runs, 429 (no Retry-After) until the cooldown ends."""
    configure(
        simulator,
        autopilot_sync_s=0.4,
        throttle=ThrottleConfig(write_limit=1, autopilot_cooldown_s=1.2),
    )
    path = sync_path("autopilot")
    async with graph_client(simulator) as client:
        accepted = await client.post(path)
        running = await client.post(path)
        status_running = (await client.get(AUTOPILOT)).json()
        await asyncio.sleep(0.45)
        cooling = await client.post(path)
        status_done = (await client.get(AUTOPILOT)).json()
        other_tenant = await client.post(path, tenant=OTHER_TENANT)
        await asyncio.sleep(0.8)
        again = await client.post(path)
    assert [a.status for a in (accepted, running, cooling, other_tenant, again)] == [
        204,
        409,
        429,
        204,
        204,
    ]
    assert (running.code, cooling.code) == ("Conflict", "TooManyRequests")
    assert "in progress" in running.message
    assert "within 0.02 minutes" in cooling.message
    assert "Retry-After" not in running.headers
    assert "Retry-After" not in cooling.headers
    assert status_running["syncStatus"] == "inProgress"
    assert status_done["syncStatus"] == "completed"
    assert status_done["lastSyncDateTime"] >= status_done["lastManualSyncTriggerDateTime"]
    stats = simulator.stats
    assert stats.action_statuses == {
        ("autopilot-sync", 204): 3,
        ("autopilot-sync", 409): 1,
        ("autopilot-sync", 429): 1,
    }
    assert stats.throttled == {TENANT: 1}
    assert stats.requests_during_pause == 0  # nothing was announced


async def test_autopilot_retry_after_is_announced_to_autopilot_only(simulator: Simulator) -> None:
    """With autopilot_retry_after, 409 and 429 carry Retry-After; only Autopilot requests count."""
    configure(
        simulator,
        **WITH_OBJECTS,
        autopilot_sync_s=0.3,
        throttle=ThrottleConfig(
            write_limit=0, autopilot_cooldown_s=5.0, autopilot_retry_after=True, retry_after="float"
        ),
    )
    path = sync_path("autopilot")
    device = first("device", TENANT, simulator.config)
    async with graph_client(simulator) as client:
        assert (await client.post(path)).status == 204
        await asyncio.sleep(0.25)  # inside the running sync
        running = await client.post(path)
        device_sync = await client.post(sync_path("device", device))
        await asyncio.sleep(0.1)  # the sync is done: the cooldown answers
        cooling = await client.post(path)
        assert simulator.stats.requests_during_pause == 0  # each came after its wait
        await asyncio.sleep(0.25)  # past the in-flight grace of the 429's announcement
        early = await client.post(path)
        unrelated = await client.post(sync_path("device", device))
    assert (running.status, device_sync.status, cooling.status) == (409, 204, 429)
    assert 0 < float(running.headers["Retry-After"]) <= 0.1
    assert 4.0 < float(cooling.headers["Retry-After"]) <= 5.0
    assert (early.status, unrelated.status) == (429, 204)
    assert simulator.stats.requests_during_pause == 1  # the Autopilot one, not the device sync


async def test_managed_play_sync_needs_a_bound_account(simulator: Simulator) -> None:
    """syncApps: 204 when bound (lastAppSyncDateTime moves), 400 BadRequest when notBound."""
    binding = {TENANT: "bound", OTHER_TENANT: "notBound", "a.example.com": "unbinding"}
    configure(simulator, **{**WITH_OBJECTS, "managed_play_bind_status": binding})
    async with graph_client(simulator) as client:
        before = (await client.get(PLAY)).json()
        bound = await client.post(sync_path("managed_play"))
        after = (await client.get(PLAY)).json()
        unbound = await client.post(sync_path("managed_play"), tenant=OTHER_TENANT)
        unbinding = await client.post(sync_path("managed_play"), tenant="a.example.com")
        unbound_read = (await client.get(PLAY, tenant=OTHER_TENANT)).json()
    assert (bound.status, unbound.status, unbinding.status) == (204, 400, 400)
    assert unbound.code == "BadRequest"
    assert "'notBound'" in unbound.message
    assert after["lastAppSyncDateTime"] > before["lastAppSyncDateTime"]
    assert after["lastAppSyncStatus"] == "success"
    assert unbound_read["bindStatus"] == "notBound"
    assert unbound_read["lastAppSyncDateTime"] == "0001-01-01T00:00:00Z"
    assert simulator.stats.action_syncs == {("managed-play-sync", TENANT): 1}


async def test_unknown_and_missing_objects_answer_404(simulator: Simulator) -> None:
    """A foreign, unknown or missing object id 404s (POST and GET); a non-GUID id 400s."""
    configure(simulator, **WITH_OBJECTS)
    config = simulator.config
    missing = first("device", TENANT, config)
    configure(
        simulator,
        missing_objects=frozenset({missing}),
        tenants_without_autopilot=frozenset({OTHER_TENANT}),
    )
    foreign = first("vpp", OTHER_TENANT, config)
    stranger = str(uuid.uuid4())
    async with graph_client(simulator) as client:
        posts = [
            await client.post(sync_path("device", missing)),
            await client.post(sync_path("device", stranger)),
            await client.post(sync_path("vpp", foreign)),
            await client.post(sync_path("dep", stranger)),
            await client.post(sync_path("autopilot"), tenant=OTHER_TENANT),
        ]
        gets = [
            await client.get(f"{DEVICES}/{missing}"),
            await client.get(f"{VPP}/{foreign}"),
            await client.get(f"{DEP}/{stranger}"),
            await client.get(AUTOPILOT, tenant=OTHER_TENANT),
        ]
        listed = await client.all_pages(DEVICES)
        not_guid = await client.post(sync_path("device", "not-a-guid"))
        not_guid_get = await client.get(f"{VPP}/nope")
    assert [a.status for a in posts + gets] == [404] * 9
    assert {a.code for a in posts + gets} == {"ResourceNotFound"}
    assert missing in posts[0].message
    assert missing not in [d["id"] for page in listed for d in page["value"]]
    assert (not_guid.status, not_guid.code, not_guid_get.status) == (400, "BadRequest", 400)
    assert simulator.stats.syncs == {}


async def test_forbidden_tenants_name_each_action_permission(simulator: Simulator) -> None:
    """A forbidden tenant gets 403 naming the action's permission, and the read's on GETs."""
    configure(simulator, **WITH_OBJECTS, forbidden_tenants=frozenset({OTHER_TENANT}))
    config = simulator.config
    expected: dict[ObjectKind, str] = {
        "device": "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "vpp": "DeviceManagementServiceConfig.ReadWrite.All",
        "dep": "DeviceManagementServiceConfig.ReadWrite.All",
        "autopilot": "DeviceManagementServiceConfig.ReadWrite.All",
        "managed_play": "DeviceManagementConfiguration.ReadWrite.All",
    }
    async with graph_client(simulator) as client:
        for kind, permission in expected.items():
            singleton = kind in ("autopilot", "managed_play")
            object_id = "" if singleton else first(kind, OTHER_TENANT, config)
            answer = await client.post(sync_path(kind, object_id), tenant=OTHER_TENANT)
            assert (answer.status, answer.code) == (403, "Forbidden"), kind
            assert answer.message.endswith(permission), kind
        reads = {
            DEVICES: "DeviceManagementManagedDevices.Read.All",
            VPP: "DeviceManagementServiceConfig.Read.All",
            DEP: "DeviceManagementServiceConfig.Read.All",
            AUTOPILOT: "DeviceManagementServiceConfig.Read.All",
            PLAY: "DeviceManagementConfiguration.Read.All",
        }
        for path, permission in reads.items():
            answer = await client.get(path, tenant=OTHER_TENANT)
            assert answer.status == 403, path
            assert answer.message.endswith(permission), path
    assert simulator.stats.action_statuses.total() == 5
    assert simulator.stats.syncs == {}


async def test_parameterless_actions_refuse_parameters(simulator: Simulator) -> None:
    """No body or {} is fine; a parameter (syncType on syncDevice) or bad JSON answers 400."""
    configure(simulator, **WITH_OBJECTS, throttle=NO_THROTTLE)
    device = first("device", TENANT, simulator.config)
    path = sync_path("device", device)
    async with graph_client(simulator) as client:
        fine = [await client.post(path), await client.post(path, body={})]
        with_type = await client.post(path, body={"syncType": "fullSync"})
        not_json = await client.post(path, raw=b"{nope")
        a_list = await client.post(sync_path("autopilot"), body=[1])
    assert [a.status for a in fine] == [204, 204]
    assert (with_type.status, not_json.status, a_list.status) == (400, 400, 400)
    assert with_type.message == (
        "The parameter 'syncType' in the request payload is not a valid parameter for the "
        "operation 'syncDevice'."
    )
    assert [e.status for e in simulator.stats.sync_log] == [204, 204, 400, 400, 400]


async def test_bad_tokens_on_any_action_answer_401_and_are_logged(simulator: Simulator) -> None:
    """A missing or bad token on an action POST: 401, logged with the action and no tenant."""
    configure(simulator, **WITH_OBJECTS)
    async with graph_client(simulator) as client:
        none = await client.post(sync_path("autopilot"), token=None)
        bad = await client.post(sync_path("device", str(uuid.uuid4())), token="garbage")
    assert (none.status, bad.status) == (401, 401)
    assert none.code == "InvalidAuthenticationToken"
    assert [(e.action, e.tenant, e.status) for e in simulator.stats.sync_log] == [
        ("autopilot-sync", "", 401),
        ("device-sync", "", 401),
    ]
    assert simulator.stats.sync_log[0].object_id == ""
    assert simulator.stats.unauthorized == 2


async def test_seeded_faults_meet_every_action(simulator: Simulator) -> None:
    """The seeded fault draw applies to each action's POST, Autopilot's and VPP's included."""
    configure(simulator, **WITH_OBJECTS, faults=FaultConfig(http_503=1.0))
    config = simulator.config
    async with graph_client(simulator) as client:
        answers = [
            await client.post(sync_path("device", first("device", TENANT, config))),
            await client.post(sync_path("vpp", first("vpp", TENANT, config))),
            await client.post(sync_path("dep", first("dep", TENANT, config))),
            await client.post(sync_path("autopilot")),
            await client.post(sync_path("managed_play")),
        ]
    assert [a.status for a in answers] == [503] * 5
    assert simulator.stats.faults == {"http_503": 5}
    assert simulator.stats.syncs == {}


# --------------------------------------------------------------------------- listings


async def test_listings_page_by_their_own_page_size(simulator: Simulator) -> None:
    """Devices page by 100 (configurable), VPP tokens and DEP by page_size; ids as object_ids."""
    configure(
        simulator,
        devices_per_tenant={TENANT: 250},
        vpp_tokens_per_tenant={TENANT: 3},
        dep_settings_per_tenant={TENANT: 1},
    )
    config = simulator.config
    async with graph_client(simulator) as client:
        devices = await client.all_pages(DEVICES)
        vpp = await client.all_pages(VPP)
        dep = await client.all_pages(DEP)
        configure(simulator, page_sizes={"device": 120})
        resized = await client.all_pages("/beta/deviceManagement/managedDevices")
        bad = await client.get(f"{DEVICES}?$skiptoken=nope")
        by_hash = await client.all_pages(DEVICES, tenant="hashed.example.com")
    assert [len(p["value"]) for p in devices] == [100, 100, 50]
    assert [d["id"] for p in devices for d in p["value"]] == object_ids("device", TENANT, config)
    assert devices[0]["@odata.context"].endswith("/v1.0/$metadata#deviceManagement/managedDevices")
    assert [len(p["value"]) for p in vpp] == [2, 1]
    assert [t["id"] for p in vpp for t in p["value"]] == object_ids("vpp", TENANT, config)
    assert [len(p["value"]) for p in dep] == [1]
    assert [len(p["value"]) for p in resized] == [120, 120, 10]
    assert (bad.status, bad.code) == (400, "BadRequest")
    assert sum(len(p["value"]) for p in by_hash) == object_count("device", "hashed.example.com")


async def test_device_filter_and_select_subset(simulator: Simulator) -> None:
    """$filter eq/and on operatingSystem and complianceState (any case), $select id + named."""
    configure(simulator, devices_per_tenant={TENANT: 300}, page_sizes={"device": 25})
    config = simulator.config
    everything = [
        object_properties("device", TENANT, d, config) for d in object_ids("device", TENANT, config)
    ]
    windows = [d["id"] for d in everything if d["operatingSystem"] == "Windows"]
    compliant_ios = [
        d["id"]
        for d in everything
        if (d["operatingSystem"], d["complianceState"]) == ("iOS", "compliant")
    ]
    query = urllib.parse.quote("operatingSystem eq 'windows'")
    both = urllib.parse.quote("OperatingSystem EQ 'IOS' AND complianceState eq 'Compliant'")
    async with graph_client(simulator) as client:
        pages = await client.all_pages(f"{DEVICES}?$filter={query}&$select=deviceName,OSVERSION")
        ios = await client.all_pages(f"{DEVICES}?$filter={both}")
        one = await client.get(f"{DEVICES}/{windows[0]}?$select=complianceState")
    got = [d for p in pages for d in p["value"]]
    assert [d["id"] for d in got] == windows
    assert all(len(p["value"]) == 25 for p in pages[:-1])
    assert all(set(d) == {"id", "deviceName", "osVersion"} for d in got)
    assert "$filter=" in pages[0]["@odata.nextLink"]
    assert pages[0]["@odata.context"].endswith("managedDevices(id,deviceName,osVersion)")
    assert [d["id"] for p in ios for d in p["value"]] == compliant_ios
    assert set(one.json()) == {"@odata.context", "id", "complianceState"}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("$filter=deviceName eq 'PC1'", "filtering on 'deviceName'"),
        ("$filter=operatingSystem ne 'Windows'", "operator 'ne'"),
        ("$filter=operatingSystem eq 'Windows' or complianceState eq 'compliant'", "'or'"),
        ("$filter=complianceState eq 'shiny'", "not a valid enumeration"),
        ("$filter=operatingSystem eq Windows", "quoted string"),
        ("$filter=startswith(deviceName,'DESKTOP')", "operator '('"),
        ("$filter=operatingSystem eq", "syntax error"),
        ("$filter=", "syntax error"),
        ("$select=deviceName,nonsense", "Could not find a property named 'nonsense'"),
        ("$select=deviceName,,id", "not valid"),
    ],
)
async def test_device_queries_outside_the_subset_answer_400(
    simulator: Simulator, query: str, words: str
) -> None:
    """A $filter or $select outside the subset answers 400 BadRequest saying what is wrong."""
    async with graph_client(simulator) as client:
        answer = await client.get(f"{DEVICES}?{query}")
    assert (answer.status, answer.code) == (400, "BadRequest")
    assert words in answer.message


async def test_filter_on_other_collections_answers_400(simulator: Simulator) -> None:
    """$filter where no property is documented filterable answers Graph's "not allowed" 400."""
    configure(simulator, **WITH_OBJECTS)
    device = first("device", TENANT, simulator.config)
    query = "?$filter=" + urllib.parse.quote("state eq 'valid'")
    async with graph_client(simulator) as client:
        answers = [
            await client.get(VPP + query),
            await client.get(DEP + query),
            await client.get(CONNECTORS + query),
            await client.get(AUTOPILOT + query),
            await client.get(f"{DEVICES}/{device}{query}"),
        ]
        selected = await client.get(f"{VPP}?$select=appleId")
    assert [a.status for a in answers] == [400] * 5
    assert all(a.message.startswith("Query option 'Filter' is not allowed.") for a in answers)
    assert all(set(t) == {"id", "appleId"} for t in selected.json()["value"])


# --------------------------------------------------------------------------- throttling


async def test_each_intune_category_has_its_own_write_window(simulator: Simulator) -> None:
    """write_limit 2: connectors, VPP and DEP share 2; devices get 4; managed Play its own 2."""
    configure(
        simulator,
        **WITH_OBJECTS,
        throttle=ThrottleConfig(write_limit=2, window_s=30.0, autopilot_cooldown_s=0.0),
        autopilot_sync_s=0.0,
    )
    config = simulator.config
    device, vpp, dep = (
        first("device", TENANT, config),
        first("vpp", TENANT, config),
        first("dep", TENANT, config),
    )
    async with graph_client(simulator) as client:
        enrollment = [
            await client.call(
                "POST", f"{CONNECTORS}/{uuid.uuid4()}/sync", body={"syncType": "deltaSync"}
            ),
            await client.post(sync_path("vpp", vpp)),
            await client.post(sync_path("dep", dep)),
        ]
        devices = [await client.post(sync_path("device", device)) for _ in range(5)]
        play = [await client.post(sync_path("managed_play")) for _ in range(3)]
        autopilot = [await client.post(sync_path("autopilot")) for _ in range(5)]
        other_tenant = await client.post(
            sync_path("dep", first("dep", OTHER_TENANT, config)), tenant=OTHER_TENANT
        )
    assert [a.status for a in enrollment] == [204, 200, 429]
    assert [a.status for a in devices] == [204] * 4 + [429]
    assert [a.status for a in play] == [204, 204, 429]
    assert [a.status for a in autopilot] == [204] * 5  # in no category; cooldown off
    assert other_tenant.status == 204
    assert all("Retry-After" in a.headers for a in (enrollment[2], devices[4], play[2]))
    assert simulator.stats.throttled == {TENANT: 3}


async def test_category_limits_override_and_pauses_stay_in_their_category(
    simulator: Simulator,
) -> None:
    """category_limits set a category's limit; its enforced pause does not stop another one."""
    configure(
        simulator,
        **WITH_OBJECTS,
        throttle=ThrottleConfig(write_limit=1, window_s=30.0, category_limits={"devices": 1}),
    )
    config = simulator.config
    device, vpp = first("device", TENANT, config), first("vpp", TENANT, config)
    async with graph_client(simulator) as client:
        devices = [await client.post(sync_path("device", device)) for _ in range(3)]
        vpp_answer = await client.post(sync_path("vpp", vpp))
    assert [a.status for a in devices] == [204, 429, 429]
    assert vpp_answer.status == 200
    assert ThrottleConfig(write_limit=50).limit_for("devices") == 100
    assert ThrottleConfig(write_limit=50).limit_for("androidForWork") == 50
    assert ThrottleConfig(write_limit=0).limit_for("devices") == 0


async def test_object_cooldown_is_per_object_and_announced_to_it(simulator: Simulator) -> None:
    """object_cooldown_s: a second sync of one device 429s; early retries of it alone count."""
    configure(
        simulator,
        devices_per_tenant={TENANT: 2},
        throttle=ThrottleConfig(write_limit=0, object_cooldown_s=30.0),
    )
    one, two = object_ids("device", TENANT, simulator.config)
    async with graph_client(simulator) as client:
        first_sync = await client.post(sync_path("device", one))
        again = await client.post(sync_path("device", one))
        await asyncio.sleep(0.25)
        other = await client.post(sync_path("device", two))
        early = await client.post(sync_path("device", one))
    assert [a.status for a in (first_sync, again, other, early)] == [204, 429, 204, 429]
    assert again.headers["Retry-After"] == "30"
    assert simulator.stats.requests_during_pause == 1
    assert simulator.stats.syncs == {one: 1, two: 1}


async def test_stats_tell_actions_apart_and_reset(simulator: Simulator) -> None:
    """action_requests, action_syncs, action_statuses count by action; reset zeroes them."""
    configure(simulator, **WITH_OBJECTS, throttle=NO_THROTTLE)
    config = simulator.config
    async with graph_client(simulator) as client:
        await client.post(sync_path("device", first("device", TENANT, config)))
        await client.post(sync_path("device", str(uuid.uuid4())))
        await client.post(sync_path("vpp", first("vpp", OTHER_TENANT, config)), tenant=OTHER_TENANT)
        await client.call(
            "POST", f"{CONNECTORS}/{uuid.uuid4()}/sync", body={"syncType": "fullSync"}
        )
    snapshot = simulator.stats.snapshot()
    assert snapshot.action_requests == {
        ("device-sync", TENANT): 2,
        ("vpp-license-sync", OTHER_TENANT): 1,
        ("exchange-connector-sync", TENANT): 1,
    }
    assert snapshot.action_syncs == {
        ("device-sync", TENANT): 1,
        ("vpp-license-sync", OTHER_TENANT): 1,
        ("exchange-connector-sync", TENANT): 1,
    }
    assert snapshot.action_statuses == {
        ("device-sync", 204): 1,
        ("device-sync", 404): 1,
        ("vpp-license-sync", 200): 1,
        ("exchange-connector-sync", 204): 1,
    }
    assert snapshot.sync_requests == {TENANT: 3, OTHER_TENANT: 1}
    assert [e.action for e in snapshot.sync_log] == [
        "device-sync",
        "device-sync",
        "vpp-license-sync",
        "exchange-connector-sync",
    ]
    simulator.reset_stats()
    assert simulator.stats.action_requests == simulator.stats.action_statuses == {}
    assert snapshot.action_syncs.total() == 3


def test_new_config_fields_are_validated_and_lower_cased() -> None:
    """Bad categories, bind statuses, page sizes and durations are refused at construction."""
    with pytest.raises(ValueError, match="category_limits"):
        ThrottleConfig(category_limits={"apps": 5})
    with pytest.raises(ValueError, match="managed_play_bind_status"):
        SimulatorConfig(managed_play_bind_status={TENANT: "glued"})
    with pytest.raises(ValueError, match="page_sizes"):
        SimulatorConfig(page_sizes={"device": 0})
    with pytest.raises(ValueError, match="autopilot_sync_s"):
        SimulatorConfig(autopilot_sync_s=-1)
    with pytest.raises(ValueError, match="vpp_sync_body"):
        SimulatorConfig(vpp_sync_body="xml")  # type: ignore[arg-type]
    config = SimulatorConfig(
        devices_per_tenant={"A.COM": 3},
        missing_objects=frozenset({"ABC"}),
        tenants_without_autopilot=frozenset({"B.COM"}),
        managed_play_bind_status={"C.COM": "notBound"},
    )
    assert config.devices_per_tenant == {"a.com": 3}
    assert config.missing_objects == frozenset({"abc"})
    assert config.tenants_without_autopilot == frozenset({"b.com"})
    assert config.managed_play_bind_status == {"c.com": "notBound"}


def test_simulator_command_rehearses_the_other_actions() -> None:
    """`batchsync simulator --devices-per-tenant 3 --autopilot-cooldown 0` serves the sample."""
    command = [sys.executable, "-m", "batchsync", "simulator", "--port", "0"]
    command += ["--devices-per-tenant", "3", "--autopilot-cooldown", "0"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        env: dict[str, str] = {}
        while "BATCHSYNC_REFRESH_TOKEN" not in env:
            line = proc.stderr.readline()
            assert line, "the simulator ended before printing its environment"
            if line.startswith("export "):
                name, value = shlex.split(line)[1].split("=", 1)
                env[name] = value
        url, ca = env["BATCHSYNC_GRAPH_URL"], env["BATCHSYNC_CA_BUNDLE"]

        def bearer(tenant: str) -> dict[str, str]:
            form = {
                "grant_type": "refresh_token",
                "client_id": env["BATCHSYNC_CLIENT_ID"],
                "refresh_token": env["BATCHSYNC_REFRESH_TOKEN"],
                "scope": f"{url}/.default",
            }
            answer = requests.post(
                f"{url}/{tenant}/oauth2/v2.0/token", data=form, verify=ca, timeout=10
            )
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        def call(method: str, path: str, tenant: str) -> requests.Response:
            return requests.request(
                method, url + path, headers=bearer(tenant), verify=ca, timeout=10
            )

        devices = call("GET", DEVICES, "anyone.example.com").json()["value"]
        syncs = [call("POST", sync_path("autopilot"), TENANT).status_code for _ in range(2)]
        time.sleep(3.2)  # autopilot_sync_s: the sync runs 3 s, then no cooldown is left
        after = call("POST", sync_path("autopilot"), TENANT).status_code
        proseware = call("GET", AUTOPILOT, "proseware.com").status_code
        adatum = call("GET", PLAY, "adatum.com").json()["bindStatus"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(devices) == 3
    assert (syncs, after) == ([204, 409], 204)
    assert (proseware, adatum) == (404, "notBound")
