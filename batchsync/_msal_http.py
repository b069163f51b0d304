"""The ``requests`` session MSAL uses, with batchsync's TLS trust and nothing else's.

``requests`` lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` replace the ``verify=`` a
caller gave (psf/requests#3829), so MSAL's own ``verify=`` cannot carry ``--ca-bundle``.
This session pins trust to one ``SSLContext`` (system store + ``--ca-bundle``, from
``_tls.make_ssl_context``) on every pool, including the TLS tunnelled through a proxy and
the TLS to an ``https://`` proxy itself, and keeps ``trust_env`` for ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``NO_PROXY``. Verification is never turned off.

It also remembers, per thread, the status and ``Retry-After`` of the last response: MSAL
hides the status of error answers (and raises a bare ``MsalServiceError`` on 5xx), and the
retry policy needs both. Each MSAL call runs on one pool thread, so "last response on this
thread" is the answer to that call.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import ssl
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from batchsync._tls import make_ssl_context

__all__ = ["ResponseInfo", "TrustedSession", "parse_retry_after"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseInfo:
    """Status and ``Retry-After`` (seconds) of the last response seen on this thread."""

    status: int | None = None
    retry_after_s: float | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), None when absent or garbled."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


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


class TrustedSession(requests.Session):
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

    def merge_environment_settings(
        self,
        url: str,
        proxies: Any,
        stream: bool | None,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        """Proxies from the environment, as usual; ``verify`` from it, never."""
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        settings["verify"] = True
        return settings

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
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        )
        return response

    def last_response(self) -> ResponseInfo:
        """The last response this thread got (empty when none, or the request failed)."""
        info = getattr(self._local, "info", None)
        return info if isinstance(info, ResponseInfo) else ResponseInfo()

    def reset_last_response(self) -> None:
        """Forget this thread's last response (call before each MSAL operation)."""
        self._local.info = ResponseInfo()
