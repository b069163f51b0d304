"""Entra tokens with MSAL: one token per tenant, single-flight, on a bounded thread pool.

::

    get(tenant) ──> cached token still fresh? ──yes──> return it
         │ no
         ├── an acquisition in flight? ──> wait for it (one token request per tenant)
         └── lead: MSAL call on the pool, under asyncio.timeout(timeout_s)
                   RETRY ──> back off (Retry-After, else exponential + jitter), try again
                   TENANT ──> AuthError, remembered for that tenant
                   RUN_STOP ─> RunStoppingAuthError, remembered for every tenant

MSAL is blocking, so every MSAL call runs on a ``ThreadPoolExecutor`` the provider owns
(``token_concurrency`` workers), never on the event loop. One MSAL application object per
tenant (its authority is per tenant), all sharing one HTTP client (``_msal_http``: in a run,
``LoopSession`` on the run's aiohttp session; standalone, ``TrustedSession``; both with our
TLS trust) and one ``http_cache`` that keeps discovery documents only: MSAL's own
caching of failed token POSTs (60 s for a 400, Retry-After or 5 to 60 s for 429/5xx) would
answer our retries from memory, and this module owns retries and error memory.

Modes (``AuthMode``): ``app`` (client credentials, secret or certificate),
``refresh-token`` (one refresh token redeemed per tenant, rotated as Entra answers) and
``delegated`` (the account ``batchsync login`` put in the persistent token cache of
``_token_cache``, written back once when the provider closes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import json
import logging
import os
import random
import re
import threading
import time
import types
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import aiohttp
import msal
import platformdirs
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from msal.exceptions import MsalServiceError

from batchsync._clouds import Endpoints, is_microsoft_authority
from batchsync._entra_errors import (
    Action,
    EntraError,
    classify,
    describe,
    entra_error_from_response,
    entra_error_from_text,
)
from batchsync._errors import AuthError, ConfigError, RunStoppingAuthError
from batchsync._msal_http import LoopSession, MsalHttp, ResponseInfo, TrustedSession
from batchsync._pacing import token_retry_wait
from batchsync._token_cache import TokenCacheStore, open_token_cache

__all__ = [
    "AccessToken",
    "AuthMode",
    "AuthSettings",
    "TokenCacheStatus",
    "TokenProvider",
    "TokenSource",
    "default_token_cache_path",
    "login_device_code",
    "logout",
    "signed_in_accounts",
    "token_cache_status",
]

_log = logging.getLogger(__name__)

_LOGIN_HINT = "run `batchsync login`"
_CACHE_FILE_NAME = "token_cache.json"


class AuthMode(enum.StrEnum):
    """How tokens are obtained (``--auth``)."""

    AUTO = "auto"
    DELEGATED = "delegated"
    REFRESH_TOKEN = "refresh-token"  # noqa: S105 - a mode name, not a secret
    APP = "app"


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSettings:
    """Credentials and mode; secrets never show in the repr."""

    mode: AuthMode = AuthMode.AUTO
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    certificate_path: str | None = None  # PEM: private key + certificate
    certificate_password: str | None = dataclasses.field(default=None, repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    token_cache_path: str | None = None  # delegated; default: default_token_cache_path()
    account: str | None = None  # delegated: username to use; else env BATCHSYNC_ACCOUNT

    def resolved_mode(self) -> AuthMode:
        """``auto``: refresh-token if a refresh token is set, else app if a secret or a
        certificate is given, else delegated."""
        if self.mode is not AuthMode.AUTO:
            return AuthMode(self.mode)
        if self.refresh_token:
            return AuthMode.REFRESH_TOKEN
        if self.client_secret or self.certificate_path:
            return AuthMode.APP
        return AuthMode.DELEGATED


@dataclasses.dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token for one tenant; ``expires_at`` is on the provider's clock."""

    value: str = dataclasses.field(repr=False)
    expires_at: float  # monotonic seconds (the provider's clock)
    tenant: str


class TokenSource(Protocol):
    """What the engine and discover need from auth (``TokenProvider`` is one)."""

    @property
    def mode(self) -> AuthMode | None:
        """How tokens are obtained (worded into 403 messages); None when unknown."""
        ...

    async def get(self, tenant: str) -> AccessToken: ...

    def invalidate(self, token: AccessToken) -> None: ...

    def forget(self, tenant: str) -> None: ...


