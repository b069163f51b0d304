"""What the simulator does, as frozen values.

A running simulator holds one ``SimulatorConfig``; tests swap it whole with
``Simulator.set_config`` (use ``dataclasses.replace(sim.config, ...)`` to keep the client
secret). Tenant and connector names are normalised to lower case here, once, so lookups
elsewhere are plain set and dict membership.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping
from typing import Literal

__all__ = [
    "BIND_STATUSES",
    "CATEGORIES",
    "DEFAULT_CLIENT_ID",
    "FaultConfig",
    "RetryAfterForm",
    "SimulatorConfig",
    "ThrottleConfig",
    "VppSyncBody",
]

DEFAULT_CLIENT_ID = "5f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c"

RetryAfterForm = Literal["seconds", "float", "date", "none", "zero"]
_RETRY_AFTER_FORMS = ("seconds", "float", "date", "none", "zero")
VppSyncBody = Literal["entity", "value", "none"]
_VPP_SYNC_BODIES = ("entity", "value", "none")
# Intune's throttling categories (actions.md section 0) with the share of ``write_limit``
# each allows: "devices" (managedDevice) twice the "enrollment" one (exchange connectors,
# VPP tokens, and DEP, whose category is undocumented), "androidForWork" the same.
CATEGORIES = {"enrollment": 1, "devices": 2, "androidForWork": 1}
# androidManagedStoreAccountBindStatus (actions.md section 6).
BIND_STATUSES = frozenset({"notBound", "bound", "boundAndValidated", "unbinding"})


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleConfig:
    """Intune's per-tenant write limits (graph-notes.md: 100 writes per 20 s per app).

    On 429 the announced wait is ``max(time until the window frees a slot,
    FaultConfig.retry_after_s)``, written in the ``retry_after`` form ("seconds" rounds up
    to a whole second, at least 1; "float" rounds up to the millisecond; "date" rounds up to
    the next whole second; "none" sends no header, as Intune often does).

    Each tenant has one write window per Intune category (``CATEGORIES``), all ``window_s``
    long: ``category_limits[category]`` writes, else ``write_limit`` times the category's
    share (so ``write_limit`` keeps meaning the Exchange connectors' limit, and devices get
    twice it, as in Intune). Autopilot's sync is in no category: only its cooldown, 429 for
    ``autopilot_cooldown_s`` after the last accepted sync, with Retry-After (the cooldown left)
    only when ``autopilot_retry_after`` (the docs are silent). ``object_cooldown_s`` is
    ``connector_cooldown_s`` for managed devices, VPP tokens, DEP settings and managed
    Google Play (none is documented: 0, off, by default).
    """

    write_limit: int = 100
    window_s: float = 20.0
    retry_after: RetryAfterForm = "seconds"
    connector_cooldown_s: float = 0.0
    category_limits: Mapping[str, int] = dataclasses.field(default_factory=dict)
    object_cooldown_s: float = 0.0
    autopilot_cooldown_s: float = 600.0
    autopilot_retry_after: bool = False

    def __post_init__(self) -> None:
        if self.write_limit < 0 or self.window_s <= 0 or self.connector_cooldown_s < 0:
            raise ValueError("write_limit and connector_cooldown_s must be >= 0, window_s > 0")
        if self.retry_after not in _RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after must be one of {_RETRY_AFTER_FORMS}")
        unknown = set(self.category_limits) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"category_limits: unknown {sorted(unknown)}; use {list(CATEGORIES)}")
        if any(limit < 0 for limit in self.category_limits.values()):
            raise ValueError("category_limits must be >= 0")
        if self.object_cooldown_s < 0 or self.autopilot_cooldown_s < 0:
            raise ValueError("object_cooldown_s and autopilot_cooldown_s must be >= 0")
        object.__setattr__(self, "category_limits", dict(self.category_limits))

    def limit_for(self, category: str) -> int:
        """Writes per ``window_s`` per tenant in ``category`` (0: unlimited)."""
        explicit = self.category_limits.get(category)
        return explicit if explicit is not None else self.write_limit * CATEGORIES[category]


@dataclasses.dataclass(frozen=True, slots=True)
class FaultConfig:
    """Transient faults, drawn once per sync request that passed throttling.

    One ``random.Random(seed)`` draw picks at most one fault (the probabilities are stacked
    in ``probabilities()`` order and must sum to at most 1), so the same seed and the same
    request order give the same faults. ``http_429`` is a 429 storm independent of the write
    window (Retry-After ``retry_after_s`` in the throttle's form); ``retry_after_on_5xx`` adds
    Retry-After (``retry_after_s``, the throttle's form, "none" read as "seconds") to every
    5xx fault, not only ``http_503_retry_after``. ``http_503_first`` answers the first that
    many sync requests of each tenant 503 with Retry-After ``retry_after_s`` before any draw
    (a busy service on a tenant's very first requests).
    Per tenant, the first ``token_gateway_429_first`` token requests get a gateway's 429
    with an empty body (not JSON, no Retry-After), the next ``token_unavailable_first``
    Entra's 503 AADSTS90033.
    """

    seed: int = 0
    http_500: float = 0.0
    http_502: float = 0.0
    http_503: float = 0.0
    http_503_retry_after: float = 0.0
    http_504: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    slow_s: float = 60.0
    malformed: float = 0.0
    retry_after_s: float = 1.0
    token_unavailable_first: int = 0
    token_gateway_429_first: int = 0
    http_429: float = 0.0
    retry_after_on_5xx: bool = False
    http_503_first: int = 0

    def __post_init__(self) -> None:
        probabilities = self.probabilities()
        if any(not 0.0 <= p <= 1.0 for _, p in probabilities):
            raise ValueError("fault probabilities must be within [0, 1]")
        if sum(p for _, p in probabilities) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        counts = (self.token_unavailable_first, self.http_503_first, self.token_gateway_429_first)
        if self.slow_s < 0 or self.retry_after_s < 0 or min(counts) < 0:
            raise ValueError(
                "slow_s, retry_after_s, token_unavailable_first, http_503_first and "
                "token_gateway_429_first must be >= 0"
            )

    @classmethod
    def mixed(cls, rate: float, *, seed: int = 0) -> FaultConfig:
        """``rate`` of sync requests meet a fault, split evenly between 500, 503, 503 with
        Retry-After and a dropped connection (``batchsync simulator --fault-rate``)."""
        share = rate / 4
        return cls(
            seed=seed, http_500=share, http_503=share, http_503_retry_after=share, drop=share
        )

    def probabilities(self) -> tuple[tuple[str, float], ...]:
        """(fault name, probability) in draw order."""
        return (
            ("http_500", self.http_500),
            ("http_502", self.http_502),
            ("http_503", self.http_503),
            ("http_503_retry_after", self.http_503_retry_after),
            ("http_504", self.http_504),
            ("drop", self.drop),
            ("slow", self.slow),
            ("malformed", self.malformed),
            ("http_429", self.http_429),
        )


def _new_secret() -> str:
    return secrets.token_urlsafe(30)


def _lower_set(items: Iterable[str]) -> frozenset[str]:
    return frozenset(item.strip().lower() for item in items)


@dataclasses.dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """The registered app, the tenants' quirks and the service's pace.

    Open world: every tenant GUID or domain not in ``unknown_tenants`` exists, and every
    connector GUID not in ``missing_connectors`` exists for sync. Closed world for the
    other Intune objects (``_objects``): a tenant has the managed devices, VPP tokens and
    DEP settings its ``*_per_tenant`` count gives (else a count by hash of the tenant), less
    those in ``missing_objects``; every other id answers 404. Every tenant has one
    ``windowsAutopilotSettings`` (unless in ``tenants_without_autopilot``) and one
    ``androidManagedStoreAccountEnterpriseSettings`` (``managed_play_bind_status`` per
    tenant, else mostly ``boundAndValidated``). An accepted sync runs ``sync_duration_s``
    (``autopilot_sync_s`` for Autopilot, which answers 409 meanwhile) before the object's
    properties show it completed. ``vpp_sync_body``: the 200 body of ``syncLicenses``, the
    vppToken itself ("entity", what the SDK parses), wrapped in ``value`` (the docs' example)
    or none at all.
    """

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = dataclasses.field(default_factory=_new_secret, repr=False)
    certificate_pem: bytes | None = dataclasses.field(default=None, repr=False)
    token_lifetime_s: int = 3600
    token_latency_s: float = 0.0
    discovery_latency_s: float = 0.0
    graph_latency_s: float = 0.0
    throttle: ThrottleConfig = ThrottleConfig()
    faults: FaultConfig = FaultConfig()
    tenant_errors: Mapping[str, int] = dataclasses.field(default_factory=dict)
    unknown_tenants: frozenset[str] = frozenset()
    forbidden_tenants: frozenset[str] = frozenset()
    # Graph answers 401 to every token of these tenants, however fresh (a session revoked
    # for Graph while Entra still issues tokens): the "401 forever" mode.
    refused_token_tenants: frozenset[str] = frozenset()
    missing_connectors: frozenset[str] = frozenset()
    connectors_per_tenant: Mapping[str, int] | None = None
    # connector id -> the ``status`` its listing shows (none, connectionPending, connected,
    # disconnected); others show connected, or about 1 in 4 disconnected by a hash of the id.
    connector_status: Mapping[str, str] = dataclasses.field(default_factory=dict)
    page_size: int = 2
    auto_approve_device_code: bool = True
    revoked_refresh_tokens: bool = False
    gdap_customers: tuple[str, ...] = ()
    devices_per_tenant: Mapping[str, int] | None = None
    default_devices_per_tenant: int | None = None  # tenants not in devices_per_tenant
    vpp_tokens_per_tenant: Mapping[str, int] | None = None
    dep_settings_per_tenant: Mapping[str, int] | None = None
    missing_objects: frozenset[str] = frozenset()
    tenants_without_autopilot: frozenset[str] = frozenset()
    managed_play_bind_status: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # kind ("device", "vpp", "dep", "connector") -> page size; else 100 for devices,
    # ``page_size`` for the others.
    page_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    sync_duration_s: float = 1.0
    autopilot_sync_s: float = 3.0
    vpp_sync_body: VppSyncBody = "entity"

    def __post_init__(self) -> None:
        if self.page_size < 1 or any(size < 1 for size in self.page_sizes.values()):
            raise ValueError("page_size and page_sizes must be >= 1")
        if self.sync_duration_s < 0 or self.autopilot_sync_s < 0:
            raise ValueError("sync_duration_s and autopilot_sync_s must be >= 0")
        if self.default_devices_per_tenant is not None and self.default_devices_per_tenant < 0:
            raise ValueError("default_devices_per_tenant must be >= 0")
        if self.vpp_sync_body not in _VPP_SYNC_BODIES:
            raise ValueError(f"vpp_sync_body must be one of {_VPP_SYNC_BODIES}")
        wrong = set(self.managed_play_bind_status.values()) - BIND_STATUSES
        if wrong:
            raise ValueError(f"managed_play_bind_status: {sorted(wrong)} not in {BIND_STATUSES}")
        # Normalise once (frozen: object.__setattr__ is the dataclass-sanctioned way).
        lowered = {
            "tenant_errors": {k.lower(): int(v) for k, v in self.tenant_errors.items()},
            "unknown_tenants": _lower_set(self.unknown_tenants),
            "forbidden_tenants": _lower_set(self.forbidden_tenants),
            "refused_token_tenants": _lower_set(self.refused_token_tenants),
            "missing_connectors": _lower_set(self.missing_connectors),
            "gdap_customers": tuple(self.gdap_customers),
            "connector_status": {k.lower(): v for k, v in self.connector_status.items()},
            "missing_objects": _lower_set(self.missing_objects),
            "tenants_without_autopilot": _lower_set(self.tenants_without_autopilot),
            "managed_play_bind_status": {
                k.lower(): v for k, v in self.managed_play_bind_status.items()
            },
            "page_sizes": dict(self.page_sizes),
        }
        for name in (
            "connectors_per_tenant",
            "devices_per_tenant",
            "vpp_tokens_per_tenant",
            "dep_settings_per_tenant",
        ):
            counts: Mapping[str, int] | None = getattr(self, name)
            if counts is not None:
                lowered[name] = {k.lower(): int(v) for k, v in counts.items()}
        for name, value in lowered.items():
            object.__setattr__(self, name, value)
