"""``autopilot-sync``: sync the tenant's Windows Autopilot devices from Microsoft's service.

Graph beta only: ``POST /deviceManagement/windowsAutopilotSettings/sync``, one per tenant
(the settings are a singleton), 204. Graph answers 409 while a sync runs and 429 within 10
minutes of the last one. Neither is the tenant over its request limit, and retrying either
only repeats it, so both end the row ``skipped`` at once: the sync the user asked for is
running, or ran minutes ago. ``--resume`` later tries the tenant again.
"""

from __future__ import annotations

from .._errors import ErrorKind, ReportError
from .._report import Settled, Status
from ._base import TENANT_COLUMNS, Action, Listing

__all__ = ["ACTION"]

_SETTINGS = "/deviceManagement/windowsAutopilotSettings"


class AutopilotSync(Action):
    """Settles 409 (a sync running) and 429 (the 10-minute cooldown) as ``skipped``."""

    def settle(self, status: int, code: str | None, message: str) -> Settled | None:
        if status == 409:
            return Settled(
                Status.SKIPPED,
                ReportError(
                    ErrorKind.HTTP,
                    code or "Conflict",
                    "an Autopilot sync is already running in this tenant; not sent again "
                    "(run again with --resume after it ends)",
                ),
            )
        if status == 429:
            return Settled(
                Status.SKIPPED,
                ReportError(
                    ErrorKind.THROTTLED,
                    code or "TooManyRequests",
                    "this tenant's Autopilot devices were synced less than 10 minutes ago "
                    "(Intune allows one sync per 10 minutes); not sent again",
                ),
            )
        return None


ACTION = AutopilotSync(
    name="autopilot-sync",
    summary="Sync the tenant's Windows Autopilot devices (beta; one per tenant)",
    path=_SETTINGS + "/sync",
    check_path=_SETTINGS,
    permission="DeviceManagementServiceConfig.ReadWrite.All",
    object_label="Windows Autopilot",
    columns=TENANT_COLUMNS,
    beta_only=True,
    listing=Listing(
        path=_SETTINGS,
        singleton=True,
        fields=("syncStatus", "lastSyncDateTime", "lastManualSyncTriggerDateTime"),
        missing_label="Windows Autopilot setting",
    ),
)
