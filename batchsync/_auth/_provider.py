"""``TokenProvider``: one Entra token per tenant, single-flight, on a bounded thread pool.

::

    get(tenant) ──> cached token still fresh? ──yes──> return it
         │ no
         ├── an acquisition in flight? ──> wait for it (one token request per tenant)
         └── lead: MSAL call on the pool, under asyncio.timeout(timeout_s)
                   RETRY ──> back off (``_pacing.token_retry_wait``), try again
                   TENANT ──> AuthError, remembered for that tenant
                   RUN_STOP ─> RunStoppingAuthError, remembered for every tenant

MSAL is blocking, so every MSAL call runs on a ``ThreadPoolExecutor`` the provider owns
(``token_concurrency`` workers), never on the event loop. The very first call runs alone: a
credential that dooms every tenant is then refused once, not once per slot. One MSAL
application object per tenant (its authority is per tenant), all sharing one
``LoopSession`` (MSAL's HTTP on the
run's aiohttp session, with our TLS trust) and one ``http_cache`` that keeps discovery
documents only: MSAL's own caching of failed token POSTs (60 s for a 400, Retry-After or 5
to 60 s for 429/5xx) would answer our retries from memory, and this module owns retries and
error memory.

Modes (``AuthMode``): ``app`` (client credentials, secret or certificate),
``refresh-token`` (one refresh token redeemed per tenant, rotated as Entra answers) and
``delegated`` (the account ``batchsync login`` put in the persistent token cache of
``_token_cache``, written back once when the provider closes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import random
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Self

import aiohttp
import msal

from .._clouds import Endpoints
from .._errors import AuthError, ConfigError, RunStoppingAuthError
from .._net import open_session, user_agent
from .._pacing import token_retry_wait
from ._entra_errors import TokenVerdict
from ._msal import (
    Attempt,
    Failure,
    LoopSession,
    MsalApps,
    authority_hostname,
    classify_attempt,
    usernames,
)
from ._settings import (
    LOGIN_HINT,
    AccessToken,
    AuthMode,
    AuthSettings,
    BearerToken,
    default_token_cache_path,
    load_certificate,
)
from ._token_cache import TokenCacheStore, open_token_cache

__all__ = ["TokenProvider"]

_log = logging.getLogger(__name__)


class _Flight:
    """One acquisition in progress; followers wait on ``done`` and read the outcome."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.token: AccessToken | None = None
        self.error: AuthError | None = None


@dataclasses.dataclass(slots=True, eq=False)
class _TenantState:
    token: AccessToken | None = None
    refresh_at: float = 0.0  # reuse ``token`` until this time (provider clock)
    flight: _Flight | None = None
    error: AuthError | None = None  # permanent failure of this tenant
    force_fresh: bool = False  # the last token was refused by Graph: bypass MSAL's cache


