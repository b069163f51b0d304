"""The blocking side of auth: MSAL application objects, their HTTP, and what failures mean.

Everything here runs on worker threads, never on the event loop. MSAL's HTTP goes through
``LoopSession``: each request is handed to the run's event loop and its aiohttp session
(one connection pool, one TLS trust, one proxy configuration for Entra and Graph alike),
and comes back as the ``requests.Response`` MSAL expects. ``requests`` is only that
vocabulary here: no request is sent with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import msal
import requests
from msal.exceptions import MsalServiceError
from requests.structures import CaseInsensitiveDict

from .._clouds import Endpoints, is_microsoft_authority
from .._net import MAX_ENTRA_BODY, BodyTooLarge, env_proxy, read_limited
from .._pacing import parse_retry_after
from ._entra_errors import (
    EntraError,
    TokenVerdict,
    classify,
    describe,
    entra_error_from_response,
    entra_error_from_text,
)
from ._settings import LOGIN_HINT, AuthMode

__all__ = [
    "AnswerTooLarge",
    "Attempt",
    "DiscoveryCache",
    "Failure",
    "LoopSession",
    "MsalApps",
    "ResponseInfo",
    "authority_hostname",
    "classify_attempt",
    "classify_exception",
    "new_msal_app",
    "usernames",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseInfo:
    """Status, ``Retry-After`` (seconds) and Entra's error, if its body held one, of the last
    response seen on this thread."""

    status: int | None = None
    retry_after_s: float | None = None
    entra: EntraError | None = None


def _retry_after_s(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), now_epoch=time.time())


class AnswerTooLarge(requests.exceptions.RequestException):
    """Entra's answer passed ``MAX_ENTRA_BODY`` (after decompression); it was not read."""


def _entra_in_body(status: int, body: bytes) -> EntraError | None:
    """Entra's error in an error answer's body: MSAL raises a bare ``MsalServiceError`` for
    any 5xx, so the body is the only place its code and message survive."""
    if status < 400 or not body.lstrip().startswith(b"{"):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not ("error" in doc or "error_codes" in doc):
        return None
    return entra_error_from_response(doc, status=status)


