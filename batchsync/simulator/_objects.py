"""The Intune objects each tenant has: deterministic ids, counts and Graph properties.

Rules (what the listings, GETs and sync actions agree on):

1. Ids are ``uuid5(NAMESPACES[kind], tenant + str(index))`` for the collections
   (``connector``, ``device``, ``vpp``, ``dep``) and ``uuid5(NAMESPACES[kind], tenant)``
   for the two singletons (``autopilot``, ``managed_play``), the tenant in lower case, so
   tests, the demo and benchmarks name the same objects the simulator serves.
2. Counts: the config's ``*_per_tenant`` mapping, else a count by hash of the tenant:
   0-3 connectors, 0-5 devices (``default_devices_per_tenant`` overrides), 0-2 VPP tokens,
   0-1 DEP settings. Objects in ``missing_objects`` (``missing_connectors`` for connectors)
   are left out of listings and answer 404.
3. Every tenant has the Autopilot singleton unless in ``tenants_without_autopilot``, and the
   managed Google Play one, whose ``bindStatus`` is ``managed_play_bind_status[tenant]``,
   else ``boundAndValidated`` (about 1 tenant in 6 ``notBound``, by hash).
4. Properties are stable per id (a SHA-256 of it picks OS, compliance, names...), except the
   sync timestamps and statuses, which follow the last accepted sync (``synced_at``, epoch
   seconds): a sync runs ``sync_duration_s`` (``autopilot_sync_s``) and then shows completed.

Id lists are cached per (kind, tenant, count), so 2,000 devices in each of 50 tenants cost
one uuid5 per device once, and a lookup by id is a dict lookup.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from ._config import SimulatorConfig

__all__ = [
    "COLLECTION_KINDS",
    "COMPLIANCE_STATES",
    "CONNECTOR_NAMESPACE",
    "NAMESPACES",
    "SINGLETON_KINDS",
    "ObjectKind",
    "all_ids",
    "bind_status",
    "connector_ids",
    "connector_properties",
    "device_os",
    "object_count",
    "object_ids",
    "object_index",
    "object_properties",
    "properties",
    "singleton_id",
    "tenant_domain",
]

ObjectKind = Literal["connector", "device", "vpp", "dep", "autopilot", "managed_play"]
COLLECTION_KINDS: tuple[ObjectKind, ...] = ("connector", "device", "vpp", "dep")
SINGLETON_KINDS: tuple[ObjectKind, ...] = ("autopilot", "managed_play")

CONNECTOR_NAMESPACE = uuid.UUID("8a4c5e1f-2b3d-4f6a-9c7e-1d2b3a4c5e6f")
NAMESPACES: Mapping[ObjectKind, uuid.UUID] = {
    "connector": CONNECTOR_NAMESPACE,
    "device": uuid.UUID("3d6f1b2a-7c4e-4a9d-8b1f-5e2c7a9d0b3e"),
    "vpp": uuid.UUID("b5e2a7c1-4d8f-4e3a-9c6b-1f7d2e8a4b5c"),
    "dep": uuid.UUID("e1c4b7a2-5f8d-4b6e-a3c9-7d2f5e1b8a4c"),
    "autopilot": uuid.UUID("7a2d5f8c-1b4e-4c7a-9e2d-6b3f8a1c5d7e"),
    "managed_play": uuid.UUID("c8f3a6d1-2e5b-4f8c-b1a4-9d6e3c7f2a5b"),
}
_HASH_COUNTS: Mapping[ObjectKind, int] = {"connector": 4, "device": 6, "vpp": 3, "dep": 2}
_COUNT_FIELDS: Mapping[ObjectKind, str] = {
    "connector": "connectors_per_tenant",
    "device": "devices_per_tenant",
    "vpp": "vpp_tokens_per_tenant",
    "dep": "dep_settings_per_tenant",
}
_EPOCH_2024 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
_EPOCH_2025 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
_DAY_S = 86_400
_NEVER = "0001-01-01T00:00:00Z"  # how Graph writes a DateTimeOffset never set
_DEFAULT = SimulatorConfig(client_secret="")

# operatingSystem by digest[0] % 10: half Windows, then iOS, Android, macOS.
_OS = ("Windows",) * 5 + ("iOS",) * 2 + ("Android",) * 2 + ("macOS",)
_OS_VERSIONS = {
    "Windows": ("10.0.19045.4412", "10.0.22631.3593", "10.0.26100.1150"),
    "iOS": ("17.5.1", "17.6", "18.0.1"),
    "Android": ("13", "14", "15"),
    "macOS": ("14.5", "14.6.1", "15.0"),
}
_HARDWARE = {
    "Windows": (("Surface Laptop 5", "Microsoft Corporation"), ("Latitude 7440", "Dell Inc.")),
    "iOS": (("iPhone 15", "Apple"), ("iPad Air (5th generation)", "Apple")),
    "Android": (("Galaxy S23", "samsung"), ("Pixel 8", "Google")),
    "macOS": (("MacBook Air (M2, 2022)", "Apple"), ("MacBook Pro (14-inch, 2023)", "Apple")),
}
_ENROLLMENT = {
    "Windows": "windowsAzureADJoin",
    "iOS": "appleBulkWithUser",
    "Android": "androidEnterpriseFullyManaged",
    "macOS": "appleBulkWithUser",
}
# complianceState by digest[2] % 20: mostly compliant.
_COMPLIANCE = ("compliant",) * 14 + ("noncompliant",) * 3 + ("inGracePeriod", "unknown", "error")
COMPLIANCE_STATES = frozenset(
    {"unknown", "compliant", "noncompliant", "conflict", "error", "inGracePeriod", "configManager"}
)


def tenant_domain(tenant: str) -> str:
    """A domain to name the tenant's people and servers by."""
    return tenant if "." in tenant else f"tenant-{tenant[:8]}.onmicrosoft.com"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(object_id: str) -> bytes:
    return hashlib.sha256(object_id.encode()).digest()


