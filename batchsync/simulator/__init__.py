"""A local Microsoft Entra ID + Microsoft Graph simulator for tests, demos and benchmarks.

One HTTPS server on 127.0.0.1 (throwaway CA) answers the Entra paths MSAL uses (OpenID
discovery, token, device code) and the Graph paths batchsync uses (the Intune sync actions:
Exchange connector, managed device, VPP licences, DEP, Autopilot, managed Google Play; their
listings and objects; GDAP customers), with Intune-like throttling per category, Autopilot's
409 and cooldown, and seeded transient faults::

    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=5))) as sim:
        ...  # point BATCHSYNC_GRAPH_URL / BATCHSYNC_AUTHORITY_HOST at sim.url
        print(sim.stats.throttled)
"""

from __future__ import annotations

from ._actions import ACTIONS
from ._config import CATEGORIES, FaultConfig, RetryAfterForm, SimulatorConfig, ThrottleConfig
from ._objects import (
    CONNECTOR_NAMESPACE,
    NAMESPACES,
    ObjectKind,
    connector_ids,
    object_count,
    object_ids,
    object_properties,
    singleton_id,
)
from ._sample import sample_partner
from ._server import Simulator, format_env_lines, run_simulator, serve_forever, start_in_thread
from ._state import PARTNER_TENANT_ID, TECHNICIAN_UPN, SimulatorStats, SyncEvent

__all__ = [
    "ACTIONS",
    "CATEGORIES",
    "CONNECTOR_NAMESPACE",
    "NAMESPACES",
    "PARTNER_TENANT_ID",
    "TECHNICIAN_UPN",
    "FaultConfig",
    "ObjectKind",
    "RetryAfterForm",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SyncEvent",
    "ThrottleConfig",
    "connector_ids",
    "format_env_lines",
    "object_count",
    "object_ids",
    "object_properties",
    "run_simulator",
    "sample_partner",
    "serve_forever",
    "singleton_id",
    "start_in_thread",
]
