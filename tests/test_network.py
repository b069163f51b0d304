"""Networks: proxies (HTTPS_PROXY / NO_PROXY), --ca-bundle trust, and each cloud's hosts.

A small HTTP CONNECT proxy on 127.0.0.1 records what it is asked for. It tunnels only to
loopback addresses and refuses anything else with 502 without connecting, and name
resolution of anything but loopback fails the test: no byte ever leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import re
import socket
import ssl
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
import trustme
from _auth_support import Reply, endpoints_for, tiny_server
from _cli_support import PROXY_VARS
from _support import make_rows, tenant_id, write_csv
from click.testing import CliRunner, Result

import batchsync
from batchsync import AuthMode, AuthSettings, Settings
from batchsync._auth._entra_errors import TokenVerdict
from batchsync._auth._msal import AnswerTooLarge, LoopSession, ResponseInfo, classify_exception
from batchsync._clouds import CLOUDS, CloudName, Endpoints, resolve_endpoints
from batchsync._errors import ConfigError, ErrorKind
from batchsync._graph import GraphClient, GraphRequest
from batchsync._net import MAX_ENTRA_BODY, MAX_GRAPH_BODY, open_session
from batchsync.cli import main
from batchsync.simulator import Simulator, start_in_thread

FAST = ["--tenant-rate", "1000/1", "--timeout", "10"]
_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|PATCH|DELETE|HEAD) (/[^ \r\n]*) HTTP/1\.[01]\r\n")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: never resolved, never reached


# --- the recording proxy -------------------------------------------------------------------------


@dataclasses.dataclass
class RecordingProxy:
    """What the proxy was asked: CONNECT targets, and (inspecting) the requests inside."""

    url: str
    connects: list[str] = dataclasses.field(default_factory=list)
    requests: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def paths(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]


class _Sniffer:
    """Finds HTTP request lines in a decrypted byte stream (chunk boundaries included)."""

    def __init__(self, seen: list[tuple[str, str]]) -> None:
        self._seen = seen
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data
        end = 0
        for match in _REQUEST_LINE.finditer(self._buf):
            self._seen.append((match.group(1).decode(), match.group(2).decode()))
            end = match.end()
        self._buf = self._buf[end:][-8192:]


class _Proxy:
    """The proxy's handlers, on the proxy thread's event loop."""

    def __init__(
        self,
        record: RecordingProxy,
        mode: Literal["tunnel", "inspect"],
        server_ctx: ssl.SSLContext | None,
        upstream_ctx: ssl.SSLContext | None,
    ) -> None:
        self.record = record
        self.mode = mode
        self.server_ctx = server_ctx
        self.upstream_ctx = upstream_ctx
        self.writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method != "CONNECT":
                self.record.connects.append(f"{method} {target}")
                await _refuse(writer)
                return
            self.record.connects.append(target)
            host, _, port = target.rpartition(":")
            if not _is_loopback(host):
                await _refuse(writer)  # never connect anywhere but loopback
                return
            up_reader, upstream = await asyncio.open_connection(host.strip("[]"), int(port))
            self.writers.add(upstream)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            sniff = None
            if self.mode == "inspect":
                assert self.server_ctx is not None
                assert self.upstream_ctx is not None
                await writer.start_tls(self.server_ctx)  # the client's TLS ends here
                await upstream.start_tls(self.upstream_ctx, server_hostname=host.strip("[]"))
                sniff = _Sniffer(self.record.requests).feed
            await asyncio.gather(_pump(reader, upstream, sniff), _pump(up_reader, writer, None))
        except (OSError, ssl.SSLError, ValueError, asyncio.IncompleteReadError):
            pass  # a refused handshake or a dropped client: nothing to relay
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self.writers.discard(w)
                    w.close()


async def _refuse(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, sniff: Any | None) -> None:
    try:
        while data := await src.read(65536):
            if sniff is not None:
                sniff(data)
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()


@contextlib.contextmanager
def recording_proxy(
    mode: Literal["tunnel", "inspect"] = "tunnel",
    *,
    intercept_ca: trustme.CA | None = None,
    upstream_ca_path: str | None = None,
    tls_ca: trustme.CA | None = None,
) -> Iterator[RecordingProxy]:
    """Run the proxy on 127.0.0.1 in a thread. ``inspect``: terminate the client's TLS
    with a certificate from ``intercept_ca`` (like a corporate TLS-inspecting proxy),
    record each request line, and go on to the target trusting ``upstream_ca_path``.
    ``tls_ca``: an ``https://`` proxy, TLS to the proxy itself with a certificate from it."""
    server_ctx = upstream_ctx = listen_ctx = None
    if tls_ca is not None:
        listen_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ca.issue_cert("127.0.0.1", "localhost").configure_cert(listen_ctx)
    if mode == "inspect":
        assert intercept_ca is not None
        assert upstream_ca_path is not None
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        intercept_ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        upstream_ctx = ssl.create_default_context(cafile=upstream_ca_path)
    started: concurrent.futures.Future[tuple[RecordingProxy, asyncio.AbstractEventLoop]]
    started = concurrent.futures.Future()
    stop = threading.Event()

    async def serve() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        record = RecordingProxy(url="")
        proxy = _Proxy(record, mode, server_ctx, upstream_ctx)
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, ssl=listen_ctx)
        scheme = "https" if listen_ctx is not None else "http"
        record.url = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        started.set_result((record, loop))
        await asyncio.to_thread(stop.wait)
        server.close()
        for writer in list(proxy.writers):
            writer.close()
        await server.wait_closed()
        done.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    record, _ = started.result(timeout=10)
    try:
        yield record
    finally:
        stop.set()
        thread.join(timeout=10)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """A clean environment in which resolving any name but loopback fails (and is recorded):
    a client that bypassed the proxy could not reach Microsoft from a test."""
    for name in [
        *PROXY_VARS,
        "BATCHSYNC_GRAPH_URL",
        "BATCHSYNC_AUTHORITY_HOST",
        "BATCHSYNC_CA_BUNDLE",
        "BATCHSYNC_CLIENT_ID",
        "BATCHSYNC_REFRESH_TOKEN",
        "BATCHSYNC_CLIENT_SECRET",
        "BATCHSYNC_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHSYNC_TOKEN_CACHE", str(tmp_path / "cache.json"))
    blocked: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _is_loopback(str(name)) or name == "localhost":
            return real(host, *args, **kwargs)
        blocked.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, f"test: resolving {name} is not allowed")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield blocked
    assert blocked == [], f"a client tried to resolve {blocked} instead of using the proxy"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with start_in_thread() as s:
        yield s


@pytest.fixture(scope="module")
def proxy_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    """A TLS-inspecting proxy's CA and its PEM file."""
    ca = trustme.CA(organization_name="batchsync test TLS-inspecting proxy")
    path = tmp_path_factory.mktemp("proxy-ca") / "proxy-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture(scope="module")
def unrelated_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("other-ca") / "other-ca.pem"
    trustme.CA(organization_name="batchsync unrelated CA").cert_pem.write_to_path(str(path))
    return str(path)


def _sim_env(sim: Simulator, *, ca_bundle: str, **extra: str) -> dict[str, str]:
    return {
        "BATCHSYNC_GRAPH_URL": sim.url,
        "BATCHSYNC_AUTHORITY_HOST": sim.url,
        "BATCHSYNC_CA_BUNDLE": ca_bundle,
        "BATCHSYNC_CLIENT_ID": sim.config.client_id,
        **extra,
    }


def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def _token_requests(sim: Simulator) -> int:
    return sim.stats.snapshot().token_requests.total()


def _syncs(sim: Simulator) -> int:
    return sim.stats.snapshot().sync_requests.total()


# --- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "graph", "authority"),
    [
        ("global", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
        ("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("usgov-dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
        ("china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    ],
)
def test_resolve_endpoints_per_cloud(cloud: str, graph: str, authority: str) -> None:
    """Each cloud has its Graph root, authority host and scope; overrides replace either."""
    endpoints = resolve_endpoints(cloud)
    assert (endpoints.graph_url, endpoints.authority_host) == (graph, authority)
    assert endpoints.scope == f"{graph}/.default"
    assert endpoints.authority("contoso.com") == f"{authority}/contoso.com"
    assert endpoints.graph_base == f"{graph}/v1.0"
    custom = resolve_endpoints(
        cloud, graph_url="https://127.0.0.1:1/", authority_host="https://127.0.0.1:2/"
    )
    assert (custom.graph_url, custom.authority_host) == (
        "https://127.0.0.1:1",
        "https://127.0.0.1:2",
    )
    assert custom.scope == "https://127.0.0.1:1/.default"
    assert resolve_endpoints(cloud, authority_host="https://a.example").graph_url == graph


def test_every_cloud_is_covered() -> None:
    """The table above covers every --cloud choice."""
    assert {c.value for c in CLOUDS} == {"global", "usgov", "usgov-dod", "china"}


@pytest.mark.parametrize("cloud", [c.value for c in CloudName])
def test_cloud_hosts_are_the_ones_contacted(
    cloud: str, sim: Simulator, loopback_only: list[str]
) -> None:
    """`--cloud X` sends Graph traffic (aiohttp) to X's Graph host and token traffic (run's
    check and MSAL) to X's authority host: seen as CONNECT targets at the proxy, which
    refuses them, so each command ends with a clear "cannot reach" and nothing leaves. (Both
    endpoints are checked at once, and the first tenant's token is asked for meanwhile.)"""
    expected = CLOUDS[CloudName(cloud)]
    graph_host = f"{urlsplit(expected.graph_url).hostname}:443"
    authority_host = f"{urlsplit(expected.authority_host).hostname}:443"
    inp = ["run", "-", "--format", "jsonl", "--cloud", cloud, "--auth", "app"]
    rows = json.dumps({"tenant": "contoso.onmicrosoft.com", "connector": tenant_id(1)}) + "\n"
    with recording_proxy() as proxy:
        env = {
            "HTTPS_PROXY": proxy.url,
            "BATCHSYNC_CLIENT_ID": sim.config.client_id,
            "BATCHSYNC_CLIENT_SECRET": "not-used-secret-value",
        }
        graph = CliRunner().invoke(main, inp, env=env, input=rows)
        assert graph.exit_code == 2, graph.output
        assert f"cannot reach {expected.graph_url}/" in graph.stderr
        assert graph_host in proxy.connects
        assert set(proxy.connects) <= {graph_host, authority_host}

        # Graph reachable (the simulator, through the tunnel): the authority is next.
        proxy.connects.clear()
        sim_env = dict(env, BATCHSYNC_GRAPH_URL=sim.url, BATCHSYNC_CA_BUNDLE=sim.ca_pem_path)
        authority = CliRunner().invoke(main, inp, env=sim_env, input=rows)
        assert authority.exit_code == 2, authority.output
        assert f"cannot reach {expected.authority_host}/" in authority.stderr
        assert set(proxy.connects) == {urlsplit(sim.url).netloc, authority_host}

        proxy.connects.clear()
        login = _invoke(["login", "--cloud", cloud, "--timeout", "5"], env)
        assert login.exit_code == 1, login.output
        assert f"could not reach {expected.authority_host}" in login.stderr
        assert set(proxy.connects) == {authority_host}
    assert "Traceback" not in graph.stderr + authority.stderr + login.stderr
    assert "not-used-secret-value" not in graph.output + authority.output + login.output


# --- proxies -------------------------------------------------------------------------------------


def test_proxy_carries_token_and_graph_traffic(
    sim: Simulator, proxy_ca: tuple[trustme.CA, str], tmp_path: Path
) -> None:
    """Through a TLS-inspecting proxy (trusted only via --ca-bundle), MSAL's sign-in and
    token requests and aiohttp's Graph requests all pass the proxy, request by request."""
    ca, ca_path = proxy_ca
    rows = make_rows(3, 2)
    tenants = sorted({t for t, _, _ in rows})
    inp = write_csv(tmp_path / "in.csv", rows)
    with recording_proxy("inspect", intercept_ca=ca, upstream_ca_path=sim.ca_pem_path) as proxy:
        env = _sim_env(sim, ca_bundle=ca_path, HTTPS_PROXY=proxy.url, NO_PROXY="")
        login = _invoke(["login"], env)
        assert login.exit_code == 0, login.stderr
        run = _invoke(["run", str(inp), "--auth", "delegated", *FAST], env)
        assert run.exit_code == 0, run.stderr
    assert set(proxy.connects) == {urlsplit(sim.url).netloc}
    posts = proxy.paths("POST")
    assert "/organizations/oauth2/v2.0/devicecode" in posts  # MSAL (requests): sign-in
    for tenant in tenants:
        assert posts.count(f"/{tenant}/oauth2/v2.0/token") == 1  # MSAL: one token each
        assert f"/{tenant}/v2.0/.well-known/openid-configuration" in proxy.paths("GET")
    for _, connector, _ in rows:  # aiohttp: every sync
        assert f"/v1.0/deviceManagement/exchangeConnectors/{connector}/sync" in posts


@pytest.mark.parametrize("no_proxy_var", ["NO_PROXY", "no_proxy"])
def test_no_proxy_bypasses_the_proxy(sim: Simulator, tmp_path: Path, no_proxy_var: str) -> None:
    """With HTTPS_PROXY, both clients tunnel through the proxy; with NO_PROXY=127.0.0.1 neither."""
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 2))
    base = _sim_env(sim, ca_bundle=sim.ca_pem_path, BATCHSYNC_REFRESH_TOKEN=sim.refresh_token)
    with recording_proxy() as proxy:
        tunnelled = _invoke(["run", str(inp), *FAST], dict(base, HTTPS_PROXY=proxy.url))
        assert tunnelled.exit_code == 0, tunnelled.stderr
        assert proxy.connects
        assert set(proxy.connects) == {urlsplit(sim.url).netloc}
        proxy.connects.clear()
        before = _token_requests(sim)
        direct = _invoke(
            ["run", str(inp), *FAST],
            dict(base, HTTPS_PROXY=proxy.url, **{no_proxy_var: "127.0.0.1"}),
        )
        assert direct.exit_code == 0, direct.stderr
        assert proxy.connects == []
        assert _token_requests(sim) > before  # tokens were fetched, directly


def test_https_proxy_is_used_with_verified_tls(
    sim: Simulator, proxy_ca: tuple[trustme.CA, str], tmp_path: Path
) -> None:
    """An https:// HTTPS_PROXY carries `login`, token and Graph traffic over TLS to the proxy,
    verified with --ca-bundle (aiohttp alone would ignore it and go direct); a proxy whose
    certificate is not trusted stops `run` with exit 2 before any row: never bypassed."""
    ca, ca_path = proxy_ca
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 2))
    bundle = tmp_path / "proxy-and-sim.pem"
    bundle.write_text(Path(ca_path).read_text() + Path(sim.ca_pem_path).read_text())
    syncs = _syncs(sim)
    with recording_proxy(tls_ca=ca) as proxy:
        assert proxy.url.startswith("https://")
        env = _sim_env(sim, ca_bundle=str(bundle), HTTPS_PROXY=proxy.url, NO_PROXY="")
        login = _invoke(["login", "--timeout", "1"], env)
        assert proxy.connects, login.stderr  # the device-code request went through the proxy
        refresh = dict(env, BATCHSYNC_REFRESH_TOKEN=sim.refresh_token)
        run = _invoke(["run", str(inp), *FAST], refresh)
        assert run.exit_code == 0, run.stderr
        assert set(proxy.connects) == {urlsplit(sim.url).netloc}
        assert _syncs(sim) == syncs + 4
        proxy.connects.clear()
        untrusted = _invoke(
            ["run", str(inp), *FAST], dict(refresh, BATCHSYNC_CA_BUNDLE=sim.ca_pem_path)
        )
    assert untrusted.exit_code == 2, untrusted.output
    assert "--ca-bundle" in untrusted.stderr
    assert untrusted.stdout == ""
    assert _syncs(sim) == syncs + 4  # nothing went around the proxy
    assert "Traceback" not in run.stderr + untrusted.stderr


