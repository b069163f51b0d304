"""The only module that speaks HTTP to Microsoft Graph.

It sends one ``GraphRequest`` with the headers Graph support relies on (a fresh
``client-request-id`` per attempt), never follows a redirect with the bearer token, and
turns whatever happens into a ``GraphAnswer``:
a status with Graph's error ``code`` and ids, or a network/timeout failure. It never
retries; the pacing policy decides that. The request and answer values load without
aiohttp (the actions build requests; ``--help`` lists them), the client imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ._errors import ErrorKind

if TYPE_CHECKING:
    import aiohttp

__all__ = ["GraphAnswer", "GraphClient", "GraphRequest", "next_page_request"]

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph call, relative to ``{graph_url}/{api_version}``."""

    method: str
    path: str
    body: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class GraphAnswer:
    """What one attempt produced."""

    status: int | None
    client_request_id: str
    request_id: str | None = None
    retry_after: str | None = None  # raw header, parsed by the pacing policy
    code: str | None = None  # Graph's error.code, or the failure's name
    message: str = ""
    failure: ErrorKind | None = None  # network or timeout when no status came back
    body: bytes | None = None  # the body of a successful answer that has one (GETs)


class GraphClient:
    """Sends Graph requests over a shared ``aiohttp.ClientSession``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        proxy: Mapping[str, Any] | None = None,
    ) -> None:
        """``proxy``: the ``proxy``/``proxy_headers`` arguments for ``base_url`` (see
        ``_net.env_proxy``), read once by the caller: the environment does not change."""
        self._session = session
        self._base = base_url.rstrip("/")
        self._proxy = dict(proxy or {})
        # client-request-id only has to be unique, not secret: no urandom syscall per attempt.
        self._ids = random.Random()

    def url_for(self, request: GraphRequest) -> str:
        return self._base + request.path

    async def send(
        self, request: GraphRequest, *, token: str, timeout_s: float, read_body: bool = False
    ) -> GraphAnswer:
        """One attempt, bounded by ``timeout_s``; never raises for HTTP or network trouble."""
        import asyncio  # both loaded with the session already: dictionary lookups

        import aiohttp

        from ._net import MAX_GRAPH_BODY, BodyTooLarge, read_limited

        crid = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": crid,
            "return-client-request-id": "true",
        }
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.request(
                    request.method,
                    self.url_for(request),
                    data=request.body,
                    headers=headers,
                    # The token goes to the URL checked here only: a redirect, even on Graph's
                    # own host, could name a path the nextLink rule would refuse.
                    allow_redirects=False,
                    **self._proxy,
                ) as resp:
                    status = resp.status
                    rid = resp.headers.get("request-id")
                    echoed = resp.headers.get("client-request-id") or crid
                    retry_after = resp.headers.get("Retry-After")
                    if 200 <= status < 300:
                        body = await read_limited(resp, MAX_GRAPH_BODY) if read_body else None
                        if not read_body:
                            resp.release()
                        return GraphAnswer(status, echoed, rid, retry_after, body=body)
                    raw = await read_limited(resp, _MAX_ERROR_BODY, truncate=True)
        except TimeoutError:
            return GraphAnswer(
                None,
                crid,
                failure=ErrorKind.TIMEOUT,
                code="Timeout",
                message=f"no answer within {timeout_s:g} s (--timeout)",
            )
        except BodyTooLarge as exc:
            return GraphAnswer(
                None,
                crid,
                failure=ErrorKind.NETWORK,
                code="BodyTooLarge",
                message=f"Graph's {exc} (a proxy's page? check --graph-url and the proxy)",
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            return GraphAnswer(
                None, crid, failure=ErrorKind.NETWORK, code="TLSError", message=_tls_message(exc)
            )
        except aiohttp.ClientSSLError as exc:
            return GraphAnswer(
                None, crid, failure=ErrorKind.NETWORK, code="TLSError", message=_tls_message(exc)
            )
        except aiohttp.ClientConnectorDNSError as exc:
            return GraphAnswer(
                None,
                crid,
                failure=ErrorKind.NETWORK,
                code="DNSError",
                message=f"cannot resolve {exc.host}: check --graph-url and DNS",
            )
        except (aiohttp.ClientError, OSError) as exc:
            return GraphAnswer(
                None,
                crid,
                failure=ErrorKind.NETWORK,
                code=type(exc).__name__,
                message=_network_message(exc),
            )
        code, message = _graph_error(raw, status)
        return GraphAnswer(status, echoed, rid, retry_after, code=code, message=message)


def _graph_error(raw: bytes, status: int) -> tuple[str | None, str]:
    """Graph's ``error.code`` and ``error.message``; tolerant of bodies that aren't JSON."""
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else ""
        return code, _clip(message)
    return None, f"HTTP {status} with a body that is not a Graph error"


def _clip(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tls_message(exc: BaseException) -> str:
    return _clip(
        f"TLS verification failed ({exc}); if a proxy inspects TLS, pass its CA with --ca-bundle"
    )


def _network_message(exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return _clip(f"connection failed: {detail}")


def next_page_request(link: str, graph_base: str) -> GraphRequest:
    """The GET for an ``@odata.nextLink``, relative to ``graph_base``.

    Raises ``ValueError`` unless the link has the base's scheme, host and port and lies under
    its path: the request carries the tenant's bearer token, which must never leave Graph.
    The path is compared, and requested, normalised (``_normal_path``): the URL library
    resolves ``..`` and ``%2e%2e`` before sending, so ``/v1.0/../beta/...`` is ``/beta/...``.
    """
    base, target = urlsplit(graph_base), urlsplit(link)
    base_path, target_path = _normal_path(base.path), _normal_path(target.path)
    try:
        same_origin = (
            target.scheme.lower() == base.scheme.lower()
            and (target.hostname or "") == (base.hostname or "")
            and _port(target.scheme, target.port) == _port(base.scheme, base.port)
            and target.username is None
            and target.password is None
        )
    except ValueError:  # an unparsable port
        same_origin = False
    prefix = (base_path or "").rstrip("/")
    if (
        not same_origin
        or target_path is None
        or base_path is None
        or not target_path.startswith(prefix + "/")
    ):
        raise ValueError(
            f"Graph sent a nextLink outside {graph_base} ({target.scheme}://{target.hostname}); "
            "not followed, so the token is not sent there"
        )
    return GraphRequest(
        "GET", target_path[len(prefix) :] + (f"?{target.query}" if target.query else "")
    )


_ENCODED_DOT = re.compile("%2e", re.IGNORECASE)
_ENCODED_SEPARATOR = re.compile(r"%2f|%5c|\\", re.IGNORECASE)


def _normal_path(path: str) -> str | None:
    """``path`` as it is sent: ``%2e`` decoded (an unreserved character), dot segments
    resolved (RFC 3986 5.2.4) and empty ones dropped (``//``). None for a path that climbs
    above the root or holds an encoded ``/`` or a backslash, which a server may turn into a
    separator after this check."""
    if _ENCODED_SEPARATOR.search(path):
        return None
    parts = _ENCODED_DOT.sub(".", path).split("/")
    segments: list[str] = []
    for segment in parts:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(segment)
    trailing = segments and (parts[-1] in ("", ".", "..")) and len(parts) > 1
    return "/" + "/".join(segments) + ("/" if trailing else "")


def _port(scheme: str, port: int | None) -> int | None:
    if port is not None:
        return port
    return {"https": 443, "http": 80}.get(scheme.lower())
