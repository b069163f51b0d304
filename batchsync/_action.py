"""The one Graph action batchsync runs: the Intune Exchange connector sync.

Everything specific to exchange connectors lives here (with the input columns in
``_input``): the request's path and body, what counts as success, and which row fields the
report names. The engine, pacing, auth and report only see ``GraphRequest`` values and
``report_fields`` mappings, so another per-tenant Graph action is another module like this.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson

from ._input import Rejected, Row

__all__ = ["Action", "ExchangeConnectorSync", "GraphRequest"]


@dataclasses.dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph call, relative to ``{graph_url}/{api_version}``."""

    method: str
    path: str
    body: bytes | None = None


class Action(Protocol):
    """What the engine needs to know about an action."""

    def request(self, row: Row) -> GraphRequest: ...

    def succeeded(self, status: int) -> bool: ...

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]: ...


class ExchangeConnectorSync:
    """``POST /deviceManagement/exchangeConnectors/{id}/sync`` with ``{"syncType": ...}``.

    Graph answers 204 No Content when it accepted the sync; the on-premises connector
    does the work later, so 204 (or any 2xx) is success and nothing more can be known.
    """

    def request(self, row: Row) -> GraphRequest:
        # row.connector is a validated canonical GUID (see _input), safe in a path.
        return GraphRequest(
            "POST",
            f"/deviceManagement/exchangeConnectors/{row.connector}/sync",
            orjson.dumps({"syncType": row.sync_type.value}),
        )

    def succeeded(self, status: int) -> bool:
        return 200 <= status < 300

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        if isinstance(item, Row):
            return {
                "tenant": item.tenant,
                "connector": item.connector,
                "syncType": item.sync_type.value,
            }
        return {"tenant": item.tenant, "connector": item.connector, "syncType": item.sync_type}
