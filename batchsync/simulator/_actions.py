"""The Intune sync actions (every POST batchsync sends) and the rules that answer them.

``ACTIONS`` names each action as the contract does, with its path, Intune throttling
category, permission and object kind (actions.md is the reference for each). Every action
POST is checked in this order; the first rule that matches answers:

1. bearer token missing, forged or expired: 401 ``InvalidAuthenticationToken`` (``_graph``);
2. object id not a GUID, or a bad body: 400 ``BadRequest`` (the connector sync needs
   ``{"syncType": "fullSync"|"deltaSync"}``; the others take no parameters: an empty body
   or ``{}``, any other property is "not a valid parameter for the operation");
3. tenant in ``forbidden_tenants``: 403 ``Forbidden`` naming the action's permission;
4. tenant inside a Retry-After its own 429 announced in the action's category: 429 again
   (Graph keeps counting);
5. tenant over ``ThrottleConfig.limit_for(category)`` writes in ``window_s``: 429,
   Retry-After ``max(time until a slot frees, faults.retry_after_s)``; 429s are not counted
   as writes. Categories: "enrollment" (connectors, VPP tokens, DEP), "devices", and
   "androidForWork" (managed Google Play); Autopilot is in none (rules 4-5 skip it);
6. the tenant's first ``faults.http_503_first`` requests: 503 with Retry-After; then one
   seeded fault draw (both counted as writes: they reached the service);
7. the object does not exist: 404 ``ResourceNotFound`` (a connector in
   ``missing_connectors``; a device, VPP token or DEP setting not among the tenant's or in
   ``missing_objects``; a tenant in ``tenants_without_autopilot``); managed Google Play whose
   ``bindStatus`` is ``notBound`` or ``unbinding``: 400 ``BadRequest`` (the docs are silent;
   nothing to sync until an admin binds the account, and retrying does not help);
8. per-object cooldown: a connector synced less than ``connector_cooldown_s`` ago, another
   object less than ``object_cooldown_s`` ago: 429, Retry-After the cooldown left. Autopilot:
   409 ``Conflict`` while its sync runs (``autopilot_sync_s``), then 429 until
   ``autopilot_cooldown_s`` after that sync was accepted, with Retry-After only when
   ``autopilot_retry_after`` (the docs are silent on it);
9. accepted: 204 No Content; ``syncLicenses`` 200 with the vppToken (``lastSyncStatus``
   ``inProgress`` while the sync runs), in the ``vpp_sync_body`` form.

A connector cooldown's Retry-After is announced to the whole tenant (as before the other
actions existed); the other objects' cooldowns and Autopilot's 409/429 only to that object,
so only requests for it count in ``stats.requests_during_pause``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ._answers import Call, forbidden, format_retry_after, not_a_guid, not_found
from ._config import RetryAfterForm
from ._http import json_response
from ._ids import graph_key
from ._objects import (
    SINGLETON_KINDS,
    ObjectKind,
    bind_status,
    object_count,
    object_index,
    properties,
    singleton_id,
)
from ._state import Core, SyncEvent, TenantLimiter

__all__ = ["ACTIONS", "Action", "Actions"]

_SYNC_TYPES = frozenset({"fullSync", "deltaSync"})
_SERVICE_CONFIG = "DeviceManagementServiceConfig.ReadWrite.All"
_FAULT_ANSWERS = {
    "http_500": (500, "InternalServerError", "An internal server error occurred."),
    "http_502": (502, "BadGateway", "The gateway received an invalid response."),
    "http_503": (503, "ServiceUnavailable", "The service is temporarily unavailable."),
    "http_503_retry_after": (503, "ServiceUnavailable", "The service is temporarily unavailable."),
    "http_504": (504, "GatewayTimeout", "The gateway did not receive a response in time."),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One Graph sync action: where it is, what it syncs, what it needs."""

    name: str  # the contract's action name
    kind: ObjectKind
    collection: str  # path after /{version}/: the collection, or the singleton
    operation: str
    permission: str
    category: str | None  # Intune throttling category; None: no write window
    beta_only: bool
    what: str  # the object, for messages

    @property
    def singleton(self) -> bool:
        return self.kind in SINGLETON_KINDS

    def route(self) -> str:
        version = r"/{ver:beta}" if self.beta_only else r"/{ver:v1\.0|beta}"
        item = "" if self.singleton else "/{id}"
        return f"{version}/{self.collection}{item}/{self.operation}"


