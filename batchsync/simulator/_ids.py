"""The simulator's own checks of ids in URLs: what Entra and Graph accept, written apart from
the client's validation (``batchsync._rows``) so that a bug there shows in every test."""

from __future__ import annotations

import re

__all__ = ["graph_key", "is_tenant"]

_HEX_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_GUID = re.compile(rf"({_HEX_GUID})|\{{({_HEX_GUID})\}}")
# Entra takes a tenant GUID or a verified domain: DNS labels of letters, digits and inner
# hyphens, at least two of them, the last one not all digits.
_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z][a-zA-Z0-9-]*"
)


def graph_key(raw: str) -> str | None:
    """A Graph entity key (a GUID, braces allowed) in canonical lower case, else None."""
    match = _GUID.fullmatch(raw)
    return (match.group(1) or match.group(2)).lower() if match else None


def is_tenant(raw: str) -> bool:
    """Whether Entra would take ``raw`` as a tenant in an authority URL."""
    return _GUID.fullmatch(raw) is not None or _DOMAIN.fullmatch(raw) is not None
