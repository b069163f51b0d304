"""Helpers for the auth tests: a tiny HTTPS server, endpoints, a provider on the simulator."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.server
import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trustme
from _support import client_certificate_pem

from batchsync._auth import (
    AuthMode,
    AuthSettings,
    TokenProvider,
    login_device_code,
)
from batchsync._clouds import Endpoints
from batchsync.simulator import (
    Simulator,
)

__all__ = [
    "CLIENT_ID",
    "REFRESH",
    "SECRET",
    "SYSTEM_BUNDLE",
    "Reply",
    "Script",
    "TinyServer",
    "configure",
    "endpoints_for",
    "error_reply",
    "oidc",
    "provider_for",
    "reply_json",
    "rsa_cert_pem",
    "signed_in",
    "tiny_server",
    "token_reply",
]

SYSTEM_BUNDLE = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cret-value-that-must-not-leak"
REFRESH = "rt-value-that-must-not-leak"


# --- a tiny HTTPS server, for TLS trust and MSAL's caching traps ----------------------------

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, str]], Reply]


@dataclasses.dataclass
class TinyServer:
    """A threaded HTTPS server on 127.0.0.1 whose answers come from ``handler``."""

    url: str
    ca_path: str
    requests: collections.Counter[tuple[str, str]]  # (method, path) -> count


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tiny"
    reply: Handler
    seen: collections.Counter[tuple[str, str]]

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = dict(urllib.parse.parse_qsl(body))
        path = urllib.parse.urlsplit(self.path).path
        self.seen[(method, path)] += 1
        status, headers, payload = type(self).reply(method, path, form)
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def tiny_server(handler: Handler, tmp_path: Path) -> Iterator[TinyServer]:
    ca = trustme.CA()
    ca_path = tmp_path / "tiny-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    handler_cls = type("H", (_Handler,), {"reply": staticmethod(handler), "seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield TinyServer(f"https://127.0.0.1:{httpd.server_address[1]}", str(ca_path), seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def reply_json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, json.dumps(body).encode()


def oidc(base: str, tenant: str) -> dict[str, Any]:
    return {
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
        "issuer": f"{base}/{tenant}/v2.0",
    }


def endpoints_for(url: str) -> Endpoints:
    return Endpoints(graph_url=url, authority_host=url)


def rsa_cert_pem(tmp_path: Path, *, password: str | None = None) -> tuple[Path, bytes]:
    """A self-signed RSA client certificate: (PEM file with key + cert, the cert's PEM)."""
    path = tmp_path / "client.pem"
    return path, client_certificate_pem(path, password=password)


# --- against the simulator (real MSAL over HTTPS) ------------------------------------------


def provider_for(
    sim: Simulator, settings: AuthSettings | None = None, **kwargs: Any
) -> TokenProvider:
    settings = settings or AuthSettings(
        mode=AuthMode.APP, client_id=sim.config.client_id, client_secret=sim.config.client_secret
    )
    kwargs.setdefault("retry_base_s", 0.001)
    return TokenProvider(settings, endpoints_for(sim.url), ca_bundle=sim.ca_pem_path, **kwargs)


def configure(sim: Simulator, **changes: Any) -> None:
    sim.set_config(dataclasses.replace(sim.config, **changes))


class Script:
    """Token endpoint answers in order; the last one repeats."""

    def __init__(self, base: Callable[[], str], answers: list[Reply]) -> None:
        self._base = base
        self._answers = answers
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, form: dict[str, str]) -> Reply:
        tenant = path.split("/")[1]
        if method == "GET" and path.endswith("/openid-configuration"):
            return reply_json(200, oidc(self._base(), tenant))
        with self._lock:
            answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return answer


def token_reply() -> Reply:
    return reply_json(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "at-1"})


def error_reply(status: int, code: int, error: str, headers: dict[str, str] | None = None) -> Reply:
    return reply_json(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: Try later.\r\nTrace ID: x",
            "error_codes": [code],
        },
        headers,
    )


async def signed_in(sim: Simulator, tmp_path: Path) -> AuthSettings:
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=sim.config.client_id,
        token_cache_path=str(tmp_path / "cache.json"),
    )
    await login_device_code(
        settings,
        endpoints_for(sim.url),
        ca_bundle=sim.ca_pem_path,
        echo=lambda _: None,
    )
    return settings
