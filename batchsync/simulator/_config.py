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
    "DEFAULT_CLIENT_ID",
    "FaultConfig",
    "RetryAfterForm",
    "SimulatorConfig",
    "ThrottleConfig",
]

DEFAULT_CLIENT_ID = "5f1c0e2a-4b3d-4c6e-9a7b-0d1e2f3a4b5c"

RetryAfterForm = Literal["seconds", "float", "date", "none"]
_RETRY_AFTER_FORMS = ("seconds", "float", "date", "none")


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleConfig:
    """Intune's per-tenant write limit (graph-notes.md: 100 writes per 20 s per app).

    On 429 the announced wait is ``max(time until the window frees a slot,
    FaultConfig.retry_after_s)``, written in the ``retry_after`` form ("seconds" rounds up
    to a whole second, at least 1; "float" rounds up to the millisecond; "date" rounds up to
    the next whole second; "none" sends no header, as Intune often does).
    """

    write_limit: int = 100
    window_s: float = 20.0
    retry_after: RetryAfterForm = "seconds"
    connector_cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        if self.write_limit < 0 or self.window_s <= 0 or self.connector_cooldown_s < 0:
            raise ValueError("write_limit and connector_cooldown_s must be >= 0, window_s > 0")
        if self.retry_after not in _RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after must be one of {_RETRY_AFTER_FORMS}")


@dataclasses.dataclass(frozen=True, slots=True)
class FaultConfig:
    """Transient faults, drawn once per sync request that passed throttling.

    One ``random.Random(seed)`` draw picks at most one fault (the probabilities are stacked
    in ``probabilities()`` order and must sum to at most 1), so the same seed and the same
    request order give the same faults. ``http_429`` is a 429 storm independent of the write
    window (Retry-After ``retry_after_s`` in the throttle's form); ``retry_after_on_5xx`` adds
    Retry-After (``retry_after_s``, the throttle's form, "none" read as "seconds") to every
    5xx fault, not only ``http_503_retry_after``.
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
    http_429: float = 0.0
    retry_after_on_5xx: bool = False

    def __post_init__(self) -> None:
        probabilities = self.probabilities()
        if any(not 0.0 <= p <= 1.0 for _, p in probabilities):
            raise ValueError("fault probabilities must be within [0, 1]")
        if sum(p for _, p in probabilities) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        if self.slow_s < 0 or self.retry_after_s < 0 or self.token_unavailable_first < 0:
            raise ValueError("slow_s, retry_after_s and token_unavailable_first must be >= 0")

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
    connector GUID not in ``missing_connectors`` exists for sync.
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
    missing_connectors: frozenset[str] = frozenset()
    connectors_per_tenant: Mapping[str, int] | None = None
    # connector id -> the ``status`` its listing shows (none, connectionPending, connected,
    # disconnected); others show connected, or about 1 in 4 disconnected by a hash of the id.
    connector_status: Mapping[str, str] = dataclasses.field(default_factory=dict)
    page_size: int = 2
    auto_approve_device_code: bool = True
    revoked_refresh_tokens: bool = False
    gdap_customers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be >= 1")
        # Normalise once (frozen: object.__setattr__ is the dataclass-sanctioned way).
        lowered = {
            "tenant_errors": {k.lower(): int(v) for k, v in self.tenant_errors.items()},
            "unknown_tenants": _lower_set(self.unknown_tenants),
            "forbidden_tenants": _lower_set(self.forbidden_tenants),
            "missing_connectors": _lower_set(self.missing_connectors),
            "gdap_customers": tuple(self.gdap_customers),
            "connector_status": {k.lower(): v for k, v in self.connector_status.items()},
        }
        if self.connectors_per_tenant is not None:
            lowered["connectors_per_tenant"] = {
                k.lower(): int(v) for k, v in self.connectors_per_tenant.items()
            }
        for name, value in lowered.items():
            object.__setattr__(self, name, value)
