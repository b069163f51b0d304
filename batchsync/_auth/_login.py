"""``batchsync login`` / ``logout``: the delegated sign-in and the token cache that keeps it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Collection
from typing import Any

import msal

from .._clouds import Endpoints
from .._errors import AuthError, ConfigError
from .._feed import on_daemon_thread
from .._net import env_proxy, open_session, user_agent
from ._entra_errors import classify, entra_error_from_response
from ._msal import (
    DiscoveryCache,
    Failure,
    LoopSession,
    authority_hostname,
    classify_exception,
    new_msal_app,
    usernames,
)
from ._settings import LOGIN_HINT, AuthSettings, default_token_cache_path
from ._token_cache import PRIVATE_FILE, TokenCacheStore, open_token_cache

__all__ = [
    "TokenCacheStatus",
    "login_device_code",
    "logout",
    "signed_in_accounts",
    "token_cache_status",
]


def _cache_path(settings: AuthSettings) -> str:
    return settings.token_cache_path or default_token_cache_path()


@dataclasses.dataclass(frozen=True, slots=True)
class TokenCacheStatus:
    """Who is signed in, and how the token cache is kept (``batchsync login --status``)."""

    path: str
    encrypted: bool
    accounts: tuple[str, ...]

    def describe(self) -> str:
        """One line per account, then where the cache is; never a token."""
        kept = "encrypted" if self.encrypted else f"plain file, {PRIVATE_FILE}"
        lines = [f"signed in as {name}" for name in self.accounts] or ["not signed in"]
        return "\n".join([*lines, f"token cache: {self.path} ({kept})"])


async def login_device_code(
    settings: AuthSettings,
    endpoints: Endpoints,
    *,
    tenant: str = "organizations",
    ca_bundle: str | None = None,
    echo: Callable[[str], None],
    timeout_s: float = 900,
) -> str:
    """Device-code sign-in (``batchsync login``): shows the URL and code via ``echo``
    (stderr), waits at most ``timeout_s`` (and never past the code's own expiry) for the
    sign-in, stores it in the token cache and returns the username. Raises ConfigError (no
    client id, cache not writable) or AuthError (refused, timed out).

    MSAL's device flow blocks while it polls, so it runs on a daemon thread (a Ctrl-C ends
    the process at once) with its HTTP on this loop's aiohttp session, as in a run.
    """
    if not settings.client_id:
        raise ConfigError(
            "no client id: pass --client-id or set BATCHSYNC_CLIENT_ID (or AZURE_CLIENT_ID)"
        )
    problem = endpoints.problem()
    if problem is not None:
        raise ConfigError(problem)
    env_proxy(endpoints.authority_host)  # an unusable proxy is a ConfigError, before anything
    store = open_token_cache(_cache_path(settings))
    cache = store.load()
    async with open_session(ca_bundle=ca_bundle, limit=2, user_agent=user_agent()) as http:
        session = LoopSession(http, asyncio.get_running_loop(), timeout_s=30.0)
        return await on_daemon_thread(
            lambda _: _device_flow(
                settings.client_id or "",
                endpoints,
                tenant,
                session=session,
                cache=cache,
                store=store,
                echo=echo,
                timeout_s=timeout_s,
            ),
            None,
        )


def _device_flow(
    client_id: str,
    endpoints: Endpoints,
    tenant: str,
    *,
    session: LoopSession,
    cache: msal.SerializableTokenCache,
    store: TokenCacheStore,
    echo: Callable[[str], None],
    timeout_s: float,
) -> str:
    """The blocking half of ``login_device_code`` (a worker thread; HTTP on the loop)."""

    def sign_in_error(failure: Failure) -> AuthError:
        message = failure.message(tenant, 1, failed="sign-in failed")
        return AuthError(message, code=failure.code, tenant=tenant)

    session.reset_last_response()
    try:
        app = new_msal_app(
            client_id,
            endpoints,
            tenant,
            session=session,
            http_cache=DiscoveryCache(),
            token_cache=cache,
        )
        flow: dict[str, Any] = app.initiate_device_flow(scopes=[endpoints.scope])
    except Exception as exc:
        raise sign_in_error(classify_exception(exc, session.last_response(), endpoints)) from None
    if "user_code" not in flow:
        entra = entra_error_from_response(flow)
        raise sign_in_error(Failure(classify(entra), entra=entra))
    echo(str(flow.get("message") or f"Enter the code {flow['user_code']} to sign in."))
    deadline = time.time() + timeout_s
    flow["expires_at"] = min(float(flow.get("expires_at", deadline)), deadline)
    session.reset_last_response()
    try:
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    except Exception as exc:
        raise sign_in_error(classify_exception(exc, session.last_response(), endpoints)) from None
    if "access_token" not in result:
        entra = entra_error_from_response(result)
        if entra.error in ("authorization_pending", "expired_token", "slow_down"):
            raise AuthError(
                f"sign-in was not completed in time (the code was not used within "
                f"{timeout_s:g} s, or it expired); {LOGIN_HINT} again",
                code=entra.code,
                tenant=tenant,
            )
        raise sign_in_error(Failure(classify(entra), entra=entra))
    try:
        store.save(cache)
    except ConfigError as exc:
        raise ConfigError(f"signed in, but {exc.message}") from None
    claims = result.get("id_token_claims") or {}
    username = claims.get("preferred_username") if isinstance(claims, dict) else None
    if not isinstance(username, str) or not username:
        names = usernames(cache, authority_hostname(endpoints))
        username = names[-1] if names else "(unknown account)"
    return username


def token_cache_status(settings: AuthSettings) -> TokenCacheStatus:
    """Who is signed in and how the cache is kept (no network)."""
    store = open_token_cache(_cache_path(settings), warn=False)  # describe() tells
    return TokenCacheStatus(
        path=store.path, encrypted=store.encrypted, accounts=tuple(usernames(store.load()))
    )


def signed_in_accounts(settings: AuthSettings) -> list[str]:
    """Usernames in the token cache (no network)."""
    return list(token_cache_status(settings).accounts)


def logout(settings: AuthSettings, *, usernames: Collection[str] | None = None) -> list[str]:
    """Forget the accounts named (all when None) with every token of theirs; return the
    usernames removed. With no account left, the cache file is deleted."""
    store = open_token_cache(_cache_path(settings), warn=False, check=False)
    return store.remove_accounts(usernames)
