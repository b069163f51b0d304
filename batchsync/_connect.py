"""``connect()``: the run's one aiohttp session, its token provider and Graph client.

``run``, ``discover`` and the Python API all start here, so the settings are checked
(``ConfigError``) and, with ``check_reach``, Graph and Entra reached once, in the same way
before anything is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ._auth import AuthSettings, TokenProvider
from ._clouds import Endpoints
from ._graph import GraphClient
from ._net import open_session, preflight, user_agent

__all__ = ["connect"]


@contextlib.asynccontextmanager
async def connect(
    auth: AuthSettings,
    endpoints: Endpoints,
    *,
    ca_bundle: str | None,
    concurrency: int,
    token_concurrency: int | None,
    timeout_s: float,
    check_reach: bool = True,
    with_tokens: bool = True,
) -> AsyncIterator[tuple[TokenProvider | None, GraphClient]]:
    """The run's one aiohttp session, shared by Graph calls and (through ``LoopSession``)
    MSAL's token calls, and the token provider on it; settings checked (``ConfigError``)
    and, with ``check_reach``, Graph and Entra reached once before anything is sent."""
    token_concurrency = token_concurrency or concurrency
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
            yield tokens, GraphClient(session, endpoints.graph_base)
        finally:
            if tokens is not None:
                await tokens.aclose()