class _BearerToken(Protocol):
    """Anything carrying a token value (``AccessToken``, or the engine's ``TokenLike``)."""

    @property
    def value(self) -> str: ...


def default_token_cache_path() -> str:
    """``{user cache dir}/batchsync/token_cache.json`` (platformdirs)."""
    return os.path.join(platformdirs.user_cache_dir("batchsync"), _CACHE_FILE_NAME)


# --- credentials -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Certificate:
    """A client certificate: the decrypted key (memory only) and both thumbprints."""

    private_key_pem: str = dataclasses.field(repr=False)
    certificate_pem: str
    sha1_thumbprint: str
    sha256_thumbprint: str

    def msal_credential(self) -> dict[str, str]:
        # With ``public_certificate`` MSAL signs PS256 with the SHA-256 thumbprint
        # (x5t#S256) and sends x5c; the SHA-1 one stays for display and ADFS.
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def _load_certificate(path: str, password: str | None) -> _Certificate:
    """Read a PEM with an RSA private key and its certificate, or raise ConfigError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the certificate file {path!r} ({exc.strerror or exc}); pass a PEM "
            "file with the private key and the certificate to --certificate"
        ) from None
    keys: list[bytes] = []
    certs: list[bytes] = []
    for match in _PEM_BLOCK_RE.finditer(data):
        label = match.group(1)
        if label.endswith(b"PRIVATE KEY"):
            keys.append(match.group(0))
        elif label == b"CERTIFICATE":
            certs.append(match.group(0))
    if not keys or not certs:
        raise ConfigError(
            f"the certificate file {path!r} must hold both the private key and the "
            "certificate in PEM (e.g. `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`)"
        )
    try:
        key = serialization.load_pem_private_key(keys[0], password.encode() if password else None)
    except TypeError:
        raise ConfigError(
            f"the private key in {path!r} is encrypted: give its password"
            if not password
            else f"the private key in {path!r} is not encrypted: drop the password"
        ) from None
    except ValueError:
        raise ConfigError(
            f"cannot load the private key in {path!r}: wrong password or not a PEM key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"the private key in {path!r} must be RSA (Entra needs RSA)")
    public = key.public_key().public_numbers()
    for block in certs:
        try:
            cert = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        cert_key = cert.public_key()
        if isinstance(cert_key, rsa.RSAPublicKey) and cert_key.public_numbers() == public:
            break
    else:
        raise ConfigError(f"no certificate in {path!r} matches its private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return _Certificate(
        private_key_pem=key_pem,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


# --- MSAL plumbing (blocking; runs on pool threads) -------------------------------------


class _DiscoveryCache(dict[str, Any]):
    """MSAL's ``http_cache`` keeping only GET answers (discovery documents).

    MSAL also caches failed token POSTs there (a 400 for 60 s, a 429/5xx for its
    Retry-After or 5 to 60 s) and would answer our retries from memory without a request.
    Dropping those entries leaves retries and error memory to the provider.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        super().__setitem__(key, value)


def _usernames(cache: msal.SerializableTokenCache, environment: str | None = None) -> list[str]:
    """Usernames of the accounts in a token cache (no network), in cache order."""
    query = {"environment": environment} if environment else None
    names: list[str] = []
    for entry in cache.search(msal.TokenCache.CredentialType.ACCOUNT, query=query):
        name = entry.get("username")
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def _authority_hostname(endpoints: Endpoints) -> str:
    return (urlsplit(endpoints.authority_host).hostname or "").lower()


class _Msal:
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
        session: MsalHttp,
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
        self._http_cache = _DiscoveryCache()
        self._lock = threading.Lock()
        self._apps: dict[str, Any] = {}
        self._refresh_token = refresh_token
        self._cache = cache
        self._username = username
        self._account: dict[str, Any] | None = None

    def _new_app(self, tenant: str) -> Any:
        kwargs: dict[str, Any] = {
            "authority": self._endpoints.authority(tenant),
            "http_client": self._session,
            "http_cache": self._http_cache,
            "instance_discovery": (
                None if is_microsoft_authority(self._endpoints.authority_host) else False
            ),
        }
        if self._cache is not None:
            kwargs["token_cache"] = self._cache
        if self._credential is not None:
            return msal.ConfidentialClientApplication(
                self._client_id, client_credential=self._credential, **kwargs
            )
        return msal.PublicClientApplication(self._client_id, **kwargs)

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


