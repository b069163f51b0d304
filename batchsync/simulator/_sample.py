"""The world ``batchsync simulator`` serves: an MSP partner with the sample's customers.

The partner's GDAP customers are the tenants of the bundled ``samples/tenants.csv``, each
with as many Exchange connectors as it has rows there, so the README's MSP quick start
(``login``, ``discover --gdap --connected-only``, ``run``, ``report``) can be rehearsed
verbatim. Since Microsoft ended support for the on-premises connector, not every connector
is connected: a few are ``disconnected``, one ``connectionPending`` and one ``none``, which
``discover --connected-only`` leaves out. For the other Intune syncs, devices, VPP tokens and
DEP settings come by hash of the tenant (``_objects``); proseware has no Windows Autopilot
settings, and the managed Google Play account of adatum is ``notBound``, the others'
``boundAndValidated``, so ``discover`` and ``run`` of those actions show both outcomes.
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ._objects import CONNECTOR_NAMESPACE

__all__ = ["sample_partner", "sample_tenants"]

# (tenant's position in the sample, connector index) -> status other than connected.
_NOT_CONNECTED = {
    (0, 7): "disconnected",  # contoso's eighth connector
    (1, 5): "connectionPending",  # fabrikam's sixth, still being set up
    (4, 1): "disconnected",  # woodgrove's second
    (7, 0): "none",  # proseware's only connector was never set up
}


def _sample_csv() -> Path:
    """``samples/tenants.csv``: inside the wheel, or the source tree's ``samples/``."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_samples", package.parent / "samples"):
        path = candidate / "tenants.csv"
        if path.is_file():
            return path
    raise FileNotFoundError("samples/tenants.csv is missing from this installation")


def sample_tenants() -> Counter[str]:
    """The sample's tenants (lower case) with their row counts, in order of appearance."""
    counts: Counter[str] = Counter()
    with _sample_csv().open(encoding="utf-8-sig", newline="") as fh:
        lines = (line for line in fh if line.strip() and not line.startswith("#"))
        for row in csv.DictReader(lines, delimiter=";"):
            tenant = (row.get("Tenant") or "").strip().lower()
            if tenant:
                counts[tenant] += 1
    return counts


def sample_partner() -> dict[str, Any]:
    """``SimulatorConfig`` fields: GDAP customers, their connector counts and statuses, and
    the states of their Autopilot and managed Google Play settings."""
    counts = sample_tenants()
    status: dict[str, str] = {}
    for position, (tenant, count) in enumerate(counts.items()):
        for index in range(count):
            connector = str(uuid.uuid5(CONNECTOR_NAMESPACE, tenant + str(index)))
            status[connector] = _NOT_CONNECTED.get((position, index), "connected")
    return {
        "gdap_customers": tuple(counts),
        "connectors_per_tenant": dict(counts),
        "connector_status": status,
        "tenants_without_autopilot": frozenset({"proseware.com"} & set(counts)),
        "managed_play_bind_status": {
            tenant: "notBound" if tenant == "adatum.com" else "boundAndValidated"
            for tenant in counts
        },
    }
