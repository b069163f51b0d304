"""The Graph actions batchsync runs: the Intune Exchange connector sync, and its read-only check.

Everything specific to exchange connectors lives here (with the input columns in
``_input``): the request paths and bodies, what counts as success, and which row fields the
report names, plus the reads ``discover`` needs (the connector list, GDAP customers). The
engine, pacing, auth, report and discover only see ``GraphRequest`` values and
``report_fields`` mappings, so another per-tenant Graph action is another module like this.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson

from ._input import Rejected, Row

__all__ = [
    "NOT_FOUND_HINT",
    "Action",
    "ExchangeConnectorCheck",
    "ExchangeConnectorSync",
    "GraphRequest",
    "gdap_customers_request",
    "get_connector_request",
    "list_connectors_request",
]

_CONNECTORS = "/deviceManagement/exchangeConnectors"

# Appended by the engine to a 404's message: for both actions a 404 means the connector id
# does not exist in the tenant whose token was used (wrong tenant, or the connector is gone).
NOT_FOUND_HINT = "connector not found in this tenant"


@dataclasses.dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph call, relative to ``{graph_url}/{api_version}``."""

    method: str
    path: str
    body: bytes | None = None


class Action(Protocol):
    """What the engine needs to know about an action."""

    # Put before a 404's message: what "not found" means for this action.
    not_found_hint: str

    def request(self, row: Row) -> GraphRequest: ...

    def succeeded(self, status: int) -> bool: ...

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]: ...


class ExchangeConnectorSync:
    """``POST /deviceManagement/exchangeConnectors/{id}/sync`` with ``{"syncType": ...}``.

    Graph answers 204 No Content when it accepted the sync; the on-premises connector
    does the work later, so 204 (or any 2xx) is success and nothing more can be known.
    """

    not_found_hint = NOT_FOUND_HINT

    def request(self, row: Row) -> GraphRequest:
        # row.connector is a validated canonical GUID (see _input), safe in a path.
        return GraphRequest(
            "POST",
            f"{_CONNECTORS}/{row.connector}/sync",
            orjson.dumps({"syncType": row.sync_type.value}),
        )

    def succeeded(self, status: int) -> bool:
        return 200 <= status < 300

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        return _row_fields(item)


class ExchangeConnectorCheck:
    """``GET /deviceManagement/exchangeConnectors/{id}``: ``run --check``, a read-only preflight.

    Proves what a sync needs, without syncing: the tenant's token can be had, the token
    reaches Intune (no 403), and the connector exists in that tenant (no 404). Graph answers
    200 with the connector; anything else is a failure the report explains.
    """

    not_found_hint = NOT_FOUND_HINT

    def request(self, row: Row) -> GraphRequest:
        return get_connector_request(row)

    def succeeded(self, status: int) -> bool:
        return status == 200

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        return _row_fields(item)


def _row_fields(item: Row | Rejected) -> dict[str, str | None]:
    """The report's row fields, the same for both actions (so a check report reads like a run's)."""
    if isinstance(item, Row):
        return {
            "tenant": item.tenant,
            "connector": item.connector,
            "syncType": item.sync_type.value,
        }
    return {"tenant": item.tenant, "connector": item.connector, "syncType": item.sync_type}


def get_connector_request(row: Row) -> GraphRequest:
    """Read one connector (its ``status``, ``lastSyncDateTime``...)."""
    return GraphRequest("GET", f"{_CONNECTORS}/{row.connector}")


def list_connectors_request() -> GraphRequest:
    """The first page of the tenant's Exchange connectors (then follow ``@odata.nextLink``)."""
    return GraphRequest("GET", _CONNECTORS)


def gdap_customers_request() -> GraphRequest:
    """The first page of the signed-in partner's GDAP customers (needs the partner's token)."""
    return GraphRequest("GET", "/tenantRelationships/delegatedAdminCustomers")