class TokenProvider:
    """One token per tenant, single-flight, reused until shortly before expiry.

    ``get(tenant)`` returns a token, or raises ``AuthError`` (that tenant's rows fail) or
    ``RunStoppingAuthError`` (every tenant: the sign-in or the client credentials are bad).
    Transient failures (Entra's retryable codes, HTTP 429/5xx, network errors, timeouts)
    are retried ``retry_attempts`` times at most, waiting ``Retry-After`` when Entra sends
    one, else ``min(retry_cap_s, retry_base_s * 2**(n-1))`` scaled by a jitter in
    [0.5, 1.5), and never past ``retry_total_s`` since the acquisition began.
    """

    def __init__(
        self,
        settings: AuthSettings,
        endpoints: Endpoints,
        *,
        ca_bundle: str | None = None,
        token_concurrency: int = 8,
        timeout_s: float = 30.0,
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        retry_attempts: int = 4,
        retry_base_s: float = 0.5,
        retry_cap_s: float = 8.0,
        retry_total_s: float = 60.0,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        if token_concurrency < 1:
            raise ValueError("token_concurrency must be >= 1")
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1")
        self._settings = settings
        self._endpoints = endpoints
        self._ca_bundle = ca_bundle
        self._token_concurrency = token_concurrency
        self._timeout_s = timeout_s
        self._margin_s = refresh_margin_s
        self._clock = clock
        self._retry_attempts = retry_attempts
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._retry_total_s = retry_total_s
        self._mode = settings.resolved_mode()
        self._tenants: dict[str, _TenantState] = {}
        self._run_error: RunStoppingAuthError | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._http_session = http_session
        self._owned_session: aiohttp.ClientSession | None = None
        self._session: LoopSession | None = None
        self._msal: MsalApps | None = None
        self._cache: msal.SerializableTokenCache | None = None
        self._cache_store: TokenCacheStore | None = None
        self._stopped = threading.Event()  # a run-stopping failure: pool threads skip MSAL
        self._stopping = asyncio.Event()  # ...and tenants backing off stop waiting
        self._opened = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(token_concurrency)  # MSAL calls running at once
        self._probe: asyncio.Event | None = None  # the first MSAL call, alone (see _slot)
        self._proven = False  # an MSAL call has come back: the others may run at once
        self._secrets: tuple[str, ...] = ()
        self._in_flight = 0
        self.tokens_acquired = 0
        self.token_requests_failed = 0
        self.token_retries = 0

    # -- lifecycle --------------------------------------------------------------------

    @property
    def mode(self) -> AuthMode:
        """The resolved mode (never ``auto``)."""
        return self._mode

    async def open(self) -> None:
        """Check the settings and build the MSAL plumbing; ``ConfigError`` (exit 2) if bad.

        No network here: a bad secret or an unknown tenant shows on the first ``get``.
        """
        async with self._open_lock:
            if self._opened:
                return
            if self._closed:
                raise RuntimeError("TokenProvider is closed")
            self._build()
            self._opened = True

    def _build(self) -> None:
        s = self._settings
        if not s.client_id:
            raise ConfigError(
                "no client id: pass --client-id or set BATCHSYNC_CLIENT_ID (or AZURE_CLIENT_ID) "
                "to the app registration's application (client) ID"
            )
        credential: str | dict[str, str] | None = None
        if s.client_secret:
            credential = s.client_secret
        elif s.certificate_path:
            credential = load_certificate(
                s.certificate_path, s.certificate_password
            ).msal_credential()
        if self._mode is AuthMode.APP and credential is None:
            raise ConfigError(
                "--auth app needs a client secret (--client-secret or BATCHSYNC_CLIENT_SECRET) "
                "or a certificate (--certificate or BATCHSYNC_CLIENT_CERTIFICATE_PATH)"
            )
        if self._mode is AuthMode.REFRESH_TOKEN and not s.refresh_token:
            raise ConfigError(
                "--auth refresh-token needs a refresh token in the environment variable "
                "BATCHSYNC_REFRESH_TOKEN"
            )
        username: str | None = None
        if self._mode is AuthMode.DELEGATED:
            credential = None  # delegated tokens come from the cached sign-in (public client)
            self._cache_store = open_token_cache(s.token_cache_path or default_token_cache_path())
            self._cache = self._cache_store.load()
            wanted = s.account or os.environ.get("BATCHSYNC_ACCOUNT") or None
            names = usernames(self._cache, authority_hostname(self._endpoints))
            if wanted:
                names = [n for n in names if n.lower() == wanted.lower()]
            if not names:
                who = f"for {wanted!r} " if wanted else ""
                raise ConfigError(
                    f"no signed-in account {who}in the token cache {self._cache_store.path!r} for "
                    f"{self._endpoints.authority_host}: {LOGIN_HINT} (or use --auth app)"
                )
            if len(names) > 1:
                _log.warning(
                    "several accounts in the token cache; using %s (set BATCHSYNC_ACCOUNT to "
                    "choose)",
                    names[0],
                )
            username = names[0]
        self._secrets = tuple(
            x for x in (s.client_secret, s.refresh_token, s.certificate_password) if x
        )
        if self._http_session is None:
            # Standalone: a session of our own (a run passes its own, shared with Graph).
            self._http_session = self._owned_session = open_session(
                ca_bundle=self._ca_bundle,
                limit=self._token_concurrency + 2,
                user_agent=user_agent(),
            )
        self._session = LoopSession(
            self._http_session, asyncio.get_running_loop(), timeout_s=self._timeout_s
        )
        self._msal = MsalApps(
            mode=self._mode,
            client_id=s.client_id,
            credential=credential,
            endpoints=self._endpoints,
            session=self._session,
            refresh_token=s.refresh_token if self._mode is AuthMode.REFRESH_TOKEN else None,
            cache=self._cache,
            username=username,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._token_concurrency, thread_name_prefix="batchsync-msal"
        )

    async def aclose(self) -> None:
        """Stop the pool (without waiting for hung calls) and save the delegated cache."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.save_token_cache()
        if self._owned_session is not None:
            await self._owned_session.close()

    def save_token_cache(self) -> None:
        """Write the delegated token cache back if it changed, merged with what other
        processes stored meanwhile. ``aclose`` calls it once, at the end of the run or on
        interruption; never once per tenant."""
        cache, store = self._cache, self._cache_store
        if cache is None or store is None:
            return
        try:
            store.save(cache)
        except ConfigError as exc:
            _log.warning("%s; the next run signs in from the older cache", exc.message)
        except OSError as exc:  # the lock file vanished under us, a full disk, ...
            _log.warning("could not save the token cache %s (%s)", store.path, exc.strerror or exc)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        with_token = sum(1 for st in self._tenants.values() if st.token is not None)
        failed = sum(1 for st in self._tenants.values() if st.error is not None)
        state = "closed" if self._closed else "open" if self._opened else "new"
        stopped = f", stopped={self._run_error.code or 'yes'}" if self._run_error else ""
        return (
            f"<TokenProvider {state} mode={self._mode} tenants={len(self._tenants)} "
            f"cached={with_token} failed={failed} in_flight={self._in_flight} "
            f"acquired={self.tokens_acquired} failures={self.token_requests_failed}{stopped}>"
        )

    # -- tokens -----------------------------------------------------------------------

    async def get(self, tenant: str) -> AccessToken:
        """The tenant's token: cached, shared with a running acquisition, or acquired now."""
        if not self._opened:
            await self.open()
        while True:
            if self._closed:
                raise RuntimeError("TokenProvider is closed")
            if self._run_error is not None:
                raise self._run_error
            st = self._tenants.get(tenant)
            if st is None:
                st = self._tenants[tenant] = _TenantState()
            if st.error is not None:
                raise st.error
            if st.token is not None and self._clock() < st.refresh_at:
                return st.token
            flight = st.flight
            if flight is None:
                return await self._lead(tenant, st)
            await flight.done.wait()
            if flight.token is not None:
                return flight.token
            if flight.error is not None:
                raise flight.error
            # The leader was cancelled: loop, and one of the waiters leads next.

    async def _lead(self, tenant: str, st: _TenantState) -> AccessToken:
        flight = st.flight = _Flight()
        self._in_flight += 1
        try:
            token = await self._acquire(tenant, st)
        except AuthError as exc:
            flight.error = exc
            raise
        else:
            flight.token = token
            return token
        finally:
            self._in_flight -= 1
            if st.flight is flight:
                st.flight = None
            flight.done.set()

    async def _acquire(self, tenant: str, st: _TenantState) -> AccessToken:
        assert self._msal is not None
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        began: float | None = None
        attempt_no = 0
        while True:
            attempt_no += 1
            if self._run_error is not None:
                raise self._run_error
            # Replacing a token we held (refused by Graph, or due on our clock): ask for a
            # new one, not MSAL's cached copy. A first acquisition may use MSAL's cache.
            force = st.force_fresh or st.token is not None
            try:
                # Wait for a free token slot first: the timeout and the retry budget count
                # from the moment MSAL starts, not while queued behind other tenants.
                async with self._slot():
                    started = self._clock()
                    began = started if began is None else began
                    async with asyncio.timeout(self._timeout_s):
                        attempt = await loop.run_in_executor(
                            self._pool, self._call_msal, tenant, force
                        )
            except TimeoutError:
                failure = Failure(
                    TokenVerdict.RETRY,
                    text=f"no answer from MSAL within {self._timeout_s:g} s; try again later",
                )
            else:
                if attempt.skipped and self._run_error is not None:
                    raise self._run_error
                result = attempt.result
                if attempt.exc is None and result is not None and "access_token" in result:
                    return self._store(tenant, st, result, started)
                failure = classify_attempt(attempt, self._endpoints)
            assert began is not None
            wait = self._retry_wait(failure, attempt_no, began)
            if wait is None:
                raise self._fail(tenant, st, failure, attempt_no)
            self.token_retries += 1
            _log.info(
                "tenant %s: token attempt %d failed (%s); retrying in %.2f s",
                tenant,
                attempt_no,
                failure.code or failure.verdict,
                wait,
            )
            with contextlib.suppress(TimeoutError):  # a run stop ends the back-off at once
                async with asyncio.timeout(wait):
                    await self._stopping.wait()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A token slot. Until one MSAL call has come back, calls go one at a time: a
        revoked sign-in or a wrong secret (which doom every tenant) is then told by one
        refusal, not by ``token_concurrency`` of them at once. Costs one round trip, once."""
        while not self._proven:
            if self._probe is None:
                probe = self._probe = asyncio.Event()
                answered = False
                try:
                    async with self._slots:
                        yield
                    answered = True
                finally:
                    self._probe = None
                    self._proven = answered
                    probe.set()
                return
            await self._probe.wait()
        async with self._slots:
            yield

    def _call_msal(self, tenant: str, force: bool) -> Attempt:
        """Runs on a pool thread: one MSAL operation, its outcome carried back as a value.

        After a run-stopping failure, calls still queued on the pool skip MSAL: a revoked
        sign-in would otherwise be sent to Entra once per tenant for nothing.
        """
        assert self._msal is not None
        assert self._session is not None
        if self._stopped.is_set():
            return Attempt(skipped=True)
        self._session.reset_last_response()
        try:
            result = self._msal.acquire(tenant, force=force, min_lifetime_s=self._margin_s)
        except Exception as exc:
            return Attempt(exc=exc, info=self._session.last_response())
        return Attempt(result=result, info=self._session.last_response())

    def _retry_wait(self, failure: Failure, attempt_no: int, began: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if failure.verdict is not TokenVerdict.RETRY or attempt_no >= self._retry_attempts:
            return None
        return token_retry_wait(
            attempt_no,
            retry_after_s=failure.retry_after_s,
            elapsed_s=self._clock() - began,
            base_s=self._retry_base_s,
            cap_s=self._retry_cap_s,
            total_s=self._retry_total_s,
            draw=random.random(),
        )

    def _store(
        self, tenant: str, st: _TenantState, result: Mapping[str, Any], started: float
    ) -> AccessToken:
        expires_in = result.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        token = AccessToken(
            value=str(result["access_token"]),
            expires_at=started + lifetime,
            tenant=tenant,
            renewed=st.force_fresh,  # asked for because Graph refused the one before
        )
        # Refresh ``refresh_margin_s`` before expiry, but keep short-lived tokens half
        # their life so they are not re-acquired on every call.
        st.token = token
        st.refresh_at = token.expires_at - min(self._margin_s, lifetime / 2)
        st.force_fresh = False
        self.tokens_acquired += 1
        _log.debug(
            "tenant %s: token acquired (%s, expires in %d s)",
            tenant,
            result.get("token_source", "identity_provider"),
            int(lifetime),
        )
        return token

    def _fail(self, tenant: str, st: _TenantState, failure: Failure, attempts: int) -> AuthError:
        self.token_requests_failed += 1
        message = self._redact(failure.message(tenant, attempts, redact=self._redact))
        _log.debug("tenant %s: token failed: %s", tenant, failure.code or failure.verdict)
        if failure.verdict is TokenVerdict.RUN_STOP:
            stop = RunStoppingAuthError(message, code=failure.code, tenant=tenant)
            if self._run_error is None:
                self._run_error = stop  # every later get(), for any tenant, raises it
                self._stopped.set()
                self._stopping.set()
            return stop
        err = AuthError(message, code=failure.code, tenant=tenant)
        if failure.verdict is TokenVerdict.TENANT:
            st.error = err  # permanent: later get() for this tenant raise it at once
        return err

    def _redact(self, text: str) -> str:
        secrets = list(self._secrets)
        if self._msal is not None:
            current = self._msal.current_refresh_token()
            if current:
                secrets.append(current)
        for secret in secrets:
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text

    def invalidate(self, token: BearerToken) -> None:
        """Graph refused ``token`` (401): the next get() acquires a fresh one, bypassing
        MSAL's cache, unless that already happened (several rows may report one 401)."""
        if isinstance(token, AccessToken):
            states = [self._tenants.get(token.tenant)]
        else:  # any object with ``value`` (the engine's TokenLike protocol)
            states = list(self._tenants.values())
        for st in states:
            if st is not None and st.token is not None and st.token.value == token.value:
                st.token = None
                st.refresh_at = 0.0
                st.force_fresh = True

    def forget(self, tenant: str) -> None:
        """Drop the tenant's state (memory bound on huge inputs); a later get() starts over.

        A permanent failure is forgotten too; an acquisition in flight still completes for
        the callers already waiting on it.
        """
        self._tenants.pop(tenant, None)
        if self._msal is not None:
            self._msal.forget(tenant)
