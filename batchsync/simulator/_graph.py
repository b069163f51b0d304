"""The Microsoft Graph side: the Exchange connector sync, the connector list, GDAP customers.

Every answer carries ``request-id``, ``client-request-id`` (echoed, or new),
``x-ms-ags-diagnostic`` and ``Date``; errors carry Graph's body
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.

A sync request is checked in this order; the first rule that matches answers:

1. bearer token missing, forged or expired: 401 ``InvalidAuthenticationToken``;
2. connector id not a GUID, body without a valid ``syncType``: 400 ``BadRequest``;
3. tenant in ``forbidden_tenants``: 403 ``Forbidden``;
4. tenant inside a Retry-After its own 429 announced: 429 again (Graph keeps counting);
5. tenant over ``write_limit`` writes in ``window_s``: 429, Retry-After
   ``max(time until a slot frees, faults.retry_after_s)``; 429s are not counted as writes;
6. one seeded fault draw (counted as a write: it reached the service);
7. connector in ``missing_connectors``: 404 ``ResourceNotFound``;
8. connector synced less than ``connector_cooldown_s`` ago: 429 (per-object cooldown,
   Retry-After = the cooldown left; other connectors of the tenant go on);
9. 204 No Content.

Requests of a tenant arriving before the end of any Retry-After announced to it (429 or
503) are counted in ``stats.requests_during_pause``, except those within 200 ms of the
announcement (already on their way when it was sent) or 50 ms of its end (clock skew).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import hashlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from ._config import RetryAfterForm, SimulatorConfig
from ._http import json_response as _json
from ._ids import graph_key
from ._state import Core, SyncEvent
from ._tokens import TokenInvalid, b64url, unb64url

__all__ = ["CONNECTOR_NAMESPACE", "Graph", "connector_ids", "format_retry_after"]

CONNECTOR_NAMESPACE = uuid.UUID("8a4c5e1f-2b3d-4f6a-9c7e-1d2b3a4c5e6f")
_IN_FLIGHT_S = 0.2  # after a pause is announced: requests already on their way
_SKEW_S = 0.05  # before it ends: clock skew
_VERSION = r"/{ver:v1\.0|beta}"
_EPOCH_2024 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
_SYNC_TYPES = frozenset({"fullSync", "deltaSync"})
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
_FAULT_ANSWERS = {
    "http_500": (500, "InternalServerError", "An internal server error occurred."),
    "http_502": (502, "BadGateway", "The gateway received an invalid response."),
    "http_503": (503, "ServiceUnavailable", "The service is temporarily unavailable."),
    "http_503_retry_after": (503, "ServiceUnavailable", "The service is temporarily unavailable."),
    "http_504": (504, "GatewayTimeout", "The gateway did not receive a response in time."),
}


def connector_ids(tenant: str, config: SimulatorConfig | None = None) -> list[str]:
    """The connector ids ``GET exchangeConnectors`` lists for ``tenant``.

    ``config.connectors_per_tenant[tenant]`` of them, else 0 to 3 chosen by a hash of the
    tenant; ids are ``uuid5(CONNECTOR_NAMESPACE, tenant + str(index))``; connectors in
    ``missing_connectors`` are left out.
    """
    tenant = tenant.lower()
    counts = config.connectors_per_tenant if config else None
    if counts is not None and tenant in counts:
        count = counts[tenant]
    else:
        count = hashlib.sha256(tenant.encode()).digest()[0] % 4
    missing = config.missing_connectors if config else frozenset()
    ids = (str(uuid.uuid5(CONNECTOR_NAMESPACE, tenant + str(index))) for index in range(count))
    return [cid for cid in ids if cid not in missing]


def format_retry_after(
    form: RetryAfterForm, wait_s: float, *, now_wall: float
) -> tuple[str | None, float]:
    """The ``Retry-After`` header value for ``wait_s`` and the wait it announces (seconds).

    Values are rounded up, so a client that waits exactly what it was told never arrives
    early: "seconds" is a whole number (at least 1), "float" has three decimals, "date" is
    the next whole second as an HTTP-date; "none" announces nothing.
    """
    if form == "seconds":
        seconds = max(1, math.ceil(wait_s))
        return str(seconds), float(seconds)
    if form == "float":
        value = max(math.ceil(wait_s * 1000), 1) / 1000
        return f"{value:.3f}", value
    if form == "date":
        target = math.ceil(now_wall + wait_s)
        return email.utils.formatdate(target, usegmt=True), target - now_wall
    return None, 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """One Graph request being answered: its ids, shared by headers and error bodies."""

    request: web.Request
    request_id: str
    client_request_id: str
    arrived: float  # loop time, before any simulated latency

    def error(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": self.request_id,
                    "client-request-id": self.client_request_id,
                },
            }
        }
        return _json(body, status=status, headers=headers)


_Inner = Callable[[_Call, str], Awaitable[web.StreamResponse | None]]


class Graph:
    """Handlers for ``/{v1.0|beta}/...``."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def routes(self) -> list[web.RouteDef]:
        connectors = _VERSION + "/deviceManagement/exchangeConnectors"
        return [
            web.post(connectors + "/{connector}/sync", self._wrap(self._sync)),
            web.get(connectors, self._wrap(self._list_connectors)),
            web.get(connectors + "/{connector}", self._wrap(self._get_connector)),
            web.get(
                _VERSION + "/tenantRelationships/delegatedAdminCustomers",
                self._wrap(self._list_customers),
            ),
            web.route("*", _VERSION + "/{tail:.*}", self._wrap(self._unknown_path)),
        ]

    def _wrap(self, inner: _Inner) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            call = _Call(
                request=request,
                request_id=str(uuid.uuid4()),
                client_request_id=request.headers.get("client-request-id") or str(uuid.uuid4()),
                arrived=asyncio.get_running_loop().time(),
            )
            with self._core.graph_in_flight():
                if self._core.config.graph_latency_s > 0:
                    await asyncio.sleep(self._core.config.graph_latency_s)
                response = await self._authenticated(call, inner)
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

    async def _authenticated(self, call: _Call, inner: _Inner) -> web.StreamResponse | None:
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
        if problem is not None:
            core.stats.unauthorized += 1
            if call.request.match_info.get("connector") and call.request.method == "POST":
                self._log_sync(call, "", None, 401)
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
        if core.limiter.within_announced_pause(
            tenant, call.arrived, in_flight_s=_IN_FLIGHT_S, skew_s=_SKEW_S
        ):
            core.stats.requests_during_pause += 1
        return await inner(call, tenant)

    # ------------------------------------------------------------------ the sync

    async def _sync(self, call: _Call, tenant: str) -> web.StreamResponse | None:
        self._core.stats.sync_requests[tenant] += 1
        sync_type = await _read_sync_type(call.request)
        response = await self._answer_sync(call, tenant, sync_type)
        status = 0 if response is None else response.status
        self._log_sync(call, tenant, sync_type, status)
        if status == 204:
            self._core.stats.syncs[_path_connector(call)] += 1
        return response

    async def _answer_sync(
        self, call: _Call, tenant: str, sync_type: str | None
    ) -> web.StreamResponse | None:
        core, config = self._core, self._core.config
        connector = graph_key(call.request.match_info["connector"])
        if connector is None:
            return _not_a_guid(call)
        if sync_type is None:
            return call.error(
                400,
                "BadRequest",
                "Invalid request body: 'syncType' must be 'fullSync' or 'deltaSync'.",
            )
        if tenant in config.forbidden_tenants:
            return _forbidden(call)
        loop = asyncio.get_running_loop()
        now = loop.time()
        paused = core.limiter.enforced_pause_left(tenant, now)
        if paused > 0:
            return self._throttled(call, tenant, paused, enforce=False)
        slot_wait = core.limiter.admit_write(
            tenant, now, limit=config.throttle.write_limit, window_s=config.throttle.window_s
        )
        if slot_wait > 0:
            wait = max(slot_wait, config.faults.retry_after_s)
            return self._throttled(call, tenant, wait, enforce=True)
        fault = core.draw_fault()
        if fault is not None:
            core.stats.faults[fault] += 1
            if fault == "drop":
                return None
            if fault == "slow":
                await asyncio.sleep(config.faults.slow_s)
                now = loop.time()
            elif fault == "http_429":
                return self._throttled(call, tenant, config.faults.retry_after_s, enforce=False)
            elif fault == "malformed":
                return web.Response(
                    status=500,
                    text="<html><body><h1>500 Internal Server Error</h1></body></html>",
                    content_type="text/html",
                )
            else:
                return self._fault(call, tenant, fault)
        if connector in config.missing_connectors:
            return _not_found(call, connector)
        cooldown = core.limiter.cooldown_left(
            tenant, connector, now, cooldown_s=config.throttle.connector_cooldown_s
        )
        if cooldown > 0:
            return self._throttled(call, tenant, cooldown, enforce=False)
        core.limiter.note_sync(tenant, connector, now)
        core.last_synced[(tenant, connector)] = time.time()
        return web.Response(status=204)

    def _throttled(self, call: _Call, tenant: str, wait_s: float, *, enforce: bool) -> web.Response:
        """429 ``TooManyRequests``; ``enforce`` makes the whole tenant wait (rule 4)."""
        core = self._core
        headers = self._announce(tenant, core.config.throttle.retry_after, wait_s, enforce=enforce)
        core.stats.throttled[tenant] += 1
        return call.error(
            429,
            "TooManyRequests",
            "Too many requests. Retry after the time given in the Retry-After header.",
            headers=headers,
        )

    def _fault(self, call: _Call, tenant: str, fault: str) -> web.Response:
        status, code, message = _FAULT_ANSWERS[fault]
        headers = None
        if fault == "http_503_retry_after" or self._core.config.faults.retry_after_on_5xx:
            form = self._core.config.throttle.retry_after
            headers = self._announce(
                tenant,
                "seconds" if form == "none" else form,
                self._core.config.faults.retry_after_s,
                enforce=False,
            )
        return call.error(status, code, message, headers=headers)

    def _announce(
        self, tenant: str, form: RetryAfterForm, wait_s: float, *, enforce: bool
    ) -> dict[str, str] | None:
        value, announced = format_retry_after(form, wait_s, now_wall=time.time())
        if value is None:
            return None
        now = asyncio.get_running_loop().time()
        self._core.limiter.announce(tenant, now, now + announced, enforce=enforce)
        return {"Retry-After": value}

    def _log_sync(self, call: _Call, tenant: str, sync_type: str | None, status: int) -> None:
        self._core.stats.sync_log.append(
            SyncEvent(
                tenant=tenant,
                connector=_path_connector(call),
                sync_type=sync_type,
                client_request_id=call.client_request_id,
                request_id=call.request_id,
                status=status,
                at=time.time(),
            )
        )

    # ------------------------------------------------------------------ reads

    async def _list_connectors(self, call: _Call, tenant: str) -> web.StreamResponse:
        config = self._core.config
        if tenant in config.forbidden_tenants:
            return _forbidden(call)
        ids = connector_ids(tenant, config)
        items = [self._connector(tenant, cid, index) for index, cid in enumerate(ids)]
        return self._page(call, "deviceManagement/exchangeConnectors", items)

    async def _get_connector(self, call: _Call, tenant: str) -> web.StreamResponse:
        """One connector; an open-world id not in the tenant's list answers as connected."""
        config = self._core.config
        connector = graph_key(call.request.match_info["connector"])
        if connector is None:
            return _not_a_guid(call)
        if tenant in config.forbidden_tenants:
            return _forbidden(call)
        if connector in config.missing_connectors:
            return _not_found(call, connector)
        listed = connector_ids(tenant, config)
        index = listed.index(connector) if connector in listed else None
        body = self._connector(tenant, connector, index)
        body["@odata.context"] = (
            f"{self._core.url}/{call.request.match_info['ver']}/$metadata#deviceManagement/"
            "exchangeConnectors/$entity"
        )
        return _json(body)

    async def _list_customers(self, call: _Call, tenant: str) -> web.StreamResponse:
        customers = self._core.config.gdap_customers
        items: list[dict[str, Any]] = [
            {"id": customer, "tenantId": customer, "displayName": _display_name(customer, i)}
            for i, customer in enumerate(customers)
        ]
        return self._page(call, "tenantRelationships/delegatedAdminCustomers", items)

    async def _unknown_path(self, call: _Call, tenant: str) -> web.StreamResponse:
        segment = call.request.match_info["tail"].split("/", 1)[0]
        message = f"Resource not found for the segment '{segment[:64]}'."
        return call.error(400, "BadRequest", message)

    def _page(self, call: _Call, path: str, items: Sequence[dict[str, Any]]) -> web.StreamResponse:
        """``value`` from ``$skiptoken`` on, ``page_size`` long, with ``@odata.nextLink``."""
        token = call.request.query.get("$skiptoken")
        try:
            offset = int(orjson.loads(unb64url(token))["o"]) if token else 0
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return call.error(400, "BadRequest", "The $skiptoken is not valid.")
        size = self._core.config.page_size
        base = f"{self._core.url}/{call.request.match_info['ver']}"
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#{path}",
            "value": list(items[offset : offset + size]),
        }
        if offset + size < len(items):
            skip = b64url(orjson.dumps({"o": offset + size}))
            body["@odata.nextLink"] = f"{base}/{path}?$skiptoken={skip}"
        return _json(body)

    def _connector(self, tenant: str, connector: str, index: int | None) -> dict[str, Any]:
        """A connector's properties, stable per id; mostly connected, about 1 in 4 not
        (``connector_status`` says otherwise for the ids it names)."""
        digest = hashlib.sha256(connector.encode()).digest()
        domain = tenant if "." in tenant else f"tenant-{tenant[:8]}.onmicrosoft.com"
        last = self._core.last_synced.get((tenant, connector))
        if last is None:  # a stable moment before the connector's end of support
            last = _EPOCH_2024 + int.from_bytes(digest[:3]) % 4_000_000
        number = (index or 0) + 1
        return {
            "id": connector,
            "lastSyncDateTime": datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": self._core.config.connector_status.get(connector)
            or ("disconnected" if index is not None and digest[0] % 4 == 0 else "connected"),
            "primarySmtpAddress": f"intune-connector{number}@{domain}",
            "serverName": f"EXCH{number:02d}.{domain}",
            "connectorServerName": f"CONN{number:02d}.{domain}",
            "exchangeConnectorType": "onPremises",
            "version": "19.4.1111.0",
            "exchangeAlias": f"intune-connector{number}",
            "exchangeOrganization": domain.split(".", 1)[0],
        }


async def _read_sync_type(request: web.Request) -> str | None:
    """The body's ``syncType`` when it is one of Graph's two values, else None."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    value = body.get("syncType") if isinstance(body, dict) else None
    return value if value in _SYNC_TYPES else None


def _path_connector(call: _Call) -> str:
    """The connector id of the URL, canonical when it is a GUID (for stats and logs)."""
    raw = call.request.match_info.get("connector", "")
    return graph_key(raw) or raw


def _not_a_guid(call: _Call) -> web.Response:
    raw = call.request.match_info["connector"]
    return call.error(400, "BadRequest", f"Invalid key '{raw[:64]}': it is not a GUID.")


def _forbidden(call: _Call) -> web.Response:
    return call.error(
        403,
        "Forbidden",
        "Application is not authorized to perform this operation. Application must have one "
        "of the following scopes: DeviceManagementServiceConfig.ReadWrite.All",
    )


def _not_found(call: _Call, connector: str) -> web.Response:
    return call.error(404, "ResourceNotFound", f"Exchange connector '{connector}' was not found.")


def _display_name(tenant: str, index: int) -> str:
    return tenant.split(".", 1)[0].title() if "." in tenant else f"Customer {index + 1}"