ACTIONS: tuple[Action, ...] = (
    Action(
        "exchange-connector-sync",
        "connector",
        "deviceManagement/exchangeConnectors",
        "sync",
        _SERVICE_CONFIG,
        "enrollment",
        beta_only=False,
        what="Exchange connector",
    ),
    Action(
        "device-sync",
        "device",
        "deviceManagement/managedDevices",
        "syncDevice",
        "DeviceManagementManagedDevices.PrivilegedOperations.All",
        "devices",
        beta_only=False,
        what="Managed device",
    ),
    Action(
        "vpp-license-sync",
        "vpp",
        "deviceAppManagement/vppTokens",
        "syncLicenses",
        _SERVICE_CONFIG,
        "enrollment",
        beta_only=False,
        what="VPP token",
    ),
    Action(
        "dep-sync",
        "dep",
        "deviceManagement/depOnboardingSettings",
        "syncWithAppleDeviceEnrollmentProgram",
        _SERVICE_CONFIG,
        "enrollment",
        beta_only=True,
        what="DEP onboarding setting",
    ),
    Action(
        "autopilot-sync",
        "autopilot",
        "deviceManagement/windowsAutopilotSettings",
        "sync",
        _SERVICE_CONFIG,
        None,
        beta_only=True,
        what="Windows Autopilot settings",
    ),
    Action(
        "managed-play-sync",
        "managed_play",
        "deviceManagement/androidManagedStoreAccountEnterpriseSettings",
        "syncApps",
        "DeviceManagementConfiguration.ReadWrite.All",
        "androidForWork",
        beta_only=True,
        what="Managed Google Play account",
    ),
)

_Inner = Callable[[Call, str], Awaitable[web.StreamResponse | None]]


