"""The Entra ID side: OpenID discovery, the v2.0 token endpoint and device-code sign-in.

Shapes follow what real Entra answers and what MSAL Python 1.39 reads
(``msal/authority.py``, ``msal/token_cache.py``). Deviations, on purpose:

- a domain tenant keeps its name in endpoints and in ``tid`` (Entra resolves it to a GUID),
  so stats and tokens are keyed by the tenant string the client used;
- ``common``/``organizations``/``consumers`` issue delegated tokens for the technician's
  home (partner) tenant, and refuse client credentials (AADSTS50059);
- ``temporarily_unavailable`` answers carry ``Retry-After: 0``: MSAL caches a 5xx for as
  many seconds as it announces (5 when absent), which would hide retries from the server.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from ._http import json_response as _json
from ._ids import is_tenant
from ._state import (
    PARTNER_TENANT_ID,
    TECHNICIAN_NAME,
    TECHNICIAN_OID,
    TECHNICIAN_UPN,
    Core,
    DeviceCode,
)
from ._tokens import TokenInvalid, b64url, check_client_assertion, unsigned_jwt

__all__ = ["GRAPH_PERMISSION", "Entra", "tenant_exists"]

GRAPH_PERMISSION = "DeviceManagementServiceConfig.ReadWrite.All"
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_GRANT_NAMES = {_DEVICE_GRANT: "device_code"}
_DEVICE_CODE_LIFETIME_S = 900

# AADSTS code -> (OAuth error, description template). Fields: {tenant} {client_id}
# {resource} {upn} {home}. Unlisted codes answer invalid_request with a generic text.
_ERRORS: dict[int, tuple[str, str]] = {
    50020: (
        "invalid_grant",
        "User account '{upn}' from identity provider 'https://sts.windows.net/{home}/' does "
        "not exist in tenant '{tenant}' and cannot access the application '{client_id}' in "
        "that tenant.",
    ),
    50034: (
        "invalid_request",
        "The user account {upn} does not exist in the {tenant} directory. To sign into this "
        "application, the account must be added to the directory.",
    ),
    50059: (
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any "
        "provided credentials.",
    ),
    50076: (
        "interaction_required",
        "Due to a configuration change made by your administrator, or because you moved to "
        "a new location, you must use multi-factor authentication to access '{resource}'.",
    ),
    50079: (
        "interaction_required",
        "Due to a configuration change made by your administrator, or because you moved to "
        "a new location, you must enroll in multi-factor authentication to access "
        "'{resource}'.",
    ),
    50173: (
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is "
        "needed. The user might have changed or reset their password.",
    ),
    53003: (
        "invalid_grant",
        "Access has been blocked by Conditional Access policies. The access policy does not "
        "allow token issuance.",
    ),
    65001: (
        "invalid_grant",
        "The user or administrator has not consented to use the application with ID "
        "'{client_id}'. Send an interactive authorization request for this user and resource.",
    ),
    70000: (
        "invalid_grant",
        "The provided value for the input parameter 'device_code' is not valid.",
    ),
    70003: ("unsupported_grant_type", "The app requested an unsupported grant type."),
    70008: (
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. "
        "Send a new interactive authorization request for this user and resource.",
    ),
    70011: (
        "invalid_scope",
        "The provided value for the input parameter 'scope' isn't valid. The scope requested "
        "must be '{resource}/.default'.",
    ),
    70016: (
        "authorization_pending",
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    ),
    70019: ("expired_token", "Verification code expired."),
    90002: (
        "invalid_tenant",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, "
        "this may happen if there are no active subscriptions for the tenant.",
    ),
    90033: ("temporarily_unavailable", "A transient error has occurred. Please try again."),
    90099: (
        "invalid_grant",
        "The application '{client_id}' has not been authorized in the tenant '{tenant}'. "
        "Applications must be authorized to access the customer tenant before partner "
        "delegated administrators can use them.",
    ),
    500011: (
        "invalid_resource",
        "The resource principal named {resource} was not found in the tenant named "
        "{tenant}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant.",
    ),
    700016: (
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory "
        "'{tenant}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may "
        "have sent your authentication request to the wrong tenant.",
    ),
    700082: (
        "invalid_grant",
        "The refresh token has expired due to inactivity. The token was issued on "
        "2025-01-01T00:00:00Z and was inactive for 90.00:00:00.",
    ),
    7000215: (
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app "
        "'{client_id}'.",
    ),
    7000218: (
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    ),
    7000222: (
        "invalid_client",
        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
        "portal to create new keys for your app.",
    ),
    9002313: ("invalid_grant", "Invalid request. Request is malformed or invalid."),
}
for _code in (50033, 50087, 90006, 90024, 90055, 90090):
    _ERRORS[_code] = _ERRORS[90033]


def tenant_exists(tenant: str, unknown: frozenset[str]) -> bool:
    """Open world: any GUID, domain or multi-tenant alias not listed as unknown."""
    lowered = tenant.lower()
    valid = lowered in _MULTI_TENANT or is_tenant(tenant)
    return valid and lowered not in unknown


class _EntraError(Exception):
    """An OAuth error answer; raised inside a handler, turned into a response once."""

    def __init__(
        self,
        code: int,
        *,
        message: str | None = None,
        error: str | None = None,
        status: int | None = None,
    ):
        known_error, template = _ERRORS.get(code, ("invalid_request", "Simulated error."))
        error = error or known_error
        super().__init__(error)
        self.code = code
        self.error = error
        self.template = message or template
        self.status = status or (401 if error == "invalid_client" else 400)


class Entra:
    """Handlers for ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2``."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            web.post("/{tenant}/oauth2/v2.0/token", self.token),
            web.post("/{tenant}/oauth2/v2.0/devicecode", self.device_code),
        ]

    # ------------------------------------------------------------------ discovery

    async def openid_configuration(self, request: web.Request) -> web.Response:
        core = self._core
        tenant = request.match_info["tenant"]
        core.stats.discovery_requests[tenant.lower()] += 1
        if core.config.discovery_latency_s > 0:
            await asyncio.sleep(core.config.discovery_latency_s)
        if not tenant_exists(tenant, core.config.unknown_tenants):
            return self._error_response(request, tenant, _EntraError(90002))
        base = f"{core.url}/{tenant}"
        multi = tenant.lower() in _MULTI_TENANT
        netloc = urlsplit(core.url).netloc
        body = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{core.url}/{'{tenantid}' if multi else tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{core.url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid", "name"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": None if multi else "NA",
            "cloud_instance_name": netloc,
            "cloud_graph_host_name": netloc,
            "msgraph_host": netloc,
            "rbac_url": core.url,
        }
        return _json(body)

    # ------------------------------------------------------------------ token endpoint

    async def token(self, request: web.Request) -> web.Response:
        core = self._core
        tenant = request.match_info["tenant"]
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        core.stats.token_requests[(tenant.lower(), _GRANT_NAMES.get(grant, grant))] += 1
        with core.tokens_in_flight():
            if core.config.token_latency_s > 0:
                await asyncio.sleep(core.config.token_latency_s)
            lowered = tenant.lower()
            if core.token_attempts[lowered] < core.config.faults.token_gateway_429_first:
                core.token_attempts[lowered] += 1
                return web.Response(status=429)  # a gateway's: no JSON body, no Retry-After
            try:
                return self._token(request, tenant, form, grant)
            except _EntraError as exc:
                return self._error_response(request, tenant, exc)

    def _token(
        self, request: web.Request, tenant: str, form: MultiDictProxy[Any], grant: str
    ) -> web.Response:
        core, config = self._core, self._core.config
        lowered = tenant.lower()
        if not tenant_exists(tenant, config.unknown_tenants):
            raise _EntraError(90002)
        core.token_attempts[lowered] += 1
        gateway = config.faults.token_gateway_429_first
        if core.token_attempts[lowered] - gateway <= config.faults.token_unavailable_first:
            raise _EntraError(90033, status=503)
        if not grant:
            raise _EntraError(
                900144,
                message="The request body must contain the following parameter: 'grant_type'.",
            )
        self._check_client_id(form)
        if lowered in config.tenant_errors:
            raise _EntraError(config.tenant_errors[lowered])
        # A device-code redemption may omit the scope: the one given at initiation applies.
        scope = self._check_scope(form) if grant != _DEVICE_GRANT or "scope" in form else ""
        authenticated = self._authenticate_client(request, form, tenant)
        now = time.time()
        if grant == "client_credentials":
            if not authenticated:
                raise _EntraError(7000218)
            if lowered in _MULTI_TENANT:
                raise _EntraError(50059)
            token = core.mint.access_token(
                tenant=lowered, kind="app", lifetime_s=config.token_lifetime_s, now=now
            )
            return _json(self._token_body(token), no_store=True)
        if grant == "refresh_token":
            if config.revoked_refresh_tokens:
                raise _EntraError(700082)
            try:
                core.mint.open_refresh_token(str(form.get("refresh_token", "")))
            except TokenInvalid as exc:
                raise _EntraError(9002313) from exc
            return self._user_tokens(lowered, scope, form, now)
        if grant == _DEVICE_GRANT:
            granted = self._redeem_device_code(str(form.get("device_code", "")))
            return self._user_tokens(lowered, scope or granted, form, now)
        raise _EntraError(70003)

    def _check_client_id(self, form: MultiDictProxy[Any]) -> None:
        if form.get("client_id") != self._core.config.client_id:
            raise _EntraError(700016)

    def _check_scope(self, form: MultiDictProxy[Any]) -> str:
        """The one resource scope, which must be ``{graph root}/.default`` (AADSTS70011)."""
        scopes = str(form.get("scope", "")).split()
        resources = [s for s in scopes if s.lower() not in _OIDC_SCOPES]
        expected = f"{self._core.url}/.default"
        if len(resources) != 1 or resources[0].lower() != expected.lower():
            raise _EntraError(70011)
        return expected

    def _authenticate_client(
        self, request: web.Request, form: MultiDictProxy[Any], tenant: str
    ) -> bool:
        """True when a credential was presented and is right; False when none was sent."""
        config = self._core.config
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != _JWT_BEARER:
                raise _EntraError(
                    7000219,
                    message="'client_assertion_type' must be "
                    "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
                    error="invalid_client",
                )
            try:
                check_client_assertion(
                    str(assertion),
                    cert=self._core.cert,
                    client_id=config.client_id,
                    audience=f"{self._core.url}/{tenant}/oauth2/v2.0/token",
                    now=time.time(),
                )
            except TokenInvalid as exc:
                raise _EntraError(
                    exc.code or 700027, message=exc.reason, error="invalid_client"
                ) from exc
            return True
        secret = form.get("client_secret")
        if secret is None:
            secret = _basic_auth_secret(request.headers.get("Authorization", ""))
        if secret is None:
            return False
        if not hmac.compare_digest(str(secret).encode(), config.client_secret.encode()):
            raise _EntraError(7000215)
        return True

    def _redeem_device_code(self, device_code: str) -> str:
        """Consume an approved device code and return the scope it was initiated with."""
        pending = self._core.device_codes.get(device_code)
        if pending is None:
            raise _EntraError(70000)
        if asyncio.get_running_loop().time() >= pending.expires_at:
            del self._core.device_codes[device_code]
            raise _EntraError(70019)
        if not (pending.approved or self._core.config.auto_approve_device_code):
            raise _EntraError(70016)
        del self._core.device_codes[device_code]  # one redemption per code
        return pending.scope

    def _user_tokens(
        self, tenant: str, scope: str, form: MultiDictProxy[Any], now: float
    ) -> web.Response:
        """Delegated tokens of the technician, issued by ``tenant`` (home tenant for aliases)."""
        core, config = self._core, self._core.config
        tid = PARTNER_TENANT_ID if tenant in _MULTI_TENANT else tenant
        access = core.mint.access_token(
            tenant=tid, kind="user", lifetime_s=config.token_lifetime_s, now=now
        )
        body = self._token_body(access)
        body["scope"] = f"{core.url}/{GRAPH_PERMISSION} {scope}"
        body["refresh_token"] = core.mint.refresh_token(
            subject=TECHNICIAN_OID, home_tenant=PARTNER_TENANT_ID, now=now
        )
        body["id_token"] = unsigned_jwt(
            {
                "aud": config.client_id,
                "iss": f"{core.url}/{tid}/v2.0",
                "iat": int(now),
                "nbf": int(now),
                "exp": int(now) + config.token_lifetime_s,
                "name": TECHNICIAN_NAME,
                "oid": TECHNICIAN_OID,
                "preferred_username": TECHNICIAN_UPN,
                "sub": b64url(uuid.uuid5(uuid.NAMESPACE_URL, TECHNICIAN_OID + tid).bytes),
                "tid": tid,
                "ver": "2.0",
            }
        )
        if form.get("client_info") == "1":
            body["client_info"] = b64url(
                orjson.dumps({"uid": TECHNICIAN_OID, "utid": PARTNER_TENANT_ID})
            )
        return _json(body, no_store=True)

    def _token_body(self, access_token: str) -> dict[str, Any]:
        lifetime = self._core.config.token_lifetime_s
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }

    # ------------------------------------------------------------------ device code

    async def device_code(self, request: web.Request) -> web.Response:
        core = self._core
        tenant = request.match_info["tenant"]
        form = await request.post()
        with core.tokens_in_flight():
            if core.config.token_latency_s > 0:
                await asyncio.sleep(core.config.token_latency_s)
            try:
                if not tenant_exists(tenant, core.config.unknown_tenants):
                    raise _EntraError(90002)
                self._check_client_id(form)
                scope = self._check_scope(form)
            except _EntraError as exc:
                return self._error_response(request, tenant, exc)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        device_code = secrets.token_urlsafe(32)
        core.device_codes[device_code] = DeviceCode(
            user_code=user_code,
            tenant=tenant.lower(),
            scope=scope,
            expires_at=asyncio.get_running_loop().time() + _DEVICE_CODE_LIFETIME_S,
            approved=False,
        )
        uri = f"{core.url}/devicelogin"
        return _json(
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": _DEVICE_CODE_LIFETIME_S,
                "interval": 1,
                "message": f"To sign in, use a web browser to open the page {uri} and enter "
                f"the code {user_code} to authenticate.",
            },
            no_store=True,
        )

    # ------------------------------------------------------------------ errors

    def _error_response(self, request: web.Request, tenant: str, exc: _EntraError) -> web.Response:
        config = self._core.config
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        text = exc.template.format(
            tenant=tenant,
            client_id=config.client_id,
            resource=self._core.url,
            upn=TECHNICIAN_UPN,
            home=PARTNER_TENANT_ID,
        )
        body = {
            "error": exc.error,
            "error_description": f"AADSTS{exc.code}: {text}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}",
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self._core.url}/error?code={exc.code}",
        }
        if exc.code == 65001:
            body["suberror"] = "consent_required"
        headers = {"x-ms-request-id": trace_id, "client-request-id": correlation_id}
        if exc.status == 503:
            headers["Retry-After"] = "0"
        return _json(body, status=exc.status, headers=headers, no_store=True)


def _basic_auth_secret(header: str) -> str | None:
    """The secret of ``Authorization: Basic`` (MSAL sends it there too, RFC 6749 2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except ValueError:
        return None
    _, sep, secret = decoded.partition(":")
    return unquote_plus(secret) if sep else None
