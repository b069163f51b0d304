"""A local Microsoft Entra ID + Microsoft Graph simulator for tests, demos and benchmarks.

One HTTPS server on 127.0.0.1 (throwaway CA) answers the Entra paths MSAL uses (OpenID
discovery, token, device code) and the Graph paths batchsync uses (Exchange connector sync
and listing, GDAP customers), with Intune-like throttling and seeded transient faults::

    async with run_simulator(SimulatorConfig(throttle=ThrottleConfig(write_limit=5))) as sim:
        ...  # point BATCHSYNC_GRAPH_URL / BATCHSYNC_AUTHORITY_HOST at sim.url
        print(sim.stats.throttled)
"""

from __future__ import annotations

from ._config import FaultConfig, RetryAfterForm, SimulatorConfig, ThrottleConfig
from ._graph import CONNECTOR_NAMESPACE, connector_ids
from ._sample import sample_partner
from ._server import Simulator, format_env_lines, run_simulator, serve_forever, start_in_thread
from ._state import PARTNER_TENANT_ID, TECHNICIAN_UPN, SimulatorStats, SyncEvent

__all__ = [
    "CONNECTOR_NAMESPACE",
    "PARTNER_TENANT_ID",
    "TECHNICIAN_UPN",
    "FaultConfig",
    "RetryAfterForm",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SyncEvent",
    "ThrottleConfig",
    "connector_ids",
    "format_env_lines",
    "run_simulator",
    "sample_partner",
    "serve_forever",
    "start_in_thread",
]
