"""The network edge shared by Graph and MSAL: TLS trust, the aiohttp session, proxies, reach.

Rules:

1. ``--ca-bundle`` adds trust (a TLS-inspecting proxy, a local test server) to the system
   store; it never replaces it, and verification is never turned off.
2. Proxies follow aiohttp's ``trust_env`` rules (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, ``.netrc``
   credentials), read once per origin instead of once per request, with one difference:
   an ``https://`` proxy is used (TLS to the proxy, verified with the same trust as rule 1),
   where aiohttp would ignore it with a log line and go direct. A proxy scheme batchsync
   cannot use is a ``ConfigError``: a configured proxy is never bypassed silently.
3. Every body read from the network is bounded (``read_limited``), after decompression:
   aiohttp (>= 3.14.4) decompresses in bounded steps, and the read stops at the limit, so
   a decompression bomb costs at most the limit in memory.
"""

from __future__ import annotations

import asyncio
import base64
import netrc
import os
import ssl
import sys
import urllib.request
from collections.abc import Iterable
from typing import Any, Final

import aiohttp
import aiohttp.abc
import orjson
from yarl import URL

from ._errors import ConfigError
from ._version import __version__

__all__ = [
    "MAX_ENTRA_BODY",
    "MAX_GRAPH_BODY",
    "BodyTooLarge",
    "env_proxy",
    "make_ssl_context",
    "open_session",
    "preflight",
    "read_limited",
    "resolver_for",
    "user_agent",
]

MAX_GRAPH_BODY: Final = 32 << 20  # a Graph page of 1000 managed devices is a few MB
MAX_ENTRA_BODY: Final = 1 << 20  # token answers and discovery documents are a few KB
_PROXY_SCHEMES: Final = ("http", "https")


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
    NO_PROXY (rule 2; credentials from the proxy URL, else from ``.netrc``).

    Raises ``ConfigError`` for a proxy URL batchsync cannot use (not ``http://`` or
    ``https://``, or without a host), naming the variable's value without its credentials.
    """
    target = URL(url)
    if target.host is not None and urllib.request.proxy_bypass(target.host):
        return {}
    raw = urllib.request.getproxies().get(target.scheme)
    if not raw:
        return {}
    try:
        proxy = URL(raw if "://" in raw else f"http://{raw}")
    except ValueError:
        proxy = None
    if proxy is None or proxy.scheme not in _PROXY_SCHEMES or not proxy.host:
        shown = proxy.with_user(None) if proxy is not None and proxy.host else "a malformed URL"
        raise ConfigError(
            f"the proxy for {target.scheme}:// ({target.scheme.upper()}_PROXY) is {shown}; "
            "batchsync can use http:// and https:// proxies only: fix the variable, or unset "
            "it (NO_PROXY exempts hosts)"
        )
    login: tuple[str, str] | None = None
    if proxy.raw_user is not None or proxy.raw_password is not None:
        login = (proxy.user or "", proxy.password or "")
        proxy = proxy.with_user(None)
    else:
        login = _netrc_login(proxy.host or "")
    kwargs: dict[str, Any] = {"proxy": proxy}
    if login is not None:
        basic = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        kwargs["proxy_headers"] = {"Proxy-Authorization": f"Basic {basic}"}
    return kwargs


def _netrc_login(host: str) -> tuple[str, str] | None:
    """The proxy's login from ``.netrc`` (``NETRC``, else ``~/.netrc``; ``_netrc`` on
    Windows), as aiohttp's ``trust_env`` reads it; None when there is none."""
    path = os.environ.get("NETRC") or os.path.join(
        os.path.expanduser("~"), "_netrc" if sys.platform == "win32" else ".netrc"
    )
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if entry is None:
        return None
    user, account, password = entry
    return (user or account or "", password or "")


class BodyTooLarge(Exception):
    """A body passed its limit (after decompression); the rest was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit >> 10} KiB; not read")
        self.limit = limit


async def read_limited(
    resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False
) -> bytes:
    """The body of ``resp``, decompressed, at most ``limit`` bytes (rule 3).

    Past the limit: the first ``limit`` bytes with ``truncate`` (an error text, which may
    also end early), else ``BodyTooLarge``. A Content-Length above the limit is refused
    before reading.
    """
    if not truncate and resp.content_length is not None and resp.content_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = await resp.content.read(min(1 << 16, limit + 1 - size))
        except aiohttp.ClientPayloadError:
            if not truncate:
                raise
            break  # an error text cut short: what came is what there is
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if truncate:
        return b"".join(chunks)[:limit]
    raise BodyTooLarge(limit)


async def preflight(session: aiohttp.ClientSession, urls: Iterable[str], timeout_s: float) -> None:
    """Reach each endpoint once, all at once; a TLS or connection failure is a configuration
    error (exit 2), the first endpoint's first."""
    problems = await reach_problems(session, urls, timeout_s)
    if problems:
        raise problems[0]


async def reach_problems(
    session: aiohttp.ClientSession, urls: Iterable[str], timeout_s: float
) -> list[ConfigError]:
    """``preflight`` without raising: what stands between us and each endpoint, in order."""
    async with asyncio.TaskGroup() as tg:
        checks = [tg.create_task(_reach(session, url, timeout_s)) for url in dict.fromkeys(urls)]
    return [problem for check in checks if (problem := check.result()) is not None]


async def _reach(session: aiohttp.ClientSession, url: str, timeout_s: float) -> ConfigError | None:
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, allow_redirects=False, **env_proxy(url)) as resp:
                resp.release()
    except aiohttp.ClientConnectorCertificateError as exc:
        return ConfigError(
            f"cannot trust {url}: TLS certificate verification failed "
            f"({exc.certificate_error}); "
            "if a proxy inspects TLS, pass its CA certificate with --ca-bundle"
        )
    except aiohttp.ClientSSLError as exc:
        return ConfigError(
            f"TLS with {url} failed ({exc}); check --ca-bundle and the proxy settings"
        )
    except TimeoutError:  # before OSError, its base class since Python 3.11
        return ConfigError(
            f"no answer from {url} within {timeout_s:g} s; check the network and the proxy"
        )
    except (aiohttp.ClientError, OSError) as exc:
        return ConfigError(
            f"cannot reach {url} ({str(exc) or type(exc).__name__}); check the network, the "
            "proxy (HTTPS_PROXY/NO_PROXY) and --graph-url/--authority-host"
        )
    return None