def object_count(kind: ObjectKind, tenant: str, config: SimulatorConfig | None = None) -> int:
    """How many objects of ``kind`` the tenant has, before ``missing_objects`` is applied."""
    tenant = tenant.lower()
    config = config or _DEFAULT
    if kind == "autopilot":
        return 0 if tenant in config.tenants_without_autopilot else 1
    if kind == "managed_play":
        return 1
    counts: Mapping[str, int] | None = getattr(config, _COUNT_FIELDS[kind])
    if counts is not None and tenant in counts:
        return counts[tenant]
    if kind == "device" and config.default_devices_per_tenant is not None:
        return config.default_devices_per_tenant
    return hashlib.sha256(_hash_key(kind, tenant)).digest()[0] % _HASH_COUNTS[kind]


def _hash_key(kind: ObjectKind, tenant: str) -> bytes:
    # connectors keep the key they always had (the bare tenant): their counts are unchanged
    return (tenant if kind == "connector" else f"{kind}:{tenant}").encode()


@functools.lru_cache(maxsize=1024)
def all_ids(kind: ObjectKind, tenant: str, count: int) -> tuple[str, ...]:
    """The ids of the tenant's first ``count`` objects of ``kind`` (missing ones included)."""
    namespace = NAMESPACES[kind]
    if kind in SINGLETON_KINDS:
        return (str(uuid.uuid5(namespace, tenant)),) if count else ()
    return tuple(str(uuid.uuid5(namespace, tenant + str(index))) for index in range(count))


@functools.lru_cache(maxsize=1024)
def _positions(kind: ObjectKind, tenant: str, count: int) -> Mapping[str, int]:
    return {object_id: index for index, object_id in enumerate(all_ids(kind, tenant, count))}


def _missing(kind: ObjectKind, config: SimulatorConfig) -> frozenset[str]:
    return config.missing_connectors if kind == "connector" else config.missing_objects