class Actions:
    """The POST handlers of ``ACTIONS``, sharing the simulator's state."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def handler(self, action: Action) -> _Inner:
        async def inner(call: Call, tenant: str) -> web.StreamResponse | None:
            return await self._sync(call, tenant, action)

        return inner

    def object_id(self, call: Call, tenant: str, action: Action) -> str:
        """The object the request is for: the URL's id (canonical when a GUID), or the
        tenant's singleton id ("" when the tenant is unknown: the token was refused)."""
        if action.singleton:
            return singleton_id(action.kind, tenant) if tenant else ""
        raw = call.request.match_info.get("id", "")
        return graph_key(raw) or raw

    def pause_key(self, call: Call, tenant: str, action: Action) -> str | None:
        """The key of the object's own announced pauses, or None (connectors: the tenant's)."""
        if action.kind == "connector":
            return None
        return TenantLimiter.object_key(tenant, self.object_id(call, tenant, action))

    def log(
        self, call: Call, tenant: str, action: Action, sync_type: str | None, status: int
    ) -> None:
        self._core.stats.sync_log.append(
            SyncEvent(
                tenant=tenant,
                connector=self.object_id(call, tenant, action),
                sync_type=sync_type,
                client_request_id=call.client_request_id,
                request_id=call.request_id,
                status=status,
                at=time.time(),
                action=action.name,
            )
        )

    async def _sync(self, call: Call, tenant: str, action: Action) -> web.StreamResponse | None:
        stats = self._core.stats
        stats.sync_requests[tenant] += 1
        stats.action_requests[(action.name, tenant)] += 1
        sync_type: str | None = None
        if action.kind == "connector":
            sync_type = await _read_sync_type(call.request)
            problem = None if sync_type else _SYNC_TYPE_PROBLEM
        else:
            problem = await _parameters_problem(call.request, action.operation)
        response, accepted = await self._answer(call, tenant, action, problem)
        status = 0 if response is None else response.status
        self.log(call, tenant, action, sync_type, status)
        stats.action_statuses[(action.name, status)] += 1
        if accepted:
            stats.syncs[self.object_id(call, tenant, action)] += 1
            stats.action_syncs[(action.name, tenant)] += 1
        return response

    async def _answer(
        self, call: Call, tenant: str, action: Action, body_problem: str | None
    ) -> tuple[web.StreamResponse | None, bool]:
        core, config = self._core, self._core.config
        object_id = self.object_id(call, tenant, action)
        if not action.singleton and graph_key(object_id) is None:
            return not_a_guid(call, object_id), False
        if body_problem is not None:
            return call.error(400, "BadRequest", body_problem), False
        if tenant in config.forbidden_tenants:
            return forbidden(call, action.permission), False
        loop = asyncio.get_running_loop()
        now = loop.time()
        category = action.category
        if category is not None:
            paused = core.limiter.enforced_pause_left(tenant, now, category=category)
            if paused > 0:
                return self._throttled(call, tenant, paused), False
            slot_wait = core.limiter.admit_write(
                tenant,
                now,
                limit=config.throttle.limit_for(category),
                window_s=config.throttle.window_s,
                category=category,
            )
            if slot_wait > 0:
                wait = max(slot_wait, config.faults.retry_after_s)
                return self._throttled(call, tenant, wait, enforce=category), False
        core.sync_attempts[tenant] += 1
        if core.sync_attempts[tenant] <= config.faults.http_503_first:
            core.stats.faults["http_503_first"] += 1
            return self._fault(call, tenant, "http_503_retry_after"), False
        fault = core.draw_fault()
        if fault is not None:
            core.stats.faults[fault] += 1
            if fault == "drop":
                return None, False
            if fault == "slow":
                await asyncio.sleep(config.faults.slow_s)
                now = loop.time()
            elif fault == "http_429":
                return self._throttled(call, tenant, config.faults.retry_after_s), False
            elif fault == "malformed":
                return web.Response(
                    status=500,
                    text="<html><body><h1>500 Internal Server Error</h1></body></html>",
                    content_type="text/html",
                ), False
            else:
                return self._fault(call, tenant, fault), False
        missing = self._missing(call, tenant, action, object_id)
        if missing is not None:
            return missing, False
        refused = self._cooling(call, tenant, action, object_id, now)
        if refused is not None:
            return refused, False
        core.limiter.note_sync(tenant, object_id, now)
        wall = time.time()
        core.last_synced[(tenant, object_id)] = wall
        if action.kind == "vpp":
            return self._vpp_body(call, tenant, object_id, wall), True
        return web.Response(status=204), True

    def _missing(
        self, call: Call, tenant: str, action: Action, object_id: str
    ) -> web.Response | None:
        """Rule 7: the object does not exist (or, managed Google Play, is not bound)."""
        config = self._core.config
        if action.kind == "connector":
            if object_id in config.missing_connectors:
                return not_found(call, action.what, object_id)
            return None
        if action.kind == "autopilot":
            if object_count("autopilot", tenant, config) == 0:
                return not_found(call, action.what, object_id)
            return None
        if action.kind == "managed_play":
            binding = bind_status(tenant, config)
            if binding not in ("bound", "boundAndValidated"):
                return call.error(
                    400,
                    "BadRequest",
                    f"The managed Google Play account of this tenant is not bound (bindStatus "
                    f"'{binding}'): bind it in the Intune admin center before syncing apps.",
                )
            return None
        if object_index(action.kind, tenant, object_id, config) is None:
            return not_found(call, action.what, object_id)
        return None

    def _cooling(
        self, call: Call, tenant: str, action: Action, object_id: str, now: float
    ) -> web.Response | None:
        """Rule 8: the object's own cooldown (Autopilot: 409 while running, then 429)."""
        limiter, throttle = self._core.limiter, self._core.config.throttle
        if action.kind == "connector":
            left = limiter.cooldown_left(
                tenant, object_id, now, cooldown_s=throttle.connector_cooldown_s
            )
            return self._throttled(call, tenant, left) if left > 0 else None
        key = TenantLimiter.object_key(tenant, object_id)
        if action.kind != "autopilot":
            left = limiter.cooldown_left(
                tenant, object_id, now, cooldown_s=throttle.object_cooldown_s
            )
            return self._throttled(call, tenant, left, key=key) if left > 0 else None
        form: RetryAfterForm | None = None
        if throttle.autopilot_retry_after:
            form = "seconds" if throttle.retry_after == "none" else throttle.retry_after
        running = limiter.cooldown_left(
            tenant, object_id, now, cooldown_s=self._core.config.autopilot_sync_s
        )
        if running > 0:
            headers = self._announce(key, form, running) if form else None
            return call.error(
                409,
                "Conflict",
                "A Windows Autopilot sync is already in progress for this tenant.",
                headers=headers,
            )
        left = limiter.cooldown_left(
            tenant, object_id, now, cooldown_s=throttle.autopilot_cooldown_s
        )
        if left > 0:
            minutes = f"{throttle.autopilot_cooldown_s / 60:g}"
            return self._throttled(
                call,
                tenant,
                left,
                key=key,
                form=form or "none",
                message=f"A Windows Autopilot sync was requested within {minutes} minutes of "
                "the previous one. Try again later.",
            )
        return None

    def _vpp_body(self, call: Call, tenant: str, object_id: str, wall: float) -> web.Response:
        config = self._core.config
        index = object_index("vpp", tenant, object_id, config)
        token: dict[str, Any] = properties(
            "vpp", tenant, object_id, index, config, synced_at=wall, now=wall
        )
        if config.vpp_sync_body == "none":
            return web.Response(status=200)
        if config.vpp_sync_body == "value":
            return json_response({"value": {"@odata.type": "#microsoft.graph.vppToken", **token}})
        version = call.request.match_info["ver"]
        context = f"{self._core.url}/{version}/$metadata#deviceAppManagement/vppTokens/$entity"
        return json_response({"@odata.context": context, **token})

    def _throttled(
        self,
        call: Call,
        tenant: str,
        wait_s: float,
        *,
        enforce: str | None = None,
        key: str | None = None,
        form: RetryAfterForm | None = None,
        message: str = "Too many requests. Retry after the time given in the Retry-After header.",
    ) -> web.Response:
        """429 ``TooManyRequests``: ``enforce`` (a category) makes the whole tenant wait in it
        (rule 4); ``key`` announces the wait to one object instead of the tenant."""
        core = self._core
        headers = self._announce(
            key or tenant,
            form or core.config.throttle.retry_after,
            wait_s,
            enforce=(tenant, enforce) if enforce else None,
        )
        core.stats.throttled[tenant] += 1
        return call.error(429, "TooManyRequests", message, headers=headers)

    def _fault(self, call: Call, tenant: str, fault: str) -> web.Response:
        status, code, message = _FAULT_ANSWERS[fault]
        headers = None
        if fault == "http_503_retry_after" or self._core.config.faults.retry_after_on_5xx:
            form = self._core.config.throttle.retry_after
            headers = self._announce(
                tenant,
                "seconds" if form == "none" else form,
                self._core.config.faults.retry_after_s,
            )
        return call.error(status, code, message, headers=headers)

    def _announce(
        self,
        key: str,
        form: RetryAfterForm,
        wait_s: float,
        *,
        enforce: tuple[str, str] | None = None,
    ) -> dict[str, str] | None:
        value, announced = format_retry_after(form, wait_s, now_wall=time.time())
        if value is None:
            return None
        now = asyncio.get_running_loop().time()
        self._core.limiter.announce(key, now, now + announced, enforce=enforce)
        return {"Retry-After": value}


_SYNC_TYPE_PROBLEM = "Invalid request body: 'syncType' must be 'fullSync' or 'deltaSync'."


async def _read_sync_type(request: web.Request) -> str | None:
    """The body's ``syncType`` when it is one of Graph's two values, else None."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    value = body.get("syncType") if isinstance(body, dict) else None
    return value if value in _SYNC_TYPES else None


async def _parameters_problem(request: web.Request, operation: str) -> str | None:
    """Why the body of a parameterless action is refused, or None (empty, ``{}``)."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "The request body is not valid JSON."
    if not isinstance(body, dict):
        return f"The request payload of the operation '{operation}' must be a JSON object."
    if body:
        name = str(next(iter(body)))[:64]
        return (
            f"The parameter '{name}' in the request payload is not a valid parameter for the "
            f"operation '{operation}'."
        )
    return None
