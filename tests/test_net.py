"""The network edge: TLS trust (system store plus --ca-bundle), proxies, the resolver."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from batchsync._net import env_proxy, make_ssl_context, resolver_for


async def test_windows_gets_the_threaded_resolver() -> None:
    """On Windows the resolver is the threaded one (aiodns needs a selector loop there)."""
    assert isinstance(resolver_for("win32"), aiohttp.ThreadedResolver)
    assert resolver_for("linux") is None  # aiohttp's default elsewhere


def test_ssl_context_verifies_always() -> None:
    """The client context requires a valid certificate and the right host name."""
    ctx = make_ssl_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_no_proxy_variables_means_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without proxy variables, requests go direct."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://graph.microsoft.com/v1.0/") == {}