def object_ids(kind: ObjectKind, tenant: str, config: SimulatorConfig | None = None) -> list[str]:
    """The ids the tenant's listing (or singleton GET) shows for ``kind``, in listing order."""
    tenant = tenant.lower()
    config = config or _DEFAULT
    missing = _missing(kind, config)
    ids = all_ids(kind, tenant, object_count(kind, tenant, config))
    return [object_id for object_id in ids if object_id not in missing] if missing else list(ids)


def connector_ids(tenant: str, config: SimulatorConfig | None = None) -> list[str]:
    """The connector ids ``GET exchangeConnectors`` lists for ``tenant``.

    ``config.connectors_per_tenant[tenant]`` of them, else 0 to 3 chosen by a hash of the
    tenant; ids are ``uuid5(CONNECTOR_NAMESPACE, tenant + str(index))``; connectors in
    ``missing_connectors`` are left out.
    """
    return object_ids("connector", tenant, config)


def singleton_id(kind: ObjectKind, tenant: str) -> str:
    """The id of the tenant's ``autopilot`` or ``managed_play`` setting (also its key in
    ``stats.syncs``), whether or not the tenant has it."""
    if kind not in SINGLETON_KINDS:
        raise ValueError(f"{kind!r} is not a singleton kind {SINGLETON_KINDS}")
    return all_ids(kind, tenant.lower(), 1)[0]


def object_index(
    kind: ObjectKind, tenant: str, object_id: str, config: SimulatorConfig
) -> int | None:
    """The object's position among the tenant's, or None: not the tenant's, or missing."""
    if object_id in _missing(kind, config):
        return None
    return _positions(kind, tenant, object_count(kind, tenant, config)).get(object_id)


def bind_status(tenant: str, config: SimulatorConfig) -> str:
    """The tenant's managed Google Play ``bindStatus``."""
    configured = config.managed_play_bind_status.get(tenant)
    if configured is not None:
        return configured
    return "notBound" if _digest(f"managed_play:{tenant}")[0] % 6 == 0 else "boundAndValidated"


def object_properties(
    kind: ObjectKind, tenant: str, object_id: str, config: SimulatorConfig | None = None
) -> dict[str, Any]:
    """The Graph properties the tenant's object shows before any sync (for tests)."""
    tenant, object_id, config = tenant.lower(), object_id.lower(), config or _DEFAULT
    index = _positions(kind, tenant, object_count(kind, tenant, config)).get(object_id)
    return properties(kind, tenant, object_id, index, config, synced_at=None, now=0.0)


def properties(
    kind: ObjectKind,
    tenant: str,
    object_id: str,
    index: int | None,
    config: SimulatorConfig,
    *,
    synced_at: float | None,
    now: float,
) -> dict[str, Any]:
    """The object's properties at ``now`` (epoch s), its last accepted sync at ``synced_at``."""
    if kind == "connector":
        return connector_properties(tenant, object_id, index, config, synced_at=synced_at)
    duration = config.autopilot_sync_s if kind == "autopilot" else config.sync_duration_s
    done_at = None if synced_at is None else synced_at + duration
    running = done_at is not None and now < done_at
    return _BUILDERS[kind](
        tenant, object_id, index or 0, config, synced_at, None if running else done_at
    )


def connector_properties(
    tenant: str,
    connector: str,
    index: int | None,
    config: SimulatorConfig,
    *,
    synced_at: float | None,
) -> dict[str, Any]:
    """A connector's properties, stable per id; mostly connected, about 1 in 4 not
    (``connector_status`` says otherwise for the ids it names)."""
    digest = _digest(connector)
    domain = tenant_domain(tenant)
    if synced_at is None:  # a stable moment before the connector's end of support
        synced_at = _EPOCH_2024 + int.from_bytes(digest[:3]) % 4_000_000
    number = (index or 0) + 1
    return {
        "id": connector,
        "lastSyncDateTime": _stamp(synced_at),
        "status": config.connector_status.get(connector)
        or ("disconnected" if index is not None and digest[0] % 4 == 0 else "connected"),
        "primarySmtpAddress": f"intune-connector{number}@{domain}",
        "serverName": f"EXCH{number:02d}.{domain}",
        "connectorServerName": f"CONN{number:02d}.{domain}",
        "exchangeConnectorType": "onPremises",
        "version": "19.4.1111.0",
        "exchangeAlias": f"intune-connector{number}",
        "exchangeOrganization": domain.split(".", 1)[0],
    }


