"""A minimal Entra + Graph server for benchmarks: one process, one port, HTTPS, no bookkeeping.

Why not the built-in simulator: it checks every token's HMAC, draws seeded faults, keeps a
sync log and per-tenant counters, and shares the client's event loop when started in
process. On a 2-core machine that server work is what gets measured. This server answers
only what a run needs, cheaply, in its own process (``python benchmarks/fastserver.py``):

* ``GET  /{tenant}/v2.0/.well-known/openid-configuration``: the keys MSAL reads
  (``authorization_endpoint``, ``token_endpoint``, ``issuer``, ...), after
  ``--discovery-latency`` seconds;
* ``POST /{tenant}/oauth2/v2.0/token``: ``client_credentials`` (the client secret is
  checked) and ``refresh_token`` grants, after ``--token-latency``; the access token is
  ``fast.{tenant}``, so Graph knows the tenant without state;
* ``POST /{v1.0|beta}/deviceManagement/exchangeConnectors/{id}/sync``: 401 without a
  ``fast.`` bearer token, else, when ``--limit`` is set, a per-tenant sliding window
  (``--limit`` requests per ``--window`` seconds; a 429 is not counted as a request; a
  request inside a Retry-After already announced to its tenant gets 429 again, as Graph
  keeps counting; ``--limit-schedule 8:25,16:50`` changes the limit that many seconds
  after each tenant's first request), then seeded faults (``--busy-share`` 503 with
  ``Retry-After: --busy-retry-after``, ``--error-share`` 500, ``--drop-share`` connections
  closed unanswered), else 204 after ``--graph-latency`` (up to ``--graph-latency-max``);
  a request arriving inside a pause announced to its tenant (429 or 503), more than
  200 ms after the announcement (already on its way) and 50 ms before its end (skew), is
  counted in ``inside_pause``, as the simulator counts it;
* ``GET /_bench/stats``: a few integer counters (and distinct client connections).

It prints one JSON line on stdout when ready (``url``, ``ca_pem``, ``pid``) and serves until
SIGTERM or SIGINT. The client secret comes from the environment (``FASTSERVER_CLIENT_SECRET``),
never from the command line. Serves 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hmac
import math
import os
import random
import signal
import ssl
import sys
import tempfile
from typing import Any

import orjson
import trustme
from aiohttp import web

__all__ = ["ServerConfig", "build_app", "main"]

_HOST = "127.0.0.1"
_SECRET_ENV = "FASTSERVER_CLIENT_SECRET"  # noqa: S105 - the name of a variable
_TOKEN_PREFIX = "fast."  # noqa: S105 - the fake tokens' prefix
_BEARER = "Bearer " + _TOKEN_PREFIX


class ServerConfig:
    """Latencies (seconds), the per-tenant limit and the expected client secret."""

    __slots__ = (
        "busy_retry_after_s",
        "busy_share",
        "client_secret",
        "discovery_latency_s",
        "drop_share",
        "error_share",
        "graph_latency_max_s",
        "graph_latency_s",
        "limit",
        "limit_schedule",
        "retry_after",
        "seed",
        "token_latency_s",
        "window_s",
    )

    def __init__(
        self,
        *,
        token_latency_s: float = 0.0,
        graph_latency_s: float = 0.0,
        graph_latency_max_s: float = 0.0,
        discovery_latency_s: float = 0.0,
        limit: int = 0,
        window_s: float = 1.0,
        retry_after: str = "seconds",
        limit_schedule: tuple[tuple[float, int], ...] = (),
        busy_share: float = 0.0,
        busy_retry_after_s: float = 1.0,
        error_share: float = 0.0,
        drop_share: float = 0.0,
        seed: int = 0,
        client_secret: str | None = None,
    ) -> None:
        self.token_latency_s = token_latency_s
        self.graph_latency_s = graph_latency_s
        self.graph_latency_max_s = graph_latency_max_s
        self.discovery_latency_s = discovery_latency_s
        self.limit = limit
        self.window_s = window_s
        self.retry_after = retry_after
        self.limit_schedule = limit_schedule
        self.busy_share = busy_share
        self.busy_retry_after_s = busy_retry_after_s
        self.error_share = error_share
        self.drop_share = drop_share
        self.seed = seed
        self.client_secret = client_secret

    def limit_at(self, since_first_s: float) -> int:
        """The limit ``since_first_s`` seconds after a tenant's first request."""
        limit = self.limit
        for after_s, value in self.limit_schedule:
            if since_first_s >= after_s:
                limit = value
        return limit

    def __repr__(self) -> str:
        return (
            f"ServerConfig(token={self.token_latency_s}, graph={self.graph_latency_s}, "
            f"discovery={self.discovery_latency_s}, limit={self.limit}/{self.window_s})"
        )


