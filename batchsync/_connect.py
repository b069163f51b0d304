"""``connect()``: the run's one aiohttp session, its token provider and Graph client.

``run``, ``discover`` and the Python API all start here, so the settings are checked
(``ConfigError``) and, with ``check_reach``, Graph and Entra reached once, in the same way
before anything is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from ._auth._provider import TokenProvider
from ._auth._settings import AuthSettings
from ._clouds import Endpoints
from ._errors import ConfigError
from ._graph import GraphClient
from ._net import env_proxy, open_session, preflight, user_agent

__all__ = ["ConnectionSettings", "connect"]


class _Bounds(Protocol):
    """The part of ``EngineSettings`` connecting needs."""

    @property
    def concurrency(self) -> int: ...

    @property
    def timeout_s(self) -> float: ...


class ConnectionSettings(Protocol):
    """What connecting needs; ``RunConfig``, ``DiscoverConfig`` and ``Settings`` all have it."""

    @property
    def auth(self) -> AuthSettings: ...

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def ca_bundle(self) -> str | None: ...

    @property
    def engine(self) -> _Bounds: ...

    @property
    def token_concurrency(self) -> int | None: ...


@contextlib.asynccontextmanager
async def connect(
    settings: ConnectionSettings, *, check_reach: bool = True, with_tokens: bool = True
) -> AsyncIterator[tuple[TokenProvider | None, GraphClient]]:
    """The run's one aiohttp session, shared by Graph calls and (through ``LoopSession``)
    MSAL's token calls, and the token provider on it; settings checked (``ConfigError``)
    and, with ``check_reach``, Graph and Entra reached once before anything is sent."""
    auth, endpoints, ca_bundle = settings.auth, settings.endpoints, settings.ca_bundle
    problem = endpoints.problem()  # the CLI checked; a library caller's Endpoints may not be
    if problem is not None:
        raise ConfigError(problem)
    concurrency, timeout_s = settings.engine.concurrency, settings.engine.timeout_s
    token_concurrency = settings.token_concurrency or concurrency
    async with open_session(
        ca_bundle=ca_bundle,
        limit=concurrency + token_concurrency + 4,
        user_agent=user_agent(),
    ) as session:
        tokens = None
        if with_tokens:
            tokens = TokenProvider(
                auth,
                endpoints,
                ca_bundle=ca_bundle,
                token_concurrency=token_concurrency,
                timeout_s=timeout_s,
                http_session=session,
            )
        try:
            if tokens is not None:
                await tokens.open()
            if check_reach:
                await preflight(
                    session,
                    [endpoints.graph_url + "/", endpoints.authority_host + "/"],
                    min(timeout_s, 15.0),
                )
            yield (
                tokens,
                GraphClient(session, endpoints.graph_base, proxy=env_proxy(endpoints.graph_base)),
            )
        finally:
            if tokens is not None:
                await tokens.aclose()
