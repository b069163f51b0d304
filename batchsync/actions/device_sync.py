"""``device-sync``: ask an Intune-managed device to check in now.

``POST /deviceManagement/managedDevices/{id}/syncDevice``, no body, 204. Devices have their
own Intune write limit, twice the enrollment one: 200 per 20 s for one app in one tenant.
``discover --action device-sync --filter "operatingSystem eq 'Windows'"`` lists them.
"""

from __future__ import annotations

from .._pacing import TenantRate
from .._rows import OBJECT, Columns
from ._base import Action, Listing

__all__ = ["ACTION"]

_DEVICES = "/deviceManagement/managedDevices"
_FIELDS = ("deviceName", "operatingSystem", "osVersion", "userPrincipalName", "lastSyncDateTime")

ACTION = Action(
    name="device-sync",
    summary="Make an Intune-managed device check in (sync) now",
    path=_DEVICES + "/{id}/syncDevice",
    check_path=_DEVICES + "/{id}",
    permission="DeviceManagementManagedDevices.PrivilegedOperations.All",
    object_label="device",
    columns=Columns(
        object_field=OBJECT,
        object_names=("id", "objectId", "object_id", "deviceId", "managedDeviceId"),
        sync_type=False,
    ),
    tenant_rate=TenantRate(200, 20.0),
    listing=Listing(path=_DEVICES, filterable=True, select=("id", *_FIELDS), fields=_FIELDS),
)
