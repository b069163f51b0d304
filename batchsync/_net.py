"""The network edge shared by Graph and MSAL: TLS trust, the aiohttp session, proxies, reach.

``--ca-bundle`` adds trust (a TLS-inspecting proxy, a local test server) to the system
store; it never replaces it, and verification is never turned off. Proxies follow
aiohttp's ``trust_env`` rules (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), read once per origin
instead of once per request.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Iterable
from typing import Any

import aiohttp
import aiohttp.abc
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from ._errors import ConfigError
from ._version import __version__

__all__ = [
    "env_proxy",
    "make_ssl_context",
    "open_session",
    "preflight",
    "resolver_for",
    "user_agent",
]


def make_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system store plus ``ca_bundle`` when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx


def user_agent() -> str:
    return f"batchsync/{__version__} (+aiohttp/{aiohttp.__version__})"


def resolver_for(platform: str = sys.platform) -> aiohttp.abc.AbstractResolver | None:
    """The DNS resolver for this platform; None for aiohttp's default. Needs a running loop.

    On Windows it is the threaded one (the system's getaddrinfo): aiohttp's default
    becomes aiodns when that is installed, and aiodns needs a selector loop, which
    Windows' default (proactor) loop is not.
    """
    return aiohttp.ThreadedResolver() if platform == "win32" else None


def open_session(*, ca_bundle: str | None, limit: int, user_agent: str) -> aiohttp.ClientSession:
    """One shared session: connection reuse across tenants and our TLS trust (proxies are
    applied per request, see ``env_proxy``)."""
    ctx = make_ssl_context(ca_bundle)
    # trust_env stays off: with it aiohttp looks up proxies and ~/.netrc in a worker thread
    # on every request (two thread hops per row, the largest cost at scale). Callers read
    # the proxy environment once instead (env_proxy), with the same rules.
    connector = aiohttp.TCPConnector(
        ssl=ctx,
        limit=max(1, limit),
        limit_per_host=0,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
        resolver=resolver_for(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        headers={"User-Agent": user_agent, "Accept": "application/json"},
        json_serialize=lambda obj: orjson.dumps(obj).decode(),
        raise_for_status=False,
        auto_decompress=True,
    )


def env_proxy(url: str) -> dict[str, Any]:
    """``proxy``/``proxy_headers`` arguments for ``url`` from HTTPS_PROXY, HTTP_PROXY and
    NO_PROXY (aiohttp's own ``trust_env`` rules, credentials in the proxy URL included)."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return {}
    kwargs: dict[str, Any] = {"proxy": proxy}
    if auth is not None:
        kwargs["proxy_headers"] = {"Proxy-Authorization": auth.encode()}
    return kwargs


async def preflight(session: aiohttp.ClientSession, urls: Iterable[str], timeout_s: float) -> None:
    """Reach each endpoint once; a TLS or connection failure is a configuration error (exit 2)."""
    for url in dict.fromkeys(urls):
        try:
            async with asyncio.timeout(timeout_s):
                async with session.get(url, allow_redirects=False, **env_proxy(url)) as resp:
                    resp.release()
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ConfigError(
                f"cannot trust {url}: TLS certificate verification failed "
                f"({exc.certificate_error}); "
                "if a proxy inspects TLS, pass its CA certificate with --ca-bundle"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise ConfigError(
                f"TLS with {url} failed ({exc}); check --ca-bundle and the proxy settings"
            ) from None
        except TimeoutError:  # before OSError, its base class since Python 3.11
            raise ConfigError(
                f"no answer from {url} within {timeout_s:g} s; check the network and the proxy"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConfigError(
                f"cannot reach {url} ({str(exc) or type(exc).__name__}); check the network, the "
                "proxy (HTTPS_PROXY/NO_PROXY) and --graph-url/--authority-host"
            ) from None
