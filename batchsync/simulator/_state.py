"""The simulator's live state and the statistics tests read.

Rules: handlers run on the server's event loop only, so the state needs no lock. Stats are
read from other threads too: they are plain counters, and ``snapshot`` copies each in one
C-level call, which the GIL makes atomic. Time is passed in (``now`` is the server loop's
``loop.time()``), so the throttling window can be tested without a clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections import Counter, deque
from collections.abc import Iterator

from ._config import SimulatorConfig
from ._tokens import RegisteredCertificate, TokenMint

__all__ = [
    "PARTNER_TENANT_ID",
    "TECHNICIAN_NAME",
    "TECHNICIAN_OID",
    "TECHNICIAN_UPN",
    "Core",
    "DeviceCode",
    "SimulatorStats",
    "SyncEvent",
    "TenantLimiter",
]

# The pre-signed-in technician: a partner (MSP) account whose refresh token works at any tenant.
PARTNER_TENANT_ID = "0c9a2f4e-6b1d-4e8a-9f3c-5d7b1a2e4c6f"
TECHNICIAN_OID = "3e8d1b7a-2c4f-4a6e-8b0d-9f1e3c5a7b2d"
TECHNICIAN_UPN = "technician@fabrikam-partner.onmicrosoft.com"
TECHNICIAN_NAME = "Simulated Technician"


@dataclasses.dataclass(frozen=True, slots=True)
class SyncEvent:
    """One sync request (any action's POST) the simulator answered.

    ``status`` 0: the connection was dropped (fault); ``tenant`` "": the token was refused.
    A request the client abandoned before its answer (a "slow" fault) is not logged.
    ``action`` is the contract's action name (``exchange-connector-sync``, ``device-sync``,
    ...); ``connector`` keeps its first name but holds the object id of any action: the
    URL's id (canonical when a GUID), or the tenant's singleton id for the tenant-level
    actions ("" when the token was refused); ``object_id`` reads it under its general name.
    ``sync_type`` is None for actions without one.
    """

    tenant: str
    connector: str
    sync_type: str | None
    client_request_id: str
    request_id: str
    status: int
    at: float  # epoch seconds
    action: str = "exchange-connector-sync"

    @property
    def object_id(self) -> str:
        return self.connector


@dataclasses.dataclass(slots=True, eq=False)
class SimulatorStats:
    """What the simulator saw; ``snapshot()`` gives a copy safe to keep or read elsewhere.

    Tenants are lower-cased as they appear in the authority URL (Entra) or in the access
    token (Graph); Graph requests with a refused token count only in ``unauthorized``.
    ``token_requests`` is keyed by (tenant, grant), the grant being ``client_credentials``,
    ``refresh_token`` or ``device_code``; ``faults`` by fault name (``http_500``, ``drop``, ...).

    Sync POSTs of every action count in ``sync_requests`` (by tenant) and ``sync_log``;
    accepted ones (204, or VPP's 200) in ``syncs``, by object id (the singleton's id for
    Autopilot and managed Google Play, see ``singleton_id``). ``action_requests`` and
    ``action_syncs`` count them by (action, tenant), ``action_statuses`` the answers by
    (action, HTTP status, 0 for a dropped connection). ``throttled`` counts every 429 by
    tenant, Autopilot's cooldown 429 included (409s only in ``action_statuses``).
    """

    token_requests: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    discovery_requests: Counter[str] = dataclasses.field(default_factory=Counter)
    graph_requests: Counter[str] = dataclasses.field(default_factory=Counter)
    sync_requests: Counter[str] = dataclasses.field(default_factory=Counter)
    throttled: Counter[str] = dataclasses.field(default_factory=Counter)
    syncs: Counter[str] = dataclasses.field(default_factory=Counter)
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    sync_log: list[SyncEvent] = dataclasses.field(default_factory=list)
    action_requests: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    action_syncs: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    action_statuses: Counter[tuple[str, int]] = dataclasses.field(default_factory=Counter)
    requests_during_pause: int = 0
    unauthorized: int = 0
    max_concurrent_graph: int = 0
    max_concurrent_tokens: int = 0

    def snapshot(self) -> SimulatorStats:
        return SimulatorStats(
            token_requests=Counter(self.token_requests),
            discovery_requests=Counter(self.discovery_requests),
            graph_requests=Counter(self.graph_requests),
            sync_requests=Counter(self.sync_requests),
            throttled=Counter(self.throttled),
            syncs=Counter(self.syncs),
            faults=Counter(self.faults),
            sync_log=list(self.sync_log),
            action_requests=Counter(self.action_requests),
            action_syncs=Counter(self.action_syncs),
            action_statuses=Counter(self.action_statuses),
            requests_during_pause=self.requests_during_pause,
            unauthorized=self.unauthorized,
            max_concurrent_graph=self.max_concurrent_graph,
            max_concurrent_tokens=self.max_concurrent_tokens,
        )

    def reset(self) -> None:
        """Zero everything in place (objects already handed out see the reset)."""
        for counter in (
            self.token_requests,
            self.discovery_requests,
            self.graph_requests,
            self.sync_requests,
            self.throttled,
            self.syncs,
            self.faults,
            self.action_requests,
            self.action_syncs,
            self.action_statuses,
        ):
            counter.clear()
        self.sync_log.clear()
        self.requests_during_pause = self.unauthorized = 0
        self.max_concurrent_graph = self.max_concurrent_tokens = 0


class TenantLimiter:
    """Per-tenant sliding write windows, announced pauses and per-object cooldowns.

    Each tenant has one write window per Intune category (``ThrottleConfig.limit_for``).
    Two kinds of pause: ``announced`` (any Retry-After told to a tenant, used to count
    requests that did not wait) and ``enforced`` (a tenant-throttling 429's Retry-After,
    during which every write of the tenant in that category gets 429 again, as Graph keeps
    counting). An announced pause is keyed by the tenant, or by ``object_key(tenant, id)``
    when it is one object's cooldown (Autopilot's, and the other objects'
    ``object_cooldown_s``): then only requests for that object count as not waiting.

    A request that arrives within ``in_flight_s`` after a pause was announced was on its way
    before the client could read the announcement (a TLS handshake on a busy loop can take a
    good part of that), and one within ``skew_s`` of its end is clock skew: neither counts as
    arriving during the pause.
    """

    def __init__(self) -> None:
        self._writes: dict[tuple[str, str], deque[float]] = {}
        self._enforced_until: dict[tuple[str, str], float] = {}
        self._announced_until: dict[str, float] = {}
        self._announced_at: dict[str, float] = {}
        self._last_sync: dict[tuple[str, str], float] = {}

    @staticmethod
    def object_key(tenant: str, object_id: str) -> str:
        """The key of one object's announced pause (tenants are keyed by themselves)."""
        return f"{tenant}/{object_id}"

    def enforced_pause_left(self, tenant: str, now: float, *, category: str) -> float:
        return max(0.0, self._enforced_until.get((tenant, category), 0.0) - now)

    def within_announced_pause(
        self, key: str, now: float, *, in_flight_s: float, skew_s: float
    ) -> bool:
        start = self._announced_at.get(key, 0.0) + in_flight_s
        return start <= now < self._announced_until.get(key, 0.0) - skew_s

    def announce(
        self, key: str, now: float, until: float, *, enforce: tuple[str, str] | None = None
    ) -> None:
        """Record a Retry-After told at ``now`` for ``key`` (a tenant or an object key),
        ending at ``until``; ``enforce`` (tenant, category) makes it an enforced pause."""
        previous_until = self._announced_until.get(key, 0.0)
        if now >= previous_until:  # a new pause, not the extension of a running one
            self._announced_at[key] = now
        self._announced_until[key] = max(until, previous_until)
        if enforce is not None:
            self._enforced_until[enforce] = max(until, self._enforced_until.get(enforce, 0.0))

    def admit_write(
        self, tenant: str, now: float, *, limit: int, window_s: float, category: str
    ) -> float:
        """Record a write and return 0.0, or return the seconds until a slot frees."""
        if limit <= 0:
            return 0.0
        writes = self._writes.setdefault((tenant, category), deque())
        while writes and writes[0] <= now - window_s:
            writes.popleft()
        if len(writes) >= limit:
            return max(writes[0] + window_s - now, 1e-3)
        writes.append(now)
        return 0.0

    def cooldown_left(self, tenant: str, object_id: str, now: float, *, cooldown_s: float) -> float:
        """Seconds left of ``cooldown_s`` since the object's last accepted sync (0: none)."""
        last = self._last_sync.get((tenant, object_id))
        if cooldown_s <= 0 or last is None:
            return 0.0
        return max(0.0, last + cooldown_s - now)

    def note_sync(self, tenant: str, object_id: str, now: float) -> None:
        self._last_sync[(tenant, object_id)] = now


