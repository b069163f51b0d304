"""``connect()``: the run's one aiohttp session, its token provider and Graph client.

``run``, ``discover`` and the Python API all start here, so the settings are checked
(``ConfigError``) and, with ``check_reach``, Graph and Entra reached once, in the same way
before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from ._auth._provider import TokenProvider
from ._auth._settings import AuthSettings
from ._clouds import Endpoints
from ._errors import AuthError, ConfigError
from ._graph import GraphClient
from ._net import env_proxy, open_session, preflight, reach_problems, user_agent

if TYPE_CHECKING:
    import aiohttp

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
    settings: ConnectionSettings,
    *,
    check_reach: bool = True,
    with_tokens: bool = True,
    first_tenant: str | None = None,
) -> AsyncIterator[tuple[TokenProvider | None, GraphClient]]:
    """The run's one aiohttp session, shared by Graph calls and (through ``LoopSession``)
    MSAL's token calls, and the token provider on it; settings checked (``ConfigError``)
    and, with ``check_reach``, Graph and Entra reached once before anything is sent.

    ``first_tenant``: the input's first tenant, whose token is asked for while the endpoints
    are reached. The first token request goes alone (it proves the credential before a
    crowd of them), so overlapping it with the reach check takes one round trip off the
    start; a row is never sent before the reach check has passed.
    """
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
                urls = [endpoints.graph_url + "/", endpoints.authority_host + "/"]
                if tokens is not None and first_tenant is not None:
                    await _reach_while_warming(
                        session, urls, min(timeout_s, 15.0), tokens, first_tenant
                    )
                else:
                    await preflight(session, urls, min(timeout_s, 15.0))
            yield (
                tokens,
                GraphClient(session, endpoints.graph_base, proxy=env_proxy(endpoints.graph_base)),
            )
        finally:
            if tokens is not None:
                await tokens.aclose()


async def _reach_while_warming(
    session: aiohttp.ClientSession,
    urls: list[str],
    timeout_s: float,
    tokens: TokenProvider,
    tenant: str,
) -> None:
    """``preflight``, with ``tenant``'s token acquired meanwhile (see ``connect``)."""

    async def warm() -> None:
        # A failure is the tenant's (or the run's) and is remembered by the provider: the
        # engine meets it at its first get(), as it would have without the warm-up.
        with contextlib.suppress(AuthError):
            await tokens.get(tenant)

    async with asyncio.TaskGroup() as tg:
        warming = tg.create_task(warm(), name=f"warm:{tenant}")
        problems = await reach_problems(session, urls, timeout_s)
        if problems:
            warming.cancel()  # the run ends here: no token is worth waiting for
    if problems:
        raise problems[0]
