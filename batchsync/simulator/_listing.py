"""The Graph reads: each Intune collection, one object of it, the singletons, GDAP customers.

Rules:

1. Collections page by ``@odata.nextLink`` carrying an opaque ``$skiptoken`` (a bad one:
   400 ``BadRequest``). Exchange connectors and GDAP customers page ``page_size`` items;
   managed devices ``page_sizes["device"]`` (default 100), VPP tokens and DEP settings
   ``page_sizes[kind]`` (default ``page_size``). A page of the Intune objects costs its own
   length, not the collection's: the token holds where in the tenant's id list the next
   page starts, and a ``$filter`` resumes its scan there.
2. ``$filter`` only on ``managedDevices`` (``operatingSystem``, ``complianceState``; see
   ``_odata``), kept in the nextLink with ``$select``; on any other collection or object:
   400 ``BadRequest`` "Query option 'Filter' is not allowed" (the docs name no filterable
   property there). ``$select`` on managed devices, VPP tokens, DEP settings and the
   singletons (collection or one object): those properties and ``id``, an unknown name 400.
   Exchange connectors ignore ``$select`` and ``$top`` as they always did; the others ignore
   ``$top`` (server-driven paging, as Graph may).
3. A tenant in ``forbidden_tenants`` gets 403 naming the read permission; an id not a GUID
   400; an object not the tenant's (or missing) 404, except connectors (open world: an id
   not listed answers as connected).
4. Beta-only resources (DEP, Autopilot, managed Google Play) are not routed under v1.0,
   where ``_graph`` answers 400 "Resource not found for the segment '...'".
"""

from __future__ import annotations

import dataclasses
import functools
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from ._answers import Call, forbidden, not_a_guid, not_found
from ._config import SimulatorConfig
from ._http import json_response
from ._ids import graph_key
from ._objects import (
    COMPLIANCE_STATES,
    SINGLETON_KINDS,
    ObjectKind,
    all_ids,
    connector_ids,
    connector_properties,
    device_os,
    object_count,
    object_index,
    properties,
    singleton_id,
)
from ._odata import FILTER_NOT_ALLOWED, QueryError, Select, parse_filter, parse_select
from ._state import Core
from ._tokens import b64url, unb64url

__all__ = ["RESOURCES", "Listing", "Resource"]