class _Counters:
    """Plain integers, read by ``/_bench/stats``."""

    __slots__ = (
        "busy",
        "discovery",
        "dropped",
        "errors",
        "graph_peers",
        "inside_pause",
        "request_no",
        "syncs",
        "throttled",
        "token_peers",
        "tokens",
        "unauthorized",
    )

    def __init__(self) -> None:
        self.discovery = 0
        self.tokens = 0
        self.syncs = 0
        self.throttled = 0
        self.busy = 0
        self.errors = 0
        self.dropped = 0
        self.inside_pause = 0
        self.unauthorized = 0
        self.request_no = 0
        self.graph_peers: set[Any] = set()
        self.token_peers: set[Any] = set()

    def as_dict(self) -> dict[str, int]:
        return {
            "discovery": self.discovery,
            "tokens": self.tokens,
            "syncs": self.syncs,
            "throttled": self.throttled,
            "busy": self.busy,
            "errors": self.errors,
            "dropped": self.dropped,
            "inside_pause": self.inside_pause,
            "unauthorized": self.unauthorized,
            "graph_connections": len(self.graph_peers),
            "token_connections": len(self.token_peers),
        }


_IN_FLIGHT_S = 0.2  # after a pause is announced: requests already on their way
_SKEW_S = 0.05  # before it ends: clock skew


class _Window:
    """One tenant's sliding window of accepted request times and announced pauses."""

    __slots__ = ("announced_at", "announced_until", "first", "paused_until", "starts")

    def __init__(self, now: float) -> None:
        self.starts: collections.deque[float] = collections.deque()
        self.first = now
        self.paused_until = 0.0  # a 429's pause: every request inside it gets 429 again
        self.announced_at = 0.0  # any pause told (429 or 503): requests inside are counted
        self.announced_until = 0.0

    def announce(self, now: float, until: float) -> None:
        if now >= self.announced_until:  # a new pause, not the extension of a running one
            self.announced_at = now
        self.announced_until = max(self.announced_until, until)

    def inside_pause(self, now: float) -> bool:
        return self.announced_at + _IN_FLIGHT_S <= now < self.announced_until - _SKEW_S


def _retry_after(form: str, wait_s: float) -> tuple[str | None, float]:
    """The header value and the wait it announces (rounded up, like the simulator)."""
    if form == "seconds":
        whole = max(1, math.ceil(wait_s))
        return str(whole), float(whole)
    if form == "float":
        value = max(math.ceil(wait_s * 1000), 1) / 1000
        return f"{value:.3f}", value
    return None, 0.0


def _peer(request: web.Request) -> Any:
    """The client's (host, port): distinct values count the connections a client opened."""
    transport = request.transport
    return transport.get_extra_info("peername") if transport is not None else None


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers or None,
    )