@pytest.mark.parametrize("proxy_url", ["socks5://user:pw@127.0.0.1:1080", "ftp://127.0.0.1:21"])
def test_unusable_proxy_scheme_stops_before_sending(
    sim: Simulator, tmp_path: Path, proxy_url: str
) -> None:
    """A proxy batchsync cannot use (not http:// or https://) is exit 2 naming it, without its
    credentials, for `run` and `login`: never a silent direct connection."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    env = _sim_env(
        sim,
        ca_bundle=sim.ca_pem_path,
        HTTPS_PROXY=proxy_url,
        BATCHSYNC_REFRESH_TOKEN=sim.refresh_token,
    )
    tokens, syncs = _token_requests(sim), _syncs(sim)
    for args in (["run", str(inp), *FAST], ["login", "--timeout", "5"]):
        result = _invoke(args, env)
        assert result.exit_code == 2, result.output
        assert "HTTPS_PROXY" in result.stderr
        assert "http:// and https:// proxies" in result.stderr
        assert "pw" not in result.stderr
        assert "Traceback" not in result.stderr
    assert (_token_requests(sim), _syncs(sim)) == (tokens, syncs)


def test_untrusted_proxy_fails_clearly_before_any_row(
    sim: Simulator, proxy_ca: tuple[trustme.CA, str], tmp_path: Path
) -> None:
    """A TLS-inspecting proxy whose CA is not in --ca-bundle: `run` exits 2 with a TLS error
    naming --ca-bundle before any token or row is sent; `login` fails the same way."""
    ca, _ = proxy_ca
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 1))
    tokens, syncs = _token_requests(sim), _syncs(sim)
    with recording_proxy("inspect", intercept_ca=ca, upstream_ca_path=sim.ca_pem_path) as proxy:
        env = _sim_env(
            sim,
            ca_bundle=sim.ca_pem_path,
            HTTPS_PROXY=proxy.url,
            BATCHSYNC_REFRESH_TOKEN=sim.refresh_token,
        )
        run = _invoke(["run", str(inp), *FAST], env)
        login = _invoke(["login"], env)
    assert run.exit_code == 2, run.output
    assert "TLS certificate verification failed" in run.stderr
    assert "--ca-bundle" in run.stderr
    assert run.stdout == ""
    assert login.exit_code == 1, login.output
    assert "certificate verify failed" in login.stderr
    assert "--ca-bundle" in login.stderr
    assert proxy.requests == []  # no request was ever readable by the proxy
    assert (_token_requests(sim), _syncs(sim)) == (tokens, syncs)


def test_ca_bundle_adds_to_the_system_store(
    sim: Simulator, unrelated_ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ca-bundle adds trust and removes none: with the simulator's CA in the system store
    (SSL_CERT_FILE) and an unrelated --ca-bundle, token and Graph traffic still verify."""
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 1))
    env = _sim_env(sim, ca_bundle=unrelated_ca, BATCHSYNC_REFRESH_TOKEN=sim.refresh_token)
    refused = _invoke(["run", str(inp), *FAST], env)
    assert refused.exit_code == 2  # control: neither store trusts the simulator
    monkeypatch.setenv("SSL_CERT_FILE", sim.ca_pem_path)  # "the system store"
    before = _token_requests(sim)
    trusted = _invoke(["run", str(inp), *FAST], env)
    assert trusted.exit_code == 0, trusted.stderr
    assert _token_requests(sim) > before  # MSAL verified Entra with the system store too

    async def probe() -> int:
        async with open_session(ca_bundle=unrelated_ca, limit=1, user_agent="t") as session:
            async with session.get(sim.url + "/") as resp:
                return resp.status

    assert asyncio.run(probe()) == 404  # the system store alone verifies it


# --- bodies read from the network are bounded ------------------------------------------------


def _gzip_bomb(mib: int) -> bytes:
    """``mib`` MiB of zeros, gzipped (about 1 KiB per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(mib)) + packer.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _gzip_bomb(256)


async def test_graph_body_is_bounded_after_decompression(bomb: bytes, tmp_path: Path) -> None:
    """A Graph page that decompresses to 256 MiB is refused at 32 MiB (BodyTooLarge), in
    bounded memory; one whose Content-Length is over the limit is refused unread."""

    def reply(method: str, path: str, form: dict[str, str]) -> Reply:
        if path == "/big":
            return 200, {}, b"[" + b" " * (MAX_GRAPH_BODY + 1) + b"]"
        return 200, {"Content-Encoding": "gzip"}, bomb

    with tiny_server(reply, tmp_path) as server:
        async with open_session(ca_bundle=server.ca_path, limit=2, user_agent="t") as http:
            client = GraphClient(http, server.url)
            tracemalloc.start()
            try:
                answer = await client.send(
                    GraphRequest("GET", "/bomb"), token="t", timeout_s=30, read_body=True
                )
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            big = await client.send(
                GraphRequest("GET", "/big"), token="t", timeout_s=30, read_body=True
            )
    assert (answer.failure, answer.code, answer.body) == (ErrorKind.NETWORK, "BodyTooLarge", None)
    assert "larger than 32768 KiB" in answer.message
    assert peak < 3 * MAX_GRAPH_BODY  # never the 256 MiB
    assert big.code == "BodyTooLarge"


async def test_entra_body_is_bounded_after_decompression(bomb: bytes, tmp_path: Path) -> None:
    """MSAL's HTTP (LoopSession) reads at most 1 MiB of an answer, after decompression: a
    bomb is an AnswerTooLarge that fails the tenant with one clear line, in bounded memory."""

    def reply(method: str, path: str, form: dict[str, str]) -> Reply:
        return 200, {"Content-Encoding": "gzip"}, bomb

    with tiny_server(reply, tmp_path) as server:
        async with open_session(ca_bundle=server.ca_path, limit=2, user_agent="t") as http:
            session = LoopSession(http, asyncio.get_running_loop(), timeout_s=30.0)
            tracemalloc.start()
            try:
                with pytest.raises(AnswerTooLarge) as caught:
                    await asyncio.to_thread(session.get, server.url + "/t/v2.0/.well-known/x")
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert peak < 16 * MAX_ENTRA_BODY
    failure = classify_exception(caught.value, ResponseInfo(), endpoints_for(server.url))
    assert failure.verdict is TokenVerdict.TENANT
    assert "larger than 1024 KiB" in failure.text


# --- endpoints over plain http -----------------------------------------------------------------


@pytest.mark.parametrize("option", ["--graph-url", "--authority-host"])
@pytest.mark.parametrize("as_env", [False, True])
def test_plain_http_endpoint_is_refused_except_loopback(
    option: str, as_env: bool, tmp_path: Path
) -> None:
    """--graph-url / --authority-host (flag or env) over http:// to another host is exit 2
    before anything is sent (tokens would travel in cleartext); http:// to loopback is fine."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    env_name = "BATCHSYNC_GRAPH_URL" if option == "--graph-url" else "BATCHSYNC_AUTHORITY_HOST"
    for url, code in (
        ("http://graph.example", 2),
        ("http://127.0.0.1:9", 0),
        ("http://[::1]:9", 0),
    ):
        args = ["run", str(inp), "--dry-run"]
        env = {env_name: url} if as_env else {}
        result = _invoke(args if as_env else [*args, option, url], env)
        assert result.exit_code == code, result.output
        if code:
            assert "cleartext" in result.stderr
            assert option in result.stderr or env_name in result.stderr
            assert result.stdout == ""


