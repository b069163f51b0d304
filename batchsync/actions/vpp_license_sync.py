"""``vpp-license-sync``: sync an Apple VPP token's licences into Intune.

``POST /deviceAppManagement/vppTokens/{id}/syncLicenses``, no body, 200 with the vppToken.
Graph's current reference names ``DeviceManagementApps.ReadWrite.All`` the least privileged
permission; ``DeviceManagementServiceConfig.ReadWrite.All`` works in every version of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._rows import OBJECT, Columns
from ._base import Action, Listing

__all__ = ["ACTION"]

_TOKENS = "/deviceAppManagement/vppTokens"


def _valid(item: Mapping[str, Any]) -> bool:
    return item.get("state") == "valid"


ACTION = Action(
    name="vpp-license-sync",
    summary="Sync an Apple VPP token's licences (Apple Business Manager apps)",
    path=_TOKENS + "/{id}/syncLicenses",
    check_path=_TOKENS + "/{id}",
    permission=(
        "DeviceManagementApps.ReadWrite.All (or DeviceManagementServiceConfig.ReadWrite.All)"
    ),
    object_label="VPP token",
    columns=Columns(
        object_field=OBJECT,
        object_names=("id", "objectId", "object_id", "vppTokenId", "tokenId"),
        sync_type=False,
    ),
    success=frozenset({200, 204}),
    listing=Listing(
        path=_TOKENS,
        # Never ``token``: the listing carries the VPP token's secret; it is not copied.
        fields=("organizationName", "appleId", "state", "lastSyncStatus", "lastSyncDateTime"),
        ready=_valid,
        ready_help="VPP tokens whose state is valid",
        ready_word="valid",
    ),
)
