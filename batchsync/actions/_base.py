"""What every action is: its request, its success, its input columns, its report fields, how
``discover`` lists its objects, and how it words a failure. The engine only sees this.

An action module (one file per action) builds one ``Action`` value, or a subclass where the
action's answers mean more than success or failure (Autopilot's 409 and cooldown), and the
registry in ``actions/__init__`` lists it. Nothing outside ``actions/`` names an action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from .._auth._settings import AuthMode
from .._graph import GraphRequest
from .._pacing import TenantRate
from .._report import Settled
from .._rows import OBJECT, Columns, Rejected, Row, SyncType, canonical_connector

__all__ = [
    "OBJECT_COLUMNS",
    "TENANT_COLUMNS",
    "Action",
    "Listing",
    "Settled",
    "forbidden_hint",
]

# An object's id under ``id`` (aliases objectId, object_id) plus the action's own names.
OBJECT_COLUMNS = Columns(
    object_field=OBJECT, object_names=("id", "objectId", "object_id"), sync_type=False
)
TENANT_COLUMNS = Columns(object_field=None, object_names=(), sync_type=False)


def forbidden_hint(permission: str, mode: AuthMode | None) -> str:
    """What a 403 means: the token lacks ``permission`` (or, delegated, an Intune role)."""
    if mode is AuthMode.APP:
        return f"the app lacks the consented application permission {permission} in this tenant"
    return (
        "the signed-in account lacks an Intune role (e.g. Intune Administrator via GDAP) "
        f"in this tenant, or the app lacks {permission}"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    """How ``discover`` finds the action's objects in a tenant.

    ``path`` is a collection (paged by ``@odata.nextLink``) or, with ``singleton``, the one
    object of the tenant. ``fields`` are the properties copied into each discovered row
    after ``tenant`` and the id; ``ready`` says which objects ``--connected-only`` keeps.
    """

    path: str
    singleton: bool = False
    filterable: bool = False  # Graph takes a $filter here (``discover --filter``)
    select: tuple[str, ...] = ()  # a $select that keeps the pages small
    fields: tuple[str, ...] = ()
    ready: Callable[[Mapping[str, Any]], bool] | None = None
    ready_help: str = ""  # what --connected-only keeps, for --help
    ready_word: str = "ready"  # "4 not connected left out"
    missing_label: str | None = None  # "1 tenant has no Exchange connector" (default: the label)


@dataclasses.dataclass(frozen=True)
class Action:
    """One Intune sync action (see the module docstring).

    ``path`` is relative to ``{graph_url}/{api_version}``, with ``{id}`` for the object's id
    (a validated canonical GUID: safe in a path); ``check_path`` is the read-only GET that
    ``run --dry-run --check`` sends instead. ``tenant_rate`` is the default ``--tenant-rate``:
    Intune's write limit for one app in one tenant for this action's category.
    """

    name: str
    summary: str
    path: str
    check_path: str
    permission: str
    object_label: str  # "connector", "device", "VPP token"...: the object in messages
    columns: Columns = OBJECT_COLUMNS
    listing: Listing | None = None
    method: str = "POST"
    success: frozenset[int] = frozenset({204})
    beta_only: bool = False
    tenant_rate: TenantRate = TenantRate(100, 20.0)
    report_object: str = OBJECT  # the report's field for the object id ("connector" or "id")

    @property
    def api_version(self) -> str:
        """The Graph version the action needs when the user names none."""
        return "beta" if self.beta_only else "v1.0"

    @property
    def tenant_level(self) -> bool:
        """One request per tenant (no object id in the path)."""
        return self.columns.object_field is None

    # -- the request -------------------------------------------------------------------------

    def request(self, row: Row) -> GraphRequest:
        return GraphRequest(self.method, self._path(self.path, row), self.body(row))

    def check_request(self, row: Row) -> GraphRequest:
        return GraphRequest("GET", self._path(self.check_path, row))

    def body(self, row: Row) -> bytes | None:
        """The request body (none unless the action takes one)."""
        return None

    @staticmethod
    def _path(template: str, row: Row) -> str:
        return template.format(id=row.object_id) if "{id}" in template else template

    # -- the answer --------------------------------------------------------------------------

    def succeeded(self, status: int) -> bool:
        return status in self.success

    def describe(self) -> dict[str, str | bool]:
        """What ``batchsync actions`` shows of the action."""
        input_columns = ["tenant"]
        if self.columns.object_field is not None:
            first, *others = self.columns.object_names
            input_columns.append(first + (f" (or {', '.join(others)})" if others else ""))
        if self.columns.sync_type:
            input_columns.append("syncType")
        return {
            "name": self.name,
            "summary": self.summary,
            "request": f"{self.method} {self.path}"
            + (" {syncType}" if self.columns.sync_type else ""),
            "success": self.success_label(),
            "permission": self.permission,
            "tenant_rate": str(self.tenant_rate),
            "api_version": self.api_version,
            "beta_only": self.beta_only,
            "input": ", ".join(input_columns),
            "discover": bool(self.listing),
        }

    def success_label(self) -> str:
        return ", ".join(str(s) for s in sorted(self.success))

    def settle(self, status: int, code: str | None, message: str) -> Settled | None:
        """An answer that means something else than success or failure for this action;
        None for all the others (the retry policy decides those)."""
        return None

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str:
        """The report's message for a failed row: Graph's ``message`` plus what this status
        means for this action (``mode``: how the token was obtained, None when unknown)."""
        if status == 403:
            return f"{message}; {forbidden_hint(self.permission, mode)}"
        if status == 404:
            what = self.object_label if not self.tenant_level else f"{self.object_label} setting"
            return f"{what} not found in this tenant: {message}"
        return message

    def next_step(self, kind: str, code: str | None) -> str | None:
        """What to do about an error, in this action's words; None when nothing specific."""
        if code == "ResourceNotFound":
            return (
                f"the {self.object_label} is not in this tenant: list them again with "
                f"`batchsync discover --action {self.name}` and run the new list"
            )
        if code in ("Forbidden", "Authorization_RequestDenied"):
            return (
                "give the account the Intune Administrator role in this tenant (GDAP), or "
                f"consent {self.permission} there, then run again with --resume"
            )
        return None

    # -- the report --------------------------------------------------------------------------

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        """The report line's row fields: ``action``, ``tenant``, the object id and (if the
        action takes one) ``syncType``."""
        fields: dict[str, str | None] = {"action": self.name, "tenant": item.tenant}
        fields[self.report_object] = item.object_id
        if self.columns.sync_type:
            sync = item.sync_type
            fields["syncType"] = sync if isinstance(sync, str) or sync is None else sync.value
        return fields

    def discovered_row(
        self, tenant: str, item: Mapping[str, Any], sync_type: SyncType
    ) -> dict[str, Any] | None:
        """The row ``discover`` writes for one listed object (ready for ``run``), or None when
        Graph's object has no usable id."""
        listing = self.listing
        assert listing is not None
        row: dict[str, Any] = {"tenant": tenant}
        if not listing.singleton:
            object_id = canonical_connector(str(item.get("id", "")))
            if object_id is None:
                return None
            row[self.report_object] = object_id
        else:
            row[self.report_object] = None
        if self.columns.sync_type:
            row["syncType"] = sync_type.value
        for name in listing.fields:
            value = item.get(name)
            row[name] = value if isinstance(value, str | int | float | bool) else None
        return row

    def check(self) -> CheckAction:
        """The read-only twin that ``run --dry-run --check`` runs."""
        return CheckAction(self)


class CheckAction:
    """An action's read-only check: GET the object; 200 passes. Same fields and wording."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.name = action.name
        self.columns = action.columns
        self.tenant_rate = action.tenant_rate

    def request(self, row: Row) -> GraphRequest:
        return self.action.check_request(row)

    def succeeded(self, status: int) -> bool:
        return status == 200

    def settle(self, status: int, code: str | None, message: str) -> Settled | None:
        return None

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str:
        return self.action.explain(status, message, mode)

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]:
        return self.action.report_fields(item)