async def test_library_run_refuses_plain_http_endpoints() -> None:
    """The Python API refuses http:// Endpoints to another host with ConfigError, before any
    connection (the CLI's check is not the only one)."""
    settings = Settings(
        auth=AuthSettings(mode=AuthMode.APP, client_id=tenant_id(1), client_secret="x" * 12),
        endpoints=Endpoints("http://graph.example", "https://login.example"),
    )
    with pytest.raises(ConfigError, match="cleartext"):
        async with batchsync.run([], settings):
            pass


async def test_graph_client_never_follows_a_redirect_with_the_token(tmp_path: Path) -> None:
    """A Graph answer that redirects (even to its own host) is reported as it is, and the
    token goes nowhere else: one request reaches the server."""

    def reply(method: str, path: str, form: dict[str, str]) -> Reply:
        return 307, {"Location": "/beta/deviceManagement/x"}, b""

    with tiny_server(reply, tmp_path) as server:
        async with open_session(ca_bundle=server.ca_path, limit=2, user_agent="t") as http:
            answer = await GraphClient(http, server.url + "/v1.0").send(
                GraphRequest("POST", "/deviceManagement/x/sync", b"{}"), token="t", timeout_s=10
            )
    assert answer.status == 307
    assert sum(server.requests.values()) == 1
