"""The ``requests`` session MSAL uses, with batchsync's TLS trust and nothing else's.

``requests`` lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` replace the ``verify=`` a
caller gave (psf/requests#3829), so MSAL's own ``verify=`` cannot carry ``--ca-bundle``.
This session pins trust to one ``SSLContext`` (system store + ``--ca-bundle``, from
``_net.make_ssl_context``) on every pool, including the TLS tunnelled through a proxy and
the TLS to an ``https://`` proxy itself, and keeps ``trust_env`` for ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``NO_PROXY``. Verification is never turned off.

It also remembers, per thread, the status and ``Retry-After`` of the last response: MSAL
hides the status of error answers (and raises a bare ``MsalServiceError`` on 5xx), and the
retry policy needs both. Each MSAL call runs on one pool thread, so "last response on this
thread" is the answer to that call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

from batchsync._net import env_proxy, make_ssl_context
from batchsync._pacing import parse_retry_after

__all__ = ["LoopSession", "MsalHttp", "ResponseInfo", "TrustedSession"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseInfo:
    """Status and ``Retry-After`` (seconds) of the last response seen on this thread."""

    status: int | None = None
    retry_after_s: float | None = None


def _retry_after_s(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), now_epoch=time.time())


class _NoNetrcAuth(requests.auth.AuthBase):
    """A no-op auth: stops ``trust_env`` from adding ``~/.netrc`` credentials to token calls."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _TrustAdapter(HTTPAdapter):
    """An adapter whose pools (direct and through proxies) verify with one SSLContext."""

    def __init__(self, ssl_context: ssl.SSLContext, *, pool_maxsize: int) -> None:
        self._ssl_context = ssl_context  # before super().__init__, which builds the pools
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs["ssl_context"] = self._ssl_context  # the tunnelled TLS to Entra
        if proxy.lower().startswith("https:"):  # TLS to the proxy itself: same trust
            proxy_kwargs["proxy_ssl_context"] = self._ssl_context
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would point the connection at certifi or at an env bundle here, and
        # urllib3 would load that file into our shared context. Trust comes from the
        # pool's SSLContext alone; verification stays required whatever ``verify`` says.
        if url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class _LastResponse:
    """Remembers, per thread, the status and Retry-After of the last answer."""

    _local: threading.local

    def reset_last_response(self) -> None:
        """Forget this thread's last response (call before each MSAL operation)."""
        self._local.info = ResponseInfo()

    def last_response(self) -> ResponseInfo:
        """The last response this thread got (empty when none, or the request failed)."""
        info = getattr(self._local, "info", None)
        return info if isinstance(info, ResponseInfo) else ResponseInfo()


class TrustedSession(_LastResponse, requests.Session):
    """A ``requests.Session`` for MSAL: fixed trust, default timeout, per-thread last status.

    Thread-safe enough to share across MSAL application objects and pool threads (requests'
    connection pool is); ``pool_maxsize`` should be at least the token concurrency.
    """

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        pool_maxsize: int = 10,
        timeout_s: float | None = 30.0,
    ) -> None:
        super().__init__()
        self.ssl_context = make_ssl_context(ca_bundle)
        adapter = _TrustAdapter(self.ssl_context, pool_maxsize=max(1, pool_maxsize))
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.verify = True
        self.auth = _NoNetrcAuth()
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._env_proxies: dict[tuple[str, str, Any], dict[str, str]] = {}

    def merge_environment_settings(
        self,
        url: str,
        proxies: Any,
        stream: bool | None,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        """Proxies from the environment, as usual; ``verify`` from it, never.

        ``requests`` reads (and decodes) the whole environment for every request to find
        proxies, a tenth of a fleet run's CPU; the answer per scheme and host is cached,
        since the environment does not change during a run.
        """
        merged = dict(proxies or {})
        if self.trust_env:
            no_proxy = merged.get("no_proxy")
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, no_proxy)
            env = self._env_proxies.get(key)
            if env is None:
                env = self._env_proxies[key] = get_environ_proxies(url, no_proxy=no_proxy)
            for name, value in env.items():
                merged.setdefault(name, value)
        return {
            "proxies": merge_setting(merged, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": True,
            "cert": merge_setting(cert, self.cert),
        }

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send with the default timeout and remember the answer's status on this thread."""
        if self._timeout_s is not None:
            kwargs.setdefault("timeout", self._timeout_s)
        kwargs["verify"] = True
        self._local.info = ResponseInfo()
        response = super().request(method, url, *args, **kwargs)
        self._local.info = ResponseInfo(
            status=response.status_code,
            retry_after_s=_retry_after_s(response),
        )
        return response


class LoopSession(_LastResponse):
    """MSAL's ``http_client`` sending through the run's aiohttp session, on its event loop.

    MSAL is blocking and runs on pool threads; ``requests`` costs about twice the CPU of
    aiohttp per call (0.8 ms against 0.4 ms here), and at a few thousand tenants that CPU,
    not latency, bounds the run. So each call is handed to the loop with
    ``run_coroutine_threadsafe`` and the thread waits: one connection pool, one TLS trust
    and one proxy configuration for Entra and Graph alike. Answers come back as
    ``requests.Response`` objects and failures as ``requests`` exceptions, which is what
    MSAL and the auth module's classification expect. Same per-thread ``last_response``
    as ``TrustedSession``.
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
                    body = await resp.read()
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


MsalHttp = TrustedSession | LoopSession
