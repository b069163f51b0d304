"""``dep-sync``: sync Apple's Device Enrollment Program (ADE) devices into Intune.

Graph beta only: ``POST /deviceManagement/depOnboardingSettings/{id}/syncWithAppleDevice
EnrollmentProgram``, no body, 204. Intune's write limit for it is not documented; batchsync
takes the enrollment category's 100 per 20 s. Apple lets a full sync run once a week at
most; Intune syncs deltas every 12 hours on its own.
"""

from __future__ import annotations

from .._rows import OBJECT, Columns
from ._base import Action, Listing

__all__ = ["ACTION"]

_SETTINGS = "/deviceManagement/depOnboardingSettings"

ACTION = Action(
    name="dep-sync",
    summary="Sync Apple ADE/DEP devices from Apple Business Manager (beta)",
    path=_SETTINGS + "/{id}/syncWithAppleDeviceEnrollmentProgram",
    check_path=_SETTINGS + "/{id}",
    permission="DeviceManagementServiceConfig.ReadWrite.All",
    object_label="DEP token",
    columns=Columns(
        object_field=OBJECT,
        object_names=("id", "objectId", "object_id", "depOnboardingSettingId"),
        sync_type=False,
    ),
    beta_only=True,
    listing=Listing(
        path=_SETTINGS,
        fields=(
            "tokenName",
            "appleIdentifier",
            "tokenExpirationDateTime",
            "lastSuccessfulSyncDateTime",
            "lastSyncErrorCode",
        ),
    ),
)
