"""TLS trust shared by the Graph client and MSAL.

``--ca-bundle`` adds trust (a TLS-inspecting proxy, a local test server) to the system
store; it never replaces it, and verification is never turned off.
"""

from __future__ import annotations

import ssl

__all__ = ["make_ssl_context"]


def make_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system store plus ``ca_bundle`` when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx
