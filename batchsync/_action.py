"""The Graph actions batchsync runs: the Intune Exchange connector sync, and its read-only check.

Everything specific to exchange connectors lives here (with the input columns in
``_input``): the request paths and bodies, what counts as success, which row fields the
report names and how a 403 or 404 is explained, plus the reads ``discover`` needs (the
connector list, GDAP customers). The engine, pacing, auth, report and discover only see
``GraphRequest`` values, ``report_fields`` mappings and ``explain`` texts, so another
per-tenant Graph action is another module like this.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from ._auth._settings import AuthMode
from ._graph import GraphRequest
from ._rows import Rejected, Row

__all__ = [
    "Action",
    "ExchangeConnectorCheck",
    "ExchangeConnectorSync",
    "explain_listing",
    "forbidden_hint",
    "gdap_customers_request",
    "get_connector_request",
    "list_connectors_request",
]

_CONNECTORS = "/deviceManagement/exchangeConnectors"
_PERMISSION = "DeviceManagementServiceConfig.ReadWrite.All"
# For both actions a 404 means the connector id does not exist in the tenant whose token
# was used (wrong tenant, or the connector is gone).
_NOT_FOUND = "connector not found in this tenant"


class Action(Protocol):
    """What the engine needs to know about an action."""

    def request(self, row: Row) -> GraphRequest: ...

    def succeeded(self, status: int) -> bool: ...

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]: ...

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str:
        """The report's message for a failed row: Graph's ``message`` plus what this status
        means for this action (``mode``: how the token was obtained, None when unknown)."""
        ...


def forbidden_hint(permission: str, mode: AuthMode | None) -> str:
    """What a 403 means: the token lacks ``permission`` (or, delegated, an Intune role)."""
    if mode is AuthMode.APP:
        return f"the app lacks the consented application permission {permission} in this tenant"
    return (
        "the signed-in account lacks an Intune role (e.g. Intune Administrator via GDAP) "
        f"in this tenant, or the app lacks {permission}"
    )


def _explain(status: int | None, message: str, mode: AuthMode | None) -> str:
    if status == 403:
        return f"{message}; {forbidden_hint(_PERMISSION, mode)}"
    if status == 404:
        return f"{_NOT_FOUND}: {message}"
    return message


def explain_listing(status: int | None, message: str, mode: AuthMode | None) -> str:
    """``discover``'s message for a listing that failed: a 403 is the missing permission."""
    if status == 403:
        return f"{message}; {forbidden_hint(_PERMISSION, mode)}"
    return message


class ExchangeConnectorSync:
    """``POST /deviceManagement/exchangeConnectors/{id}/sync`` with ``{"syncType": ...}``.

    Graph answers 204 No Content when it accepted the sync; the on-premises connector
    does the work later, so 204 (or any 2xx) is success and nothing more can be known.
    """

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

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str:
        return _explain(status, message, mode)


class ExchangeConnectorCheck:
    """``GET /deviceManagement/exchangeConnectors/{id}``: ``run --check``, a read-only preflight.

    Proves what a sync needs, without syncing: the tenant's token can be had, the token
    reaches Intune (no 403), and the connector exists in that tenant (no 404). Graph answers
    200 with the connector; anything else is a failure the report explains.
    """

    def request(self, row: Row) -> GraphRequest:
        return get_connector_request(row)

    def succeeded(self, status: int) -> bool:
        return status == 200

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        return _row_fields(item)

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str:
        return _explain(status, message, mode)


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
