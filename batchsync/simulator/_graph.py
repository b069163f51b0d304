"""The Microsoft Graph side: routes, the token check and headers; rules in _actions, _listing.

Every answer carries ``request-id``, ``client-request-id`` (echoed, or new),
``x-ms-ags-diagnostic`` and ``Date``; errors carry Graph's body
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.

Served paths (``{v}``: ``v1.0`` or ``beta``; beta-only ones under ``v1.0`` answer 400
``BadRequest`` "Resource not found for the segment '<first unknown segment>'", as Graph
does for any path it does not know):

- the sync actions of ``_actions.ACTIONS`` (its module docstring has their numbered rules,
  the Exchange connector sync's among them, unchanged): ``POST {v}/deviceManagement/
  exchangeConnectors/{id}/sync``, ``{v}/deviceManagement/managedDevices/{id}/syncDevice``,
  ``{v}/deviceAppManagement/vppTokens/{id}/syncLicenses``, ``beta/deviceManagement/
  depOnboardingSettings/{id}/syncWithAppleDeviceEnrollmentProgram``, ``beta/deviceManagement/
  windowsAutopilotSettings/sync``, ``beta/deviceManagement/
  androidManagedStoreAccountEnterpriseSettings/syncApps``;
- the reads of ``_listing`` (its docstring has their rules): those collections, one object
  of each, the two singletons, and ``{v}/tenantRelationships/delegatedAdminCustomers``.

A request with a missing, forged or expired bearer token, or one of a tenant in
``refused_token_tenants``, answers 401 ``InvalidAuthenticationToken`` before anything else.
Requests of a tenant arriving before the end of any Retry-After announced to it (429 or
503), or to the object they are for (an object's own cooldown, Autopilot's 409/429), are
counted in ``stats.requests_during_pause``, except those within 200 ms of the announcement
(already on their way when it was sent) or 50 ms of its end (clock skew).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from ._actions import ACTIONS, Action, Actions
from ._answers import Call, format_retry_after
from ._listing import RESOURCES, Listing
from ._objects import CONNECTOR_NAMESPACE, connector_ids
from ._state import Core
from ._tokens import TokenInvalid

__all__ = ["CONNECTOR_NAMESPACE", "Graph", "connector_ids", "format_retry_after"]

_IN_FLIGHT_S = 0.2  # after a pause is announced: requests already on their way
_SKEW_S = 0.05  # before it ends: clock skew
_VERSION = r"/{ver:v1\.0|beta}"
# Path segments that contain resources: the "segment not found" is the one after them.
_CONTAINERS = frozenset({"deviceManagement", "deviceAppManagement", "tenantRelationships"})
_DIAGNOSTIC = orjson.dumps(
    {
        "ServerInfo": {
            "DataCenter": "Local Simulator",
            "Slice": "E",
            "Ring": "0",
            "ScaleUnit": "000",
            "RoleInstance": "SIM-GRAPH",
        }
    }
).decode()

_Inner = Callable[[Call, str], Awaitable[web.StreamResponse | None]]


class Graph:
    """Handlers for ``/{v1.0|beta}/...``."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._actions = Actions(core)
        self._listing = Listing(core)

    def routes(self) -> list[web.RouteDef]:
        listing = self._listing
        connectors = _VERSION + "/deviceManagement/exchangeConnectors"
        routes = [
            web.post(action.route(), self._wrap(self._actions.handler(action), action=action))
            for action in ACTIONS
        ]
        routes += [
            web.get(connectors, self._wrap(listing.list_connectors)),
            web.get(connectors + "/{id}", self._wrap(listing.get_connector)),
        ]
        for resource in RESOURCES:
            routes.append(web.get(resource.route(), self._wrap(listing.list_handler(resource))))
            if not resource.singleton:
                get_one = listing.get_handler(resource)
                routes.append(web.get(resource.route() + "/{id}", self._wrap(get_one)))
        routes += [
            web.get(
                _VERSION + "/tenantRelationships/delegatedAdminCustomers",
                self._wrap(listing.list_customers),
            ),
            web.route("*", _VERSION + "/{tail:.*}", self._wrap(self._unknown_path)),
        ]
        return routes

    def _wrap(
        self, inner: _Inner, *, action: Action | None = None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            call = Call(
                request=request,
                request_id=str(uuid.uuid4()),
                client_request_id=request.headers.get("client-request-id") or str(uuid.uuid4()),
                arrived=asyncio.get_running_loop().time(),
            )
            with self._core.graph_in_flight():
                if self._core.config.graph_latency_s > 0:
                    await asyncio.sleep(self._core.config.graph_latency_s)
                response = await self._authenticated(call, inner, action)
            if response is None:  # the "drop" fault: close without answering
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=204)
            response.headers["request-id"] = call.request_id
            response.headers["client-request-id"] = call.client_request_id
            response.headers["x-ms-ags-diagnostic"] = _DIAGNOSTIC
            response.headers.setdefault("Cache-Control", "no-cache")
            return response

        return handler

    async def _authenticated(
        self, call: Call, inner: _Inner, action: Action | None
    ) -> web.StreamResponse | None:
        core = self._core
        scheme, _, token = call.request.headers.get("Authorization", "").partition(" ")
        problem = None
        if scheme.lower() != "bearer" or not token.strip():
            problem = "Access token is empty."
        else:
            try:
                tenant = core.mint.open_access_token(token.strip(), now=time.time()).tenant
            except TokenInvalid as exc:
                problem = exc.reason
            else:
                if tenant in core.config.refused_token_tenants:
                    problem = "Access token validation failure: the session has been revoked."
        if problem is not None:
            core.stats.unauthorized += 1
            if action is not None:
                self._actions.log(call, "", action, None, 401)
                core.stats.action_statuses[(action.name, 401)] += 1
            return call.error(
                401,
                "InvalidAuthenticationToken",
                problem,
                headers={
                    "WWW-Authenticate": f'Bearer realm="", authorization_uri="{core.url}/common/'
                    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
                },
            )
        core.stats.graph_requests[tenant] += 1
        keys = [tenant]
        object_key = self._actions.pause_key(call, tenant, action) if action else None
        if object_key is not None:
            keys.append(object_key)
        if any(
            core.limiter.within_announced_pause(
                key, call.arrived, in_flight_s=_IN_FLIGHT_S, skew_s=_SKEW_S
            )
            for key in keys
        ):
            core.stats.requests_during_pause += 1
        return await inner(call, tenant)

    async def _unknown_path(self, call: Call, tenant: str) -> web.StreamResponse:
        segments = call.request.match_info["tail"].split("/")
        segment = next((s for s in segments if s not in _CONTAINERS), segments[-1])
        message = f"Resource not found for the segment '{segment[:64]}'."
        return call.error(400, "BadRequest", message)