_DEVICE_FILTERS: Mapping[str, frozenset[str] | None] = {
    "operatingSystem": None,
    "complianceState": COMPLIANCE_STATES,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """One readable Intune resource: a collection of objects, or a tenant's singleton."""

    kind: ObjectKind
    path: str  # after /{version}/
    type_name: str
    read_permission: str
    beta_only: bool
    what: str
    filterable: Mapping[str, frozenset[str] | None] | None = None

    @property
    def singleton(self) -> bool:
        return self.kind in SINGLETON_KINDS

    def route(self) -> str:
        version = r"/{ver:beta}" if self.beta_only else r"/{ver:v1\.0|beta}"
        return f"{version}/{self.path}"


_SERVICE_CONFIG_READ = "DeviceManagementServiceConfig.Read.All"
RESOURCES: tuple[Resource, ...] = (
    Resource(
        "device",
        "deviceManagement/managedDevices",
        "microsoft.graph.managedDevice",
        "DeviceManagementManagedDevices.Read.All",
        beta_only=False,
        what="Managed device",
        filterable=_DEVICE_FILTERS,
    ),
    Resource(
        "vpp",
        "deviceAppManagement/vppTokens",
        "microsoft.graph.vppToken",
        _SERVICE_CONFIG_READ,
        beta_only=False,
        what="VPP token",
    ),
    Resource(
        "dep",
        "deviceManagement/depOnboardingSettings",
        "microsoft.graph.depOnboardingSetting",
        _SERVICE_CONFIG_READ,
        beta_only=True,
        what="DEP onboarding setting",
    ),
    Resource(
        "autopilot",
        "deviceManagement/windowsAutopilotSettings",
        "microsoft.graph.windowsAutopilotSettings",
        _SERVICE_CONFIG_READ,
        beta_only=True,
        what="Windows Autopilot settings",
    ),
    Resource(
        "managed_play",
        "deviceManagement/androidManagedStoreAccountEnterpriseSettings",
        "microsoft.graph.androidManagedStoreAccountEnterpriseSettings",
        "DeviceManagementConfiguration.Read.All",
        beta_only=True,
        what="Managed Google Play settings",
    ),
)
_CONNECTOR_PERMISSION = "DeviceManagementServiceConfig.ReadWrite.All"
_Handler = Callable[[Call, str], Awaitable[web.StreamResponse]]


@functools.cache
def _property_names(kind: ObjectKind) -> tuple[str, ...]:
    """The type's properties in the order the simulator writes them."""
    config = SimulatorConfig(client_secret="")
    sample = properties(kind, "x.example.com", "0" * 32, 0, config, synced_at=None, now=0.0)
    return tuple(name for name in sample if not name.startswith("@"))


class Listing:
    """The GET handlers."""

    def __init__(self, core: Core) -> None:
        self._core = core

    # ------------------------------------------------------------------ Exchange connectors

    async def list_connectors(self, call: Call, tenant: str) -> web.StreamResponse:
        config = self._core.config
        if "$filter" in call.request.query:
            return call.error(400, "BadRequest", FILTER_NOT_ALLOWED)
        if tenant in config.forbidden_tenants:
            return forbidden(call, _CONNECTOR_PERMISSION)
        ids = connector_ids(tenant, config)
        items = [self._connector(tenant, cid, index) for index, cid in enumerate(ids)]
        size = config.page_sizes.get("connector", config.page_size)
        return self._page(call, "deviceManagement/exchangeConnectors", items, size)

    async def get_connector(self, call: Call, tenant: str) -> web.StreamResponse:
        """One connector; an open-world id not in the tenant's list answers as connected."""
        config = self._core.config
        raw = call.request.match_info["id"]
        connector = graph_key(raw)
        if connector is None:
            return not_a_guid(call, raw)
        if tenant in config.forbidden_tenants:
            return forbidden(call, _CONNECTOR_PERMISSION)
        if connector in config.missing_connectors:
            return not_found(call, "Exchange connector", connector)
        listed = connector_ids(tenant, config)
        index = listed.index(connector) if connector in listed else None
        body = self._connector(tenant, connector, index)
        body["@odata.context"] = (
            f"{self._core.url}/{call.request.match_info['ver']}/$metadata#deviceManagement/"
            "exchangeConnectors/$entity"
        )
        return json_response(body)

    def _connector(self, tenant: str, connector: str, index: int | None) -> dict[str, Any]:
        synced_at = self._core.last_synced.get((tenant, connector))
        return connector_properties(
            tenant, connector, index, self._core.config, synced_at=synced_at
        )

    # ------------------------------------------------------------------ GDAP customers

    async def list_customers(self, call: Call, tenant: str) -> web.StreamResponse:
        customers = self._core.config.gdap_customers
        items: list[dict[str, Any]] = [
            {"id": customer, "tenantId": customer, "displayName": _display_name(customer, i)}
            for i, customer in enumerate(customers)
        ]
        path = "tenantRelationships/delegatedAdminCustomers"
        return self._page(call, path, items, self._core.config.page_size)

    def _page(
        self, call: Call, path: str, items: Sequence[dict[str, Any]], size: int
    ) -> web.StreamResponse:
        """``value`` from ``$skiptoken`` on, ``size`` long, with ``@odata.nextLink``."""
        offset = _skip(call)
        if offset is None:
            return call.error(400, "BadRequest", "The $skiptoken is not valid.")
        base = f"{self._core.url}/{call.request.match_info['ver']}"
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#{path}",
            "value": list(items[offset : offset + size]),
        }
        if offset + size < len(items):
            skip = b64url(orjson.dumps({"o": offset + size}))
            body["@odata.nextLink"] = f"{base}/{path}?$skiptoken={skip}"
        return json_response(body)

    # ------------------------------------------------------------------ the other objects

    def list_handler(self, resource: Resource) -> _Handler:
        async def inner(call: Call, tenant: str) -> web.StreamResponse:
            if resource.singleton:
                return self._get(call, tenant, resource, singleton_id(resource.kind, tenant))
            return self._list(call, tenant, resource)

        return inner

    def get_handler(self, resource: Resource) -> _Handler:
        async def inner(call: Call, tenant: str) -> web.StreamResponse:
            raw = call.request.match_info["id"]
            object_id = graph_key(raw)
            if object_id is None:
                return not_a_guid(call, raw)
            return self._get(call, tenant, resource, object_id)

        return inner

    def _queries(
        self, call: Call, resource: Resource, *, collection: bool
    ) -> tuple[tuple[tuple[str, str], ...], Select | None] | web.Response:
        """The request's ``$filter`` clauses and ``$select``, or the 400 refusing them."""
        query = call.request.query
        try:
            clauses: tuple[tuple[str, str], ...] = ()
            if "$filter" in query:
                if resource.filterable is None or not collection:
                    return call.error(400, "BadRequest", FILTER_NOT_ALLOWED)
                clauses = parse_filter(
                    query["$filter"], resource.filterable, type_name=resource.type_name
                )
            select = None
            if "$select" in query:
                select = parse_select(
                    query["$select"], _property_names(resource.kind), type_name=resource.type_name
                )
        except QueryError as exc:
            return call.error(400, "BadRequest", str(exc))
        return clauses, select

    def _list(self, call: Call, tenant: str, resource: Resource) -> web.StreamResponse:
        core, config = self._core, self._core.config
        parsed = self._queries(call, resource, collection=True)
        if isinstance(parsed, web.Response):
            return parsed
        clauses, select = parsed
        if tenant in config.forbidden_tenants:
            return forbidden(call, resource.read_permission)
        start = _skip(call)
        if start is None:
            return call.error(400, "BadRequest", "The $skiptoken is not valid.")
        kind = resource.kind
        size = config.page_sizes.get(kind, 100 if kind == "device" else config.page_size)
        ids = all_ids(kind, tenant, object_count(kind, tenant, config))
        missing, now = config.missing_objects, time.time()
        page: list[dict[str, Any]] = []
        resume: int | None = None
        for index in range(start, len(ids)):
            object_id = ids[index]
            if object_id in missing or not _matches(kind, object_id, clauses):
                continue
            if len(page) == size:  # one more match: the next page starts here
                resume = index
                break
            synced_at = core.last_synced.get((tenant, object_id))
            item = properties(kind, tenant, object_id, index, config, synced_at=synced_at, now=now)
            page.append(select.apply(item) if select else item)
        base = f"{core.url}/{call.request.match_info['ver']}"
        context = f"{base}/$metadata#{resource.path}" + (select.context_suffix() if select else "")
        body: dict[str, Any] = {"@odata.context": context, "value": page}
        if resume is not None:
            kept = [
                (k, call.request.query[k])
                for k in ("$filter", "$select")
                if k in call.request.query
            ]
            kept.append(("$skiptoken", b64url(orjson.dumps({"o": resume}))))
            encoded = urllib.parse.urlencode(kept, quote_via=urllib.parse.quote, safe="$,'")
            body["@odata.nextLink"] = f"{base}/{resource.path}?{encoded}"
        return json_response(body)

    def _get(
        self, call: Call, tenant: str, resource: Resource, object_id: str
    ) -> web.StreamResponse:
        core, config = self._core, self._core.config
        parsed = self._queries(call, resource, collection=False)
        if isinstance(parsed, web.Response):
            return parsed
        _, select = parsed
        if tenant in config.forbidden_tenants:
            return forbidden(call, resource.read_permission)
        index = object_index(resource.kind, tenant, object_id, config)
        if index is None:
            return not_found(call, resource.what, object_id)
        synced_at = core.last_synced.get((tenant, object_id))
        item = properties(
            resource.kind, tenant, object_id, index, config, synced_at=synced_at, now=time.time()
        )
        entity = "" if resource.singleton else "/$entity"
        context = f"{core.url}/{call.request.match_info['ver']}/$metadata#{resource.path}"
        if select:
            context += select.context_suffix()
        return json_response(
            {"@odata.context": context + entity, **(select.apply(item) if select else item)}
        )


def _skip(call: Call) -> int | None:
    """Where ``$skiptoken`` says the page starts (0 without one), None when it is bad."""
    token = call.request.query.get("$skiptoken")
    try:
        offset = int(orjson.loads(unb64url(token))["o"]) if token else 0
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return offset if offset >= 0 else None


def _matches(kind: ObjectKind, object_id: str, clauses: tuple[tuple[str, str], ...]) -> bool:
    """Whether the object passes every ``$filter`` clause (read cheaply, without building it)."""
    if not clauses:
        return True
    system, compliance = device_os(object_id)
    values = {"operatingSystem": system.lower(), "complianceState": compliance.lower()}
    return all(values[prop] == value for prop, value in clauses)


def _display_name(tenant: str, index: int) -> str:
    return tenant.split(".", 1)[0].title() if "." in tenant else f"Customer {index + 1}"
