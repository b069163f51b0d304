"""Answer helpers shared by the Entra and Graph handlers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["json_response"]


def json_response(
    body: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    no_store: bool = False,
) -> web.Response:
    """A JSON answer; ``no_store`` adds the cache headers Entra puts on token answers."""
    extra = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"} if no_store else {}
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers={**extra, **(headers or {})},
    )