def build_app(config: ServerConfig, url_holder: list[str]) -> web.Application:
    """The aiohttp application; ``url_holder[0]`` is filled with the base URL once bound."""
    counters = _Counters()
    windows: dict[str, _Window] = {}
    loop_time = asyncio.get_running_loop().time  # built inside the serving loop
    rng = random.Random(config.seed)
    faulty = config.busy_share + config.error_share + config.drop_share > 0

    async def openid_configuration(request: web.Request) -> web.Response:
        counters.discovery += 1
        if config.discovery_latency_s > 0:
            await asyncio.sleep(config.discovery_latency_s)
        base = f"{url_holder[0]}/{request.match_info['tenant']}"
        return _json(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
            }
        )

    async def token(request: web.Request) -> web.Response:
        counters.tokens += 1
        counters.token_peers.add(_peer(request))
        tenant = request.match_info["tenant"].lower()
        form = await request.post()
        grant = form.get("grant_type")
        if config.token_latency_s > 0:
            await asyncio.sleep(config.token_latency_s)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": 3600,
            "ext_expires_in": 3600,
            "access_token": _TOKEN_PREFIX + tenant,
        }
        if grant == "client_credentials":
            secret = form.get("client_secret")
            expected = config.client_secret
            if expected is not None and not (
                isinstance(secret, str) and hmac.compare_digest(secret, expected)
            ):
                return _json(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                        "error_codes": [7000215],
                    },
                    status=401,
                )
        elif grant == "refresh_token":
            body["refresh_token"] = "fast-refresh"  # noqa: S105 - a fixed fake, not a secret
            body["scope"] = str(form.get("scope", ""))
        else:
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "AADSTS70003: unsupported grant type.",
                    "error_codes": [70003],
                },
                status=400,
            )
        return _json(body, headers={"Cache-Control": "no-store, no-cache"})

    def throttled(window: _Window, now: float, wait_s: float) -> web.Response:
        counters.throttled += 1
        value, announced = _retry_after(config.retry_after, wait_s)
        headers: dict[str, str] = {}
        if value is not None:
            window.paused_until = max(window.paused_until, now + announced)
            window.announce(now, now + announced)
            headers["Retry-After"] = value
        return _json(
            {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
            status=429,
            headers=headers,
        )

    def fault(request: web.Request, window: _Window, now: float) -> web.Response | None:
        """A seeded fault for this request, or None; a drop closes the connection."""
        roll = rng.random()
        if roll < config.busy_share:
            counters.busy += 1
            value, announced = _retry_after("seconds", config.busy_retry_after_s)
            window.announce(now, now + announced)
            return _json(
                {"error": {"code": "ServiceUnavailable", "message": "Busy."}},
                status=503,
                headers={"Retry-After": value or "1"},
            )
        roll -= config.busy_share
        if roll < config.error_share:
            counters.errors += 1
            return _json({"error": {"code": "InternalServerError", "message": "Oops."}}, 500)
        if roll - config.error_share < config.drop_share:
            counters.dropped += 1
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)  # never reaches the client
        return None

    async def sync(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(_BEARER):
            counters.unauthorized += 1
            return _json(
                {"error": {"code": "InvalidAuthenticationToken", "message": "No token."}},
                status=401,
            )
        counters.graph_peers.add(_peer(request))
        await request.read()
        if config.limit > 0 or faulty:
            tenant = auth[len(_BEARER) :]
            now = loop_time()
            window = windows.get(tenant)
            if window is None:
                window = windows[tenant] = _Window(now)
            if window.inside_pause(now):
                counters.inside_pause += 1
            limit = config.limit_at(now - window.first)
            if limit > 0:
                if now < window.paused_until:
                    return throttled(window, now, window.paused_until - now)
                starts = window.starts
                horizon = now - config.window_s
                while starts and starts[0] <= horizon:
                    starts.popleft()
                if len(starts) >= limit:  # wait until the window holds fewer than the limit
                    free_at = starts[len(starts) - limit] + config.window_s
                    return throttled(window, now, free_at - now)
                starts.append(now)
            if faulty:
                answer = fault(request, window, now)
                if answer is not None:
                    return answer
        latency = config.graph_latency_s
        if config.graph_latency_max_s > latency:
            latency = rng.uniform(latency, config.graph_latency_max_s)
        if latency > 0:
            await asyncio.sleep(latency)
        counters.syncs += 1
        counters.request_no += 1
        return web.Response(
            status=204,
            headers={
                "request-id": f"00000000-0000-4000-8000-{counters.request_no:012x}",
                "client-request-id": request.headers.get("client-request-id", ""),
            },
        )

    async def stats(_: web.Request) -> web.Response:
        return _json(counters.as_dict())

    app = web.Application()
    app.add_routes(
        [
            web.get("/_bench/stats", stats),
            web.post("/{version}/deviceManagement/exchangeConnectors/{connector}/sync", sync),
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
            web.post("/{tenant}/oauth2/v2.0/token", token),
        ]
    )
    return app


async def _serve(config: ServerConfig, port: int, workdir: str) -> None:
    ca = trustme.CA(organization_name="batchsync benchmarks (throwaway)")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_pem = os.path.join(workdir, "fastserver-ca.pem")
    ca.cert_pem.write_to_path(ca_pem)
    url_holder = [""]
    runner = web.AppRunner(build_app(config, url_holder), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, _HOST, port, ssl_context=server_ctx, backlog=1024)
        await site.start()
        url_holder[0] = f"https://{_HOST}:{runner.addresses[0][1]}"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = {"url": url_holder[0], "ca_pem": ca_pem, "pid": os.getpid()}
        sys.stdout.write(orjson.dumps(ready).decode() + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def _schedule(text: str) -> tuple[tuple[float, int], ...]:
    """``8:25,16:50`` -> ((8.0, 25), (16.0, 50))."""
    steps = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        after, _, limit = part.partition(":")
        steps.append((float(after), int(limit)))
    return tuple(sorted(steps))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--graph-latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--discovery-latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--limit", type=int, default=0, help="requests per tenant per window")
    parser.add_argument("--window", type=float, default=1.0, help="seconds")
    parser.add_argument("--retry-after", choices=["seconds", "float", "none"], default="seconds")
    parser.add_argument(
        "--limit-schedule", type=_schedule, default=(), help="AFTER_S:LIMIT,... per tenant"
    )
    parser.add_argument("--graph-latency-max", type=float, default=0.0, help="seconds")
    parser.add_argument("--busy-share", type=float, default=0.0, help="503 + Retry-After")
    parser.add_argument("--busy-retry-after", type=float, default=1.0, help="seconds")
    parser.add_argument("--error-share", type=float, default=0.0, help="500")
    parser.add_argument("--drop-share", type=float, default=0.0, help="connections closed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = ServerConfig(
        token_latency_s=args.token_latency,
        graph_latency_s=args.graph_latency,
        graph_latency_max_s=args.graph_latency_max,
        discovery_latency_s=args.discovery_latency,
        limit=args.limit,
        window_s=args.window,
        retry_after=args.retry_after,
        limit_schedule=args.limit_schedule,
        busy_share=args.busy_share,
        busy_retry_after_s=args.busy_retry_after,
        error_share=args.error_share,
        drop_share=args.drop_share,
        seed=args.seed,
        client_secret=os.environ.get(_SECRET_ENV) or None,
    )
    with (
        tempfile.TemporaryDirectory(prefix="batchsync-fastserver-") as workdir,
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(_serve(config, args.port, workdir))


if __name__ == "__main__":
    main()