class LoopSession:
    """MSAL's ``http_client`` sending through the run's aiohttp session, on its event loop.

    MSAL is blocking and runs on pool threads; ``requests`` costs about twice the CPU of
    aiohttp per call (0.8 ms against 0.4 ms here), and at a few thousand tenants that CPU,
    not latency, bounds the run. So each call is handed to the loop with
    ``run_coroutine_threadsafe`` and the thread waits: one connection pool, one TLS trust
    and one proxy configuration for Entra and Graph alike. Answers come back as
    ``requests.Response`` objects and failures as ``requests`` exceptions, which is what
    MSAL and the classification below expect.

    It also remembers, per thread, the status and ``Retry-After`` of the last answer: MSAL
    hides the status of error answers (and raises a bare ``MsalServiceError`` on 5xx), and
    the retry policy needs both. Each MSAL call runs on one thread, so "the last response
    on this thread" is the answer to that call.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self._session = session
        self._loop = loop
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._proxies: dict[tuple[str, str], dict[str, Any]] = {}

    def reset_last_response(self) -> None:
        """Forget this thread's last response (call before each MSAL operation)."""
        self._local.info = ResponseInfo()

    def last_response(self) -> ResponseInfo:
        """The last response this thread got (empty when none, or the request failed)."""
        info = getattr(self._local, "info", None)
        return info if isinstance(info, ResponseInfo) else ResponseInfo()

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self.request("GET", url, params=params, headers=headers, **kwargs)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        return self.request("POST", url, params=params, data=data, headers=headers, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **_: Any,
    ) -> requests.Response:
        """Send on the loop and wait; a worker thread only (never on the loop itself)."""
        limit = self._timeout_s if not isinstance(timeout, (int, float)) else float(timeout)
        self._local.info = ResponseInfo()
        future = asyncio.run_coroutine_threadsafe(
            self._send(method, url, params, data, headers, limit), self._loop
        )
        try:
            response = future.result(timeout=limit + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise requests.exceptions.Timeout(f"no answer from {url} within {limit:g} s") from None
        except concurrent.futures.CancelledError:
            raise requests.exceptions.ConnectionError("the run is shutting down") from None
        self._local.info = ResponseInfo(
            status=response.status_code,
            retry_after_s=_retry_after_s(response),
            entra=_entra_in_body(response.status_code, response.content),
        )
        return response

    async def _send(
        self, method: str, url: str, params: Any, data: Any, headers: Any, limit: float
    ) -> requests.Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = self._proxies[key] = env_proxy(url)
        clean = {k: v for k, v in (headers or {}).items() if v is not None}
        if isinstance(data, dict):
            # Form-encode as requests does (None values dropped, lists repeated, bytes kept).
            data = urlencode([(k, v) for k, v in data.items() if v is not None], doseq=True)
            clean.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            async with asyncio.timeout(limit):
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=clean,
                    allow_redirects=False,
                    **proxy,
                ) as resp:
                    body = await read_limited(resp, MAX_ENTRA_BODY)
        except BodyTooLarge as exc:
            raise AnswerTooLarge(f"{urlsplit(url).netloc}: {exc}") from None
        except TimeoutError:
            raise requests.exceptions.Timeout(f"no answer from {url} within {limit:g} s") from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise requests.exceptions.SSLError(str(exc)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise requests.exceptions.ConnectionError(str(exc) or type(exc).__name__) from None
        response = requests.Response()
        response.status_code = resp.status
        response.reason = resp.reason or ""
        response.headers = CaseInsensitiveDict(resp.headers)
        response.url = url
        response.encoding = resp.charset or "utf-8"
        response._content = body
        return response

    def close(self) -> None:
        """The aiohttp session belongs to the run; nothing to close here."""


class DiscoveryCache(dict[str, Any]):
    """MSAL's ``http_cache`` keeping only GET answers (discovery documents).

    MSAL also caches failed token POSTs there (a 400 for 60 s, a 429/5xx for its
    Retry-After or 5 to 60 s) and would answer our retries from memory without a request.
    Dropping those entries leaves retries and error memory to the provider.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        super().__setitem__(key, value)


def usernames(cache: msal.SerializableTokenCache, environment: str | None = None) -> list[str]:
    """Usernames of the accounts in a token cache (no network), in cache order."""
    query = {"environment": environment} if environment else None
    names: list[str] = []
    for entry in cache.search(msal.TokenCache.CredentialType.ACCOUNT, query=query):
        name = entry.get("username")
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def authority_hostname(endpoints: Endpoints) -> str:
    return (urlsplit(endpoints.authority_host).hostname or "").lower()


def new_msal_app(
    client_id: str,
    endpoints: Endpoints,
    tenant: str,
    *,
    session: LoopSession,
    http_cache: DiscoveryCache,
    credential: str | dict[str, str] | None = None,
    token_cache: msal.SerializableTokenCache | None = None,
) -> Any:
    """An MSAL application for ``tenant``'s authority: confidential with a credential, else
    public. Instance discovery only for Microsoft's own hosts (a local Entra-compatible
    server serves the tenant's OpenID configuration itself). Blocking: it fetches that."""
    kwargs: dict[str, Any] = {
        "authority": endpoints.authority(tenant),
        "http_client": session,
        "http_cache": http_cache,
        "instance_discovery": None if is_microsoft_authority(endpoints.authority_host) else False,
    }
    if token_cache is not None:
        kwargs["token_cache"] = token_cache
    if credential is not None:
        return msal.ConfidentialClientApplication(client_id, client_credential=credential, **kwargs)
    return msal.PublicClientApplication(client_id, **kwargs)


class MsalApps:
    """The MSAL application objects of one provider, used only from pool threads.

    Thread-safety: the provider never runs two acquisitions for one tenant at once, so an
    app object is used by one thread at a time; the dict of apps, the rotating refresh
    token and the account are guarded by one lock.
    """

    def __init__(
        self,
        *,
        mode: AuthMode,
        client_id: str,
        credential: str | dict[str, str] | None,
        endpoints: Endpoints,
        session: LoopSession,
        refresh_token: str | None = None,
        cache: msal.SerializableTokenCache | None = None,
        username: str | None = None,
    ) -> None:
        self.mode = mode
        self._client_id = client_id
        self._credential = credential
        self._endpoints = endpoints
        self._scopes = [endpoints.scope]
        self._session = session
        self._http_cache = DiscoveryCache()
        self._lock = threading.Lock()
        self._apps: dict[str, Any] = {}
        self._refresh_token = refresh_token
        self._cache = cache
        self._username = username
        self._account: dict[str, Any] | None = None

    def _new_app(self, tenant: str) -> Any:
        return new_msal_app(
            self._client_id,
            self._endpoints,
            tenant,
            session=self._session,
            http_cache=self._http_cache,
            credential=self._credential,
            token_cache=self._cache,
        )

    def _app(self, tenant: str) -> Any:
        with self._lock:
            app = self._apps.get(tenant)
        if app is None:
            app = self._new_app(tenant)  # discovery request: outside the lock
            with self._lock:
                app = self._apps.setdefault(tenant, app)
        return app

    def current_refresh_token(self) -> str | None:
        with self._lock:
            return self._refresh_token

    def acquire(self, tenant: str, *, force: bool, min_lifetime_s: float) -> dict[str, Any] | None:
        """One acquisition: a token dict, an error dict, or None (no sign-in in the cache).

        ``force`` skips MSAL's access-token cache (after a Graph 401); a token MSAL serves
        from its cache with less than ``min_lifetime_s`` left is replaced by a fresh one.
        """
        app = self._app(tenant)
        if self.mode is AuthMode.APP:
            if force:
                app.remove_tokens_for_client()
            result: dict[str, Any] = app.acquire_token_for_client(self._scopes)
            if _stale(result, min_lifetime_s):
                app.remove_tokens_for_client()
                result = app.acquire_token_for_client(self._scopes)
            return result
        if self.mode is AuthMode.REFRESH_TOKEN:
            result = app.acquire_token_by_refresh_token(self.current_refresh_token(), self._scopes)
            newer = result.pop("refresh_token", None)
            if isinstance(newer, str) and newer:
                with self._lock:  # Entra rotates refresh tokens: keep the newest
                    self._refresh_token = newer
            return result
        account = self._find_account(app)
        if account is None:
            return None
        silent: dict[str, Any] | None = app.acquire_token_silent_with_error(
            self._scopes, account, force_refresh=force
        )
        if silent is not None and _stale(silent, min_lifetime_s):
            silent = app.acquire_token_silent_with_error(self._scopes, account, force_refresh=True)
        return silent

    def _find_account(self, app: Any) -> dict[str, Any] | None:
        with self._lock:
            if self._account is not None:
                return self._account
        accounts = app.get_accounts(username=self._username)
        account: dict[str, Any] | None = accounts[0] if accounts else None
        with self._lock:
            self._account = self._account or account
            return self._account

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._apps.pop(tenant, None)


def _stale(result: Mapping[str, Any], min_lifetime_s: float) -> bool:
    """A token MSAL served from its own cache that the provider would refresh at once."""
    expires_in = result.get("expires_in")
    return (
        "access_token" in result
        and result.get("token_source") == "cache"
        and isinstance(expires_in, int | float)
        and expires_in <= min_lifetime_s
    )


# --- failures ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Attempt:
    """What one MSAL call on a pool thread produced (exceptions are carried, not raised).

    ``result`` is MSAL's raw answer, access and refresh tokens included: the repr names its
    keys and the exception's type only, so no log line or traceback can show a token.
    """

    result: dict[str, Any] | None = None
    exc: BaseException | None = None
    info: ResponseInfo = dataclasses.field(default_factory=ResponseInfo)
    skipped: bool = False  # not attempted: the run was already stopped

    def __repr__(self) -> str:
        result = "None" if self.result is None else f"<keys {sorted(map(str, self.result))}>"
        exc = "None" if self.exc is None else f"<{type(self.exc).__name__}>"
        return f"Attempt(result={result}, exc={exc}, info={self.info!r}, skipped={self.skipped})"


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A classified failed attempt."""

    verdict: TokenVerdict
    entra: EntraError | None = None  # Entra's answer, when there was one
    text: str = ""  # our description otherwise: what happened; what to do
    retry_after_s: float | None = None

    @property
    def code(self) -> str | None:
        return self.entra.code if self.entra else None

    def message(
        self,
        tenant: str,
        attempts: int,
        *,
        failed: str = "token failed",
        redact: Callable[[str], str] | None = None,
    ) -> str:
        """The report's message; Entra's text is redacted (``redact``) before it is cut."""
        if self.entra is not None:
            return describe(
                self.entra, tenant=tenant, attempts=attempts, failed=failed, redact=redact
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return f"tenant '{tenant}': {failed}{tries}: {self.text}"


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _entra_in_chain(exc: BaseException, status: int | None) -> EntraError | None:
    for item in _exception_chain(exc):
        found = entra_error_from_text(str(item), status=status)
        if found is not None:
            return found
    return None


def classify_exception(exc: BaseException, info: ResponseInfo, endpoints: Endpoints) -> Failure:
    """Map an exception out of MSAL / requests to a decision (never keeps its raw text)."""
    host = endpoints.authority_host
    retry_after = info.retry_after_s
    if isinstance(exc, requests.exceptions.SSLError):
        chain_text = " ".join(str(e) for e in _exception_chain(exc))
        if "CERTIFICATE_VERIFY_FAILED" in chain_text or "certificate verify failed" in chain_text:
            return Failure(
                TokenVerdict.RUN_STOP,
                text=(
                    f"TLS verification of {host} failed (certificate verify failed); if a "
                    "TLS-inspecting proxy or a private CA is in the way, pass its CA "
                    "certificate with --ca-bundle (BATCHSYNC_CA_BUNDLE)"
                ),
            )
        return Failure(TokenVerdict.RETRY, text=f"TLS error talking to {host}; try again later")
    if isinstance(exc, AnswerTooLarge):
        return Failure(
            TokenVerdict.TENANT,
            text=(
                f"{host} sent an answer larger than {MAX_ENTRA_BODY >> 10} KiB, not read (a "
                "proxy's page?); check --authority-host and HTTPS_PROXY"
            ),
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return Failure(TokenVerdict.RETRY, text=f"{host} did not answer in time; try again later")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Failure(
            TokenVerdict.RETRY,
            text=f"could not reach {host}; check the network and HTTPS_PROXY/NO_PROXY",
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return Failure(
            TokenVerdict.RETRY, text=f"HTTP error talking to {host} ({type(exc).__name__})"
        )
    if isinstance(exc, MsalServiceError) or (
        info.status is not None and (info.status == 429 or info.status >= 500)
    ):
        status = info.status
        entra = info.entra or _entra_in_chain(exc, status)
        if entra is not None:
            return Failure(classify(entra), entra=entra, retry_after_s=retry_after)
        return Failure(
            TokenVerdict.RETRY,
            text=f"Entra answered HTTP {status or '5xx'}; try again later",
            retry_after_s=retry_after,
        )
    if isinstance(exc, json.JSONDecodeError):
        return Failure(
            TokenVerdict.RETRY,
            text=(
                f"{host} answered HTTP {info.status or '?'} with a body that is not JSON (a "
                "proxy's error page?); check HTTPS_PROXY and --authority-host"
            ),
        )
    if isinstance(exc, ValueError):
        # An unknown tenant fails in the app's constructor (OIDC discovery) with a plain
        # ValueError; Entra's AADSTS90002 body is only in its __context__.
        entra = _entra_in_chain(exc, info.status)
        if entra is not None:
            verdict = classify(entra)
            return Failure(
                TokenVerdict.TENANT if verdict is TokenVerdict.RUN_STOP else verdict,
                entra=entra,
                retry_after_s=retry_after,
            )
        return Failure(
            TokenVerdict.TENANT,
            text=(
                f"MSAL could not use the authority for this tenant (HTTP {info.status or '?'} "
                "from its discovery document); check the tenant ID or domain and --cloud"
            ),
        )
    return Failure(
        TokenVerdict.TENANT,
        text=f"unexpected {type(exc).__name__} from MSAL; run with -v and report it",
    )


def classify_attempt(attempt: Attempt, endpoints: Endpoints) -> Failure:
    if attempt.exc is not None:
        return classify_exception(attempt.exc, attempt.info, endpoints)
    result = attempt.result
    if result is None:  # delegated: no refresh token for the account in the cache
        return Failure(
            TokenVerdict.RUN_STOP,
            text=f"sign-in expired or missing in the token cache: {LOGIN_HINT}",
        )
    entra = entra_error_from_response(result, status=attempt.info.status)
    if entra.error is None and not entra.codes:
        return Failure(TokenVerdict.TENANT, text="Entra answered without a token or an error")
    return Failure(classify(entra), entra=entra, retry_after_s=attempt.info.retry_after_s)
