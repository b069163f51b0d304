"""``managed-play-sync``: sync the tenant's managed Google Play apps into Intune.

Graph beta only: ``POST /deviceManagement/androidManagedStoreAccountEnterpriseSettings/
syncApps``, one per tenant (a singleton), 204; Intune's "android for work" write limit,
100 per 20 s. A tenant whose Google Play account is not bound cannot sync:
``discover --connected-only`` keeps only the bound and validated ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import TENANT_COLUMNS, Action, Listing

__all__ = ["ACTION"]

_SETTINGS = "/deviceManagement/androidManagedStoreAccountEnterpriseSettings"


def _bound(item: Mapping[str, Any]) -> bool:
    return item.get("bindStatus") == "boundAndValidated"


ACTION = Action(
    name="managed-play-sync",
    summary="Sync the tenant's managed Google Play apps (beta; one per tenant)",
    path=_SETTINGS + "/syncApps",
    check_path=_SETTINGS,
    permission="DeviceManagementConfiguration.ReadWrite.All",
    object_label="managed Google Play",
    columns=TENANT_COLUMNS,
    beta_only=True,
    listing=Listing(
        path=_SETTINGS,
        singleton=True,
        fields=("bindStatus", "lastAppSyncStatus", "lastAppSyncDateTime"),
        ready=_bound,
        ready_help="tenants whose managed Google Play account is bound and validated",
        ready_word="bound",
        missing_label="managed Google Play setting",
    ),
)
