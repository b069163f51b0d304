"""``exchange-connector-sync`` (the default): the Intune Exchange connector's sync.

``POST /deviceManagement/exchangeConnectors/{id}/sync`` with ``{"syncType": ...}``: 204 No
Content when Graph accepted it; the on-premises connector does the work later, so any 2xx is
success and nothing more can be known. Its input and report name the object ``connector``
and carry a ``syncType``, exactly as before the other actions came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._rows import CONNECTOR, CONNECTOR_COLUMNS, Row
from ._base import Action, Listing

__all__ = ["ACTION"]

_CONNECTORS = "/deviceManagement/exchangeConnectors"


def _connected(item: Mapping[str, Any]) -> bool:
    return item.get("status") == "connected"


class ExchangeConnectorSync(Action):
    """The sync takes the row's ``syncType`` as its body."""

    def body(self, row: Row) -> bytes | None:
        assert row.sync_type is not None  # the connector columns always give one
        return orjson.dumps({"syncType": row.sync_type.value})

    def succeeded(self, status: int) -> bool:
        return 200 <= status < 300

    def success_label(self) -> str:
        return "204 (any 2xx)"


ACTION = ExchangeConnectorSync(
    name="exchange-connector-sync",
    summary="Sync an Intune Exchange connector (on-premises connector; support ended 2024)",
    path=_CONNECTORS + "/{id}/sync",
    check_path=_CONNECTORS + "/{id}",
    permission="DeviceManagementServiceConfig.ReadWrite.All",
    object_label="connector",
    columns=CONNECTOR_COLUMNS,
    report_object=CONNECTOR,
    listing=Listing(
        path=_CONNECTORS,
        fields=("status", "lastSyncDateTime"),
        ready=_connected,
        ready_help="connectors whose status is connected",
        ready_word="connected",
        missing_label="Exchange connector",
    ),
)
