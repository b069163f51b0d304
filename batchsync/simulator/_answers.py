"""One Graph request being answered: its ids, Graph's error body and the Retry-After forms.

Every answer carries ``request-id``, ``client-request-id`` (echoed, or new),
``x-ms-ags-diagnostic`` and ``Date`` (added by ``_graph``); errors carry Graph's body
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
from datetime import UTC, datetime

from aiohttp import web

from ._config import RetryAfterForm
from ._http import json_response

__all__ = ["Call", "forbidden", "format_retry_after", "not_a_guid", "not_found"]


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One Graph request being answered: its ids, shared by headers and error bodies."""

    request: web.Request
    request_id: str
    client_request_id: str
    arrived: float  # loop time, before any simulated latency

    def error(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": self.request_id,
                    "client-request-id": self.client_request_id,
                },
            }
        }
        return json_response(body, status=status, headers=headers)


def format_retry_after(
    form: RetryAfterForm, wait_s: float, *, now_wall: float
) -> tuple[str | None, float]:
    """The ``Retry-After`` header value for ``wait_s`` and the wait it announces (seconds).

    Values are rounded up, so a client that waits exactly what it was told never arrives
    early: "seconds" is a whole number (at least 1), "float" has three decimals, "date" is
    the next whole second as an HTTP-date; "none" announces nothing; "zero" says ``0``
    whatever the wait (a server that says "now" and means later: the client must rest).
    """
    if form == "seconds":
        seconds = max(1, math.ceil(wait_s))
        return str(seconds), float(seconds)
    if form == "float":
        value = max(math.ceil(wait_s * 1000), 1) / 1000
        return f"{value:.3f}", value
    if form == "date":
        target = math.ceil(now_wall + wait_s)
        return email.utils.formatdate(target, usegmt=True), target - now_wall
    if form == "zero":
        return "0", 0.0
    return None, 0.0


def not_a_guid(call: Call, raw: str) -> web.Response:
    return call.error(400, "BadRequest", f"Invalid key '{raw[:64]}': it is not a GUID.")


def forbidden(call: Call, permission: str) -> web.Response:
    """403 naming the permission the operation needs, as Graph's message does."""
    return call.error(
        403,
        "Forbidden",
        "Application is not authorized to perform this operation. Application must have one "
        f"of the following scopes: {permission}",
    )


def not_found(call: Call, what: str, object_id: str) -> web.Response:
    return call.error(404, "ResourceNotFound", f"{what} '{object_id}' was not found.")