@dataclasses.dataclass(slots=True)
class DeviceCode:
    """A pending device-code sign-in."""

    user_code: str
    tenant: str
    scope: str
    expires_at: float  # loop time
    approved: bool


class Core:
    """What the Entra and Graph handlers share: config, tokens, limiter, stats."""

    def __init__(self, config: SimulatorConfig, url: str) -> None:
        self.url = url
        self.mint = TokenMint()
        self.stats = SimulatorStats()
        self.limiter = TenantLimiter()
        self.device_codes: dict[str, DeviceCode] = {}
        # (tenant, object id) -> epoch s of its last accepted sync, for every kind
        self.last_synced: dict[tuple[str, str], float] = {}
        self._graph_in_flight = 0
        self._tokens_in_flight = 0
        self.set_config(config)

    def set_config(self, config: SimulatorConfig) -> None:
        """Swap the config; the fault sequence and the token-unavailable counts restart."""
        self.cert = (
            RegisteredCertificate.from_pem(config.certificate_pem)
            if config.certificate_pem
            else None
        )
        self.rng = random.Random(config.faults.seed)
        self.token_attempts: Counter[str] = Counter()
        self.sync_attempts: Counter[str] = Counter()  # per tenant, for ``http_503_first``
        self.config = config

    def draw_fault(self) -> str | None:
        """One seeded draw: the fault to inject into this sync request, if any."""
        roll = self.rng.random()
        edge = 0.0
        for name, probability in self.config.faults.probabilities():
            edge += probability
            if roll < edge:
                return name
        return None

    @contextlib.contextmanager
    def graph_in_flight(self) -> Iterator[None]:
        self._graph_in_flight += 1
        self.stats.max_concurrent_graph = max(
            self.stats.max_concurrent_graph, self._graph_in_flight
        )
        try:
            yield
        finally:
            self._graph_in_flight -= 1

    @contextlib.contextmanager
    def tokens_in_flight(self) -> Iterator[None]:
        self._tokens_in_flight += 1
        self.stats.max_concurrent_tokens = max(
            self.stats.max_concurrent_tokens, self._tokens_in_flight
        )
        try:
            yield
        finally:
            self._tokens_in_flight -= 1