@dataclasses.dataclass(frozen=True, slots=True)
class _Attempt:
    """What one MSAL call on a pool thread produced (exceptions are carried, not raised)."""

    result: dict[str, Any] | None = None
    exc: BaseException | None = None
    info: ResponseInfo = dataclasses.field(default_factory=ResponseInfo)
    skipped: bool = False  # not attempted: the run was already stopped


@dataclasses.dataclass(frozen=True, slots=True)
class _Failure:
    """A classified failed attempt."""

    action: Action
    entra: EntraError | None = None  # Entra's answer, when there was one
    text: str = ""  # our description otherwise: what happened; what to do
    retry_after_s: float | None = None

    @property
    def code(self) -> str | None:
        return self.entra.code if self.entra else None

    def message(self, tenant: str, attempts: int, *, failed: str = "token failed") -> str:
        if self.entra is not None:
            return describe(self.entra, tenant=tenant, attempts=attempts, failed=failed)
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


def _classify_exception(exc: BaseException, info: ResponseInfo, endpoints: Endpoints) -> _Failure:
    """Map an exception out of MSAL / requests to a decision (never keeps its raw text)."""
    host = endpoints.authority_host
    retry_after = info.retry_after_s
    if isinstance(exc, requests.exceptions.SSLError):
        chain_text = " ".join(str(e) for e in _exception_chain(exc))
        if "CERTIFICATE_VERIFY_FAILED" in chain_text or "certificate verify failed" in chain_text:
            return _Failure(
                Action.RUN_STOP,
                text=(
                    f"TLS verification of {host} failed (certificate verify failed); if a "
                    "TLS-inspecting proxy or a private CA is in the way, pass its CA "
                    "certificate with --ca-bundle (BATCHSYNC_CA_BUNDLE)"
                ),
            )
        return _Failure(Action.RETRY, text=f"TLS error talking to {host}; try again later")
    if isinstance(exc, requests.exceptions.Timeout):
        return _Failure(Action.RETRY, text=f"{host} did not answer in time; try again later")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _Failure(
            Action.RETRY,
            text=f"could not reach {host}; check the network and HTTPS_PROXY/NO_PROXY",
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return _Failure(Action.RETRY, text=f"HTTP error talking to {host} ({type(exc).__name__})")
    if isinstance(exc, MsalServiceError) or (
        info.status is not None and (info.status == 429 or info.status >= 500)
    ):
        status = info.status
        entra = _entra_in_chain(exc, status)
        if entra is not None:
            return _Failure(classify(entra), entra=entra, retry_after_s=retry_after)
        return _Failure(
            Action.RETRY,
            text=f"Entra answered HTTP {status or '5xx'}; try again later",
            retry_after_s=retry_after,
        )
    if isinstance(exc, json.JSONDecodeError):
        return _Failure(
            Action.RETRY,
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
            action = classify(entra)
            return _Failure(
                Action.TENANT if action is Action.RUN_STOP else action,
                entra=entra,
                retry_after_s=retry_after,
            )
        return _Failure(
            Action.TENANT,
            text=(
                f"MSAL could not use the authority for this tenant (HTTP {info.status or '?'} "
                "from its discovery document); check the tenant ID or domain and --cloud"
            ),
        )
    return _Failure(
        Action.TENANT,
        text=f"unexpected {type(exc).__name__} from MSAL; run with -v and report it",
    )


def _classify_attempt(attempt: _Attempt, endpoints: Endpoints) -> _Failure:
    if attempt.exc is not None:
        return _classify_exception(attempt.exc, attempt.info, endpoints)
    result = attempt.result
    if result is None:  # delegated: no refresh token for the account in the cache
        return _Failure(
            Action.RUN_STOP, text=f"sign-in expired or missing in the token cache: {_LOGIN_HINT}"
        )
    entra = entra_error_from_response(result, status=attempt.info.status)
    if entra.error is None and not entra.codes:
        return _Failure(Action.TENANT, text="Entra answered without a token or an error")
    return _Failure(classify(entra), entra=entra, retry_after_s=attempt.info.retry_after_s)


# --- the provider ------------------------------------------------------------------------


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
        self._session: MsalHttp | None = None
        self._msal: _Msal | None = None
        self._cache: msal.SerializableTokenCache | None = None
        self._cache_store: TokenCacheStore | None = None
        self._stopped = threading.Event()  # a run-stopping failure: pool threads skip MSAL
        self._opened = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(token_concurrency)  # MSAL calls running at once
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
            credential = _load_certificate(
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
            names = _usernames(self._cache, _authority_hostname(self._endpoints))
            if wanted:
                names = [n for n in names if n.lower() == wanted.lower()]
            if not names:
                who = f"for {wanted!r} " if wanted else ""
                raise ConfigError(
                    f"no signed-in account {who}in the token cache {self._cache_store.path!r} for "
                    f"{self._endpoints.authority_host}: {_LOGIN_HINT} (or use --auth app)"
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
        if self._http_session is not None:
            # Token traffic rides the run's aiohttp session (see LoopSession: half the CPU).
            self._session = LoopSession(
                self._http_session, asyncio.get_running_loop(), timeout_s=self._timeout_s
            )
        else:
            self._session = TrustedSession(
                ca_bundle=self._ca_bundle,
                pool_maxsize=self._token_concurrency + 2,
                timeout_s=self._timeout_s,
            )
        self._msal = _Msal(
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
        if self._session is not None:
            self._session.close()

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
                async with self._slots:
                    started = self._clock()
                    began = started if began is None else began
                    async with asyncio.timeout(self._timeout_s):
                        attempt = await loop.run_in_executor(
                            self._pool, self._call_msal, tenant, force
                        )
            except TimeoutError:
                failure = _Failure(
                    Action.RETRY,
                    text=f"no answer from MSAL within {self._timeout_s:g} s; try again later",
                )
            else:
                if attempt.skipped and self._run_error is not None:
                    raise self._run_error
                result = attempt.result
                if attempt.exc is None and result is not None and "access_token" in result:
                    return self._store(tenant, st, result, started)
                failure = _classify_attempt(attempt, self._endpoints)
            assert began is not None
            wait = self._retry_wait(failure, attempt_no, began)
            if wait is None:
                raise self._fail(tenant, st, failure, attempt_no)
            self.token_retries += 1
            _log.info(
                "tenant %s: token attempt %d failed (%s); retrying in %.2f s",
                tenant,
                attempt_no,
                failure.code or failure.action,
                wait,
            )
            await asyncio.sleep(wait)

    def _call_msal(self, tenant: str, force: bool) -> _Attempt:
        """Runs on a pool thread: one MSAL operation, its outcome carried back as a value.

        After a run-stopping failure, calls still queued on the pool skip MSAL: a revoked
        sign-in would otherwise be sent to Entra once per tenant for nothing.
        """
        assert self._msal is not None
        assert self._session is not None
        if self._stopped.is_set():
            return _Attempt(skipped=True)
        self._session.reset_last_response()
        try:
            result = self._msal.acquire(tenant, force=force, min_lifetime_s=self._margin_s)
        except Exception as exc:
            return _Attempt(exc=exc, info=self._session.last_response())
        return _Attempt(result=result, info=self._session.last_response())

    def _retry_wait(self, failure: _Failure, attempt_no: int, began: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if failure.action is not Action.RETRY or attempt_no >= self._retry_attempts:
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
            value=str(result["access_token"]), expires_at=started + lifetime, tenant=tenant
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

    def _fail(self, tenant: str, st: _TenantState, failure: _Failure, attempts: int) -> AuthError:
        self.token_requests_failed += 1
        message = self._redact(failure.message(tenant, attempts))
        _log.debug("tenant %s: token failed: %s", tenant, failure.code or failure.action)
        if failure.action is Action.RUN_STOP:
            stop = RunStoppingAuthError(message, code=failure.code, tenant=tenant)
            if self._run_error is None:
                self._run_error = stop  # every later get(), for any tenant, raises it
                self._stopped.set()
            return stop
        err = AuthError(message, code=failure.code, tenant=tenant)
        if failure.action is Action.TENANT:
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

    def invalidate(self, token: _BearerToken) -> None:
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


# --- delegated sign-in, for the CLI (blocking) ---------------------------------------------


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
        kept = "encrypted" if self.encrypted else "plain file, mode 0600"
        lines = [f"signed in as {name}" for name in self.accounts] or ["not signed in"]
        return "\n".join([*lines, f"token cache: {self.path} ({kept})"])


def login_device_code(
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
    sign-in, stores it in the token cache and returns the username. Blocking. Raises
    ConfigError (no client id, cache not writable) or AuthError (refused, timed out)."""
    if not settings.client_id:
        raise ConfigError(
            "no client id: pass --client-id or set BATCHSYNC_CLIENT_ID (or AZURE_CLIENT_ID)"
        )
    store = open_token_cache(_cache_path(settings))
    cache = store.load()
    session = TrustedSession(ca_bundle=ca_bundle, pool_maxsize=2, timeout_s=30.0)

    def sign_in_error(failure: _Failure) -> AuthError:
        message = failure.message(tenant, 1, failed="sign-in failed")
        return AuthError(message, code=failure.code, tenant=tenant)

    try:
        try:
            app = msal.PublicClientApplication(
                settings.client_id,
                authority=endpoints.authority(tenant),
                token_cache=cache,
                http_client=session,
                http_cache=_DiscoveryCache(),
                instance_discovery=(
                    None if is_microsoft_authority(endpoints.authority_host) else False
                ),
            )
            flow: dict[str, Any] = app.initiate_device_flow(scopes=[endpoints.scope])
        except Exception as exc:
            raise sign_in_error(
                _classify_exception(exc, session.last_response(), endpoints)
            ) from None
        if "user_code" not in flow:
            entra = entra_error_from_response(flow)
            raise sign_in_error(_Failure(classify(entra), entra=entra))
        echo(str(flow.get("message") or f"Enter the code {flow['user_code']} to sign in."))
        deadline = time.time() + timeout_s
        flow["expires_at"] = min(float(flow.get("expires_at", deadline)), deadline)
        try:
            result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
        except Exception as exc:
            raise sign_in_error(
                _classify_exception(exc, session.last_response(), endpoints)
            ) from None
        if "access_token" not in result:
            entra = entra_error_from_response(result)
            if entra.error in ("authorization_pending", "expired_token", "slow_down"):
                raise AuthError(
                    f"sign-in was not completed in time (the code was not used within "
                    f"{timeout_s:g} s, or it expired); {_LOGIN_HINT} again",
                    code=entra.code,
                    tenant=tenant,
                )
            raise sign_in_error(_Failure(classify(entra), entra=entra))
        try:
            store.save(cache)
        except ConfigError as exc:
            raise ConfigError(f"signed in, but {exc.message}") from None
        claims = result.get("id_token_claims") or {}
        username = claims.get("preferred_username") if isinstance(claims, dict) else None
        if not isinstance(username, str) or not username:
            names = _usernames(cache, _authority_hostname(endpoints))
            username = names[-1] if names else "(unknown account)"
        return username
    finally:
        session.close()


def token_cache_status(settings: AuthSettings) -> TokenCacheStatus:
    """Who is signed in and how the cache is kept (no network)."""
    store = open_token_cache(_cache_path(settings), warn=False)  # describe() tells
    return TokenCacheStatus(
        path=store.path, encrypted=store.encrypted, accounts=tuple(_usernames(store.load()))
    )


def signed_in_accounts(settings: AuthSettings) -> list[str]:
    """Usernames in the token cache (no network)."""
    return list(token_cache_status(settings).accounts)


def logout(settings: AuthSettings, *, usernames: Collection[str] | None = None) -> list[str]:
    """Forget the accounts named (all when None) with every token of theirs; return the
    usernames removed. With no account left, the cache file is deleted."""
    return open_token_cache(_cache_path(settings), warn=False).remove_accounts(usernames)