def device_os(object_id: str) -> tuple[str, str]:
    """(operatingSystem, complianceState) of a device: what ``$filter`` reads, cheaply."""
    digest = _digest(object_id)
    return _OS[digest[0] % 10], _COMPLIANCE[digest[2] % 20]


def _device(
    tenant: str,
    object_id: str,
    index: int,
    config: SimulatorConfig,
    synced_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    digest = _digest(object_id)
    hexed = digest.hex()
    system, compliance = _OS[digest[0] % 10], _COMPLIANCE[digest[2] % 20]
    model, manufacturer = _HARDWARE[system][digest[5] % 2]
    domain = tenant_domain(tenant)
    user = index % 250 + 1
    upn = f"user{user}@{domain}"
    names = {"Windows": "DESKTOP-", "iOS": "iPhone-", "Android": "Android-", "macOS": "Mac-"}
    name = names[system] + hexed[:7].upper()
    agent = "mdm"
    if system == "Windows" and digest[3] % 4 == 0:
        agent = "configurationManagerClientMdm"  # co-managed
    enrolled = _EPOCH_2024 + int.from_bytes(digest[6:9]) % (300 * _DAY_S)
    last_sync = done_at or _EPOCH_2025 + int.from_bytes(digest[9:12]) % (30 * _DAY_S)
    actions: list[dict[str, Any]] = []
    if synced_at is not None:
        actions.append(
            {
                "actionName": "syncDevice",
                "actionState": "pending" if done_at is None else "done",
                "startDateTime": _stamp(synced_at),
                "lastUpdatedDateTime": _stamp(done_at or synced_at),
            }
        )
    return {
        "id": object_id,
        "deviceName": name,
        "managedDeviceName": f"{upn.split('@')[0]}_{system}_{hexed[7:11]}",
        "userId": str(uuid.uuid5(NAMESPACES["device"], f"{tenant}/user{user}")),
        "userPrincipalName": upn,
        "userDisplayName": f"User {user}",
        "emailAddress": upn,
        "operatingSystem": system,
        "osVersion": _OS_VERSIONS[system][digest[1] % 3],
        "complianceState": compliance,
        "managementAgent": agent,
        "managementState": "managed",
        "managedDeviceOwnerType": "personal"
        if system in ("iOS", "Android") and digest[4] % 3 == 0
        else "company",
        "deviceEnrollmentType": _ENROLLMENT[system],
        "deviceRegistrationState": "registered",
        "enrolledDateTime": _stamp(enrolled),
        "lastSyncDateTime": _stamp(last_sync),
        "model": model,
        "manufacturer": manufacturer,
        "serialNumber": hexed[12:24].upper(),
        "azureADDeviceId": str(uuid.uuid5(NAMESPACES["device"], f"aad/{object_id}")),
        "deviceActionResults": actions,
    }


def _vpp(
    tenant: str,
    object_id: str,
    index: int,
    config: SimulatorConfig,
    synced_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    digest = _digest(object_id)
    domain = tenant_domain(tenant)
    expired = digest[0] % 8 == 0
    expires = _EPOCH_2025 + (-30 if expired else 200 + digest[1]) * _DAY_S
    if synced_at is None:
        status, last = "completed", _EPOCH_2025 + int.from_bytes(digest[2:5]) % (30 * _DAY_S)
    elif done_at is None:
        status, last = "inProgress", synced_at
    else:
        status, last = ("failed" if expired else "completed"), done_at
    return {
        "id": object_id,
        "organizationName": domain.split(".", 1)[0].title(),
        "vppTokenAccountType": "education" if digest[3] % 5 == 0 else "business",
        "appleId": f"vpp-admin{index + 1}@{domain}",
        "expirationDateTime": _stamp(expires),
        "lastSyncDateTime": _stamp(last),
        # A fake secret, stable per id: clients must never log it (tests look for it).
        "token": "VPP." + hashlib.sha256(b"vpp-secret:" + object_id.encode()).hexdigest(),
        "lastModifiedDateTime": _stamp(expires - 365 * _DAY_S),
        "state": "expired" if expired else "valid",
        "lastSyncStatus": status,
        "automaticallyUpdateApps": digest[4] % 2 == 0,
        "countryOrRegion": "us",
    }


def _dep(
    tenant: str,
    object_id: str,
    index: int,
    config: SimulatorConfig,
    synced_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    digest = _digest(object_id)
    domain = tenant_domain(tenant)
    triggered = _EPOCH_2025 + int.from_bytes(digest[0:3]) % (30 * _DAY_S)
    succeeded = triggered + 60
    if synced_at is not None:
        triggered = synced_at
        if done_at is not None:
            succeeded = done_at
    return {
        "id": object_id,
        "appleIdentifier": f"dep-admin{index + 1}@{domain}",
        "tokenExpirationDateTime": _stamp(_EPOCH_2025 + (200 + digest[3]) * _DAY_S),
        "lastModifiedDateTime": _stamp(_EPOCH_2024 + digest[4] * _DAY_S),
        "lastSuccessfulSyncDateTime": _stamp(succeeded),
        "lastSyncTriggeredDateTime": _stamp(triggered),
        "shareTokenWithSchoolDataSyncService": False,
        "lastSyncErrorCode": 0,
        "tokenType": "dep",
        "tokenName": f"{domain.split('.', 1)[0].title()} ADE {index + 1}",
        "syncedDeviceCount": digest[5] % 200,
        "dataSharingConsentGranted": True,
        "roleScopeTagIds": ["0"],
    }


def _autopilot(
    tenant: str,
    object_id: str,
    index: int,
    config: SimulatorConfig,
    synced_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    digest = _digest(object_id)
    last = _EPOCH_2025 + int.from_bytes(digest[0:3]) % (30 * _DAY_S)
    manual = last - 3600
    status = "completed"
    if synced_at is not None:
        manual = synced_at
        if done_at is None:
            status = "inProgress"
        else:
            last = done_at
    return {
        "@odata.type": "#microsoft.graph.windowsAutopilotSettings",
        "id": object_id,
        "lastSyncDateTime": _stamp(last),
        "lastManualSyncTriggerDateTime": _stamp(manual),
        "syncStatus": status,
    }


def _managed_play(
    tenant: str,
    object_id: str,
    index: int,
    config: SimulatorConfig,
    synced_at: float | None,
    done_at: float | None,
) -> dict[str, Any]:
    digest = _digest(object_id)
    domain = tenant_domain(tenant)
    binding = bind_status(tenant, config)
    bound = binding in ("bound", "boundAndValidated")
    last = _stamp(_EPOCH_2025 + int.from_bytes(digest[0:3]) % (30 * _DAY_S))
    if done_at is not None:
        last = _stamp(done_at)
    elif not bound:
        last = _NEVER
    return {
        "@odata.type": "#microsoft.graph.androidManagedStoreAccountEnterpriseSettings",
        "id": object_id,
        "bindStatus": binding,
        "lastAppSyncDateTime": last,
        "lastAppSyncStatus": "success" if bound or done_at is not None else "none",
        "ownerUserPrincipalName": f"android-admin@{domain}" if bound else None,
        "ownerOrganizationName": domain.split(".", 1)[0].title() if bound else None,
        "lastModifiedDateTime": _stamp(_EPOCH_2024 + digest[3] * _DAY_S),
        "enrollmentTarget": "targetedAsEnrollmentRestrictions",
        "targetGroupIds": [],
        "deviceOwnerManagementEnabled": bound,
    }


_BUILDERS = {
    "device": _device,
    "vpp": _vpp,
    "dep": _dep,
    "autopilot": _autopilot,
    "managed_play": _managed_play,
}
