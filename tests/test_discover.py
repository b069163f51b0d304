"""``batchsync discover``: tenants in, one JSONL row per Exchange connector out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import tenant_id
from aiohttp import web
from click.testing import CliRunner

from batchsync._auth import AccessToken, AuthMode, AuthSettings
from batchsync._clouds import resolve_endpoints
from batchsync._discover import DiscoverConfig, discover
from batchsync._engine import EngineSettings
from batchsync._errors import ErrorKind, InputError
from batchsync._graph import next_page_request
from batchsync._input import read_tenants
from batchsync._pacing import RetryPolicy, TenantRate
from batchsync._rows import Rejected
from batchsync._summary import DiscoverStats
from batchsync.cli import main
from batchsync.simulator import (
    PARTNER_TENANT_ID,
    Simulator,
    SimulatorConfig,
    connector_ids,
    start_in_thread,
)

GOOD = [tenant_id(i) for i in range(6)]
FORBIDDEN = "forbidden.example.com"
NO_CONSENT = "noconsent.example.com"
UNKNOWN = "unknown.example.com"
EMPTY = "empty.example.com"
COUNTS = {GOOD[0]: 5, GOOD[1]: 3, GOOD[2]: 1, GOOD[3]: 2, GOOD[4]: 4, GOOD[5]: 2, EMPTY: 0}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        connectors_per_tenant=COUNTS,
        page_size=2,  # 5 connectors take 3 pages
        forbidden_tenants=frozenset({FORBIDDEN}),
        tenant_errors={NO_CONSENT: 65001},
        unknown_tenants=frozenset({UNKNOWN}),
        gdap_customers=(GOOD[0], GOOD[2], EMPTY),
    )
    with start_in_thread(config) as s:
        yield s


def _invoke(sim: Simulator, args: list[str], *, input: str | None = None) -> Any:
    return CliRunner().invoke(main, ["discover", *FAST, *args], env=sim.env(), input=input)


def _expected(sim: Simulator, tenants: list[str]) -> set[tuple[str, str]]:
    return {(t, c) for t in tenants for c in connector_ids(t, sim.config)}


# --------------------------------------------------------------------------- reading tenants


def _tenants(data: bytes) -> tuple[list[str], list[Rejected]]:
    """read_tenants on bytes: (tenants in order, first occurrence only; rejected rows)."""
    found: list[str] = []
    rejected: list[Rejected] = []
    for item in read_tenants(io.BytesIO(data)):
        if isinstance(item, Rejected):
            rejected.append(item)
        elif item not in found:
            found.append(item)
    return found, rejected


@pytest.mark.parametrize(
    ("text", "tenants"),
    [
        (
            "contoso.com\n\n# a comment\nFabrikam.COM\ncontoso.com\n",
            ["contoso.com", "fabrikam.com"],
        ),
        ("\ufefftenant\r\ncontoso.com\r\n", ["contoso.com"]),
        (
            "TenantId;name\ncontoso.com;Contoso\n;\nfabrikam.com;Fab\n",
            ["contoso.com", "fabrikam.com"],
        ),
        ('name,tenant_id\n"Contoso, Inc",contoso.com\n', ["contoso.com"]),
        ("name\tTenant ID\nx\t{" + GOOD[0].upper() + "}\n", [GOOD[0]]),
        (
            '{"tenantId": "contoso.com"}\n\n{"Tenant": "fabrikam.com", "x": 1}\n',
            ["contoso.com", "fabrikam.com"],
        ),
        ("", []),
    ],
)
def test_read_tenants_formats(text: str, tenants: list[str]) -> None:
    """Plain lists, CSV with any delimiter and alias, and JSONL give canonical distinct tenants."""
    found, rejected = _tenants(text.encode())
    assert found == tenants
    assert rejected == []


def test_read_tenants_rejects_lines_that_are_not_tenants() -> None:
    """A line that is not a GUID or domain is rejected with its row number, the rest kept."""
    found, rejected = _tenants(b"contoso.com\nnot a tenant\nhttps://evil/x\nfabrikam.com\n")
    assert found == ["contoso.com", "fabrikam.com"]
    assert [r.kind for r in rejected] == [ErrorKind.INPUT, ErrorKind.INPUT]
    assert [r.line for r in rejected] == [2, 3]
    assert "input row 2" in rejected[0].message
    assert "input row 3" in rejected[1].message


def test_read_tenants_jsonl_without_tenant_key() -> None:
    """A JSONL line without a tenant key, or not JSON, is rejected, never guessed."""
    found, rejected = _tenants(b'{"tenant": "a.com"}\n{"connector": "x"}\n{oops\n')
    assert found == ["a.com"]
    assert [r.code for r in rejected] == ["missing_value", "bad_json"]


def test_read_tenants_header_without_tenant_column() -> None:
    """A CSV header with no tenant column is an input error (exit 2, as in run), not 0 tenants."""
    with pytest.raises(InputError, match="tenant column"):
        _tenants(b"customer,domain\nContoso,contoso.com\n")


def test_read_tenants_streams() -> None:
    """Tenants come as they are read: the first is there before the input ends."""
    source = io.BytesIO(b"contoso.com\n" + b"fabrikam.com\n" * 100_000)
    items = read_tenants(source)
    assert next(items) == "contoso.com"
    assert source.tell() < 1_000_000


# --------------------------------------------------------------------------- paging links


BASE = "https://graph.microsoft.com/v1.0"


@pytest.mark.parametrize(
    ("link", "path"),
    [
        (
            f"{BASE}/deviceManagement/exchangeConnectors?$skiptoken=abc",
            "/deviceManagement/exchangeConnectors?$skiptoken=abc",
        ),
        ("HTTPS://Graph.Microsoft.com:443/v1.0/x?$skiptoken=a%2Bb", "/x?$skiptoken=a%2Bb"),
        (
            f"{BASE}/./deviceManagement//x/y/../z?$skiptoken=%2e%2e",
            "/deviceManagement/x/z?$skiptoken=%2e%2e",
        ),
        (f"{BASE}/%2E/x", "/x"),
    ],
)
def test_next_link_on_graph_is_followed(link: str, path: str) -> None:
    """A nextLink under the Graph base (same scheme, host, port) becomes a relative GET."""
    request = next_page_request(link, BASE)
    assert (request.method, request.path, request.body) == ("GET", path, None)


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.com/v1.0/deviceManagement/exchangeConnectors?$skiptoken=a",
        "http://graph.microsoft.com/v1.0/x",
        "https://graph.microsoft.com:8443/v1.0/x",
        "https://user@graph.microsoft.com/v1.0/x",
        "https://graph.microsoft.com.evil.example.com/v1.0/x",
        "https://graph.microsoft.com/beta/x",
        "/v1.0/x",
        "https://graph.microsoft.com:bad/v1.0/x",
        "https://graph.microsoft.com/v1.0/../beta/deviceManagement/x",
        "https://graph.microsoft.com/v1.0/%2e%2e/beta/x",
        "https://graph.microsoft.com/v1.0/%2E%2e/beta/x",
        "https://graph.microsoft.com/v1.0/.%2E/beta/x",
        "https://graph.microsoft.com/v1.0/x/../../beta/x",
        "https://graph.microsoft.com//v1.0/../../beta/x",
        "https://graph.microsoft.com/v1.0/..",
        "https://graph.microsoft.com/v1.0/%2e%2e%2fbeta/x",
        "https://graph.microsoft.com/v1.0/..%5cbeta/x",
        "https://graph.microsoft.com/v1.0\\..\\beta/x",
    ],
)
def test_next_link_elsewhere_is_refused(link: str) -> None:
    """A nextLink to another scheme, host, port, user or path prefix is never followed,
    also when the path only leaves the prefix once normalised (``..``, ``%2e%2e``, ``//``)."""
    with pytest.raises(ValueError, match="not followed"):
        next_page_request(link, BASE)


# --------------------------------------------------------------------------- the CLI


def test_discover_lists_every_connector_across_pages(sim: Simulator, tmp_path: Path) -> None:
    """Every connector of every tenant, across pages, with status and lastSyncDateTime; exit 0."""
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join([*GOOD, EMPTY]) + "\n")
    result = _invoke(sim, [str(tenants), "--sync-type", "fullsync"])
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result.stdout)
    assert {(r["tenant"], r["connector"]) for r in rows} == _expected(sim, GOOD)
    assert len(rows) == sum(COUNTS.values())
    for row in rows:
        assert set(row) == {"tenant", "connector", "syncType", "status", "lastSyncDateTime"}
        assert row["syncType"] == "fullSync"
        assert row["status"] in {"connected", "disconnected"}
        assert row["lastSyncDateTime"].endswith("Z")
    assert "1 tenant has no Exchange connector" in result.stderr
    assert "7 tenants: 7 listed, 0 failed" in result.stderr


def test_discover_failed_tenants_on_stderr_and_errors_file(sim: Simulator, tmp_path: Path) -> None:
    """Failing tenants get a stderr and an --errors line each; the others are listed; exit 1."""
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(
        "tenantId,name\n"
        + "\n".join(f"{t},x" for t in [GOOD[0], FORBIDDEN, NO_CONSENT, UNKNOWN, GOOD[1]])
        + "\nnot-a-tenant,y\n"
    )
    errors = tmp_path / "errors.jsonl"
    out = tmp_path / "out.jsonl"
    result = _invoke(sim, [str(tenants), "-o", str(out), "--errors", str(errors)])
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    rows = json_lines(out.read_text())
    assert {(r["tenant"], r["connector"]) for r in rows} == _expected(sim, GOOD[:2])
    failures = {e["tenant"]: e for e in json_lines(errors.read_text())}
    assert set(failures) == {FORBIDDEN, NO_CONSENT, UNKNOWN, "not-a-tenant"}
    for entry in failures.values():
        assert set(entry) == {"tenant", "kind", "code", "message"}
    assert (failures[FORBIDDEN]["kind"], failures[FORBIDDEN]["code"]) == ("http", "Forbidden")
    assert "Intune" in failures[FORBIDDEN]["message"]  # the forbidden hint
    assert (failures[NO_CONSENT]["kind"], failures[NO_CONSENT]["code"]) == ("auth", "AADSTS65001")
    assert (failures[UNKNOWN]["kind"], failures[UNKNOWN]["code"]) == ("auth", "AADSTS90002")
    assert failures["not-a-tenant"]["kind"] == "input"
    stderr_lines = result.stderr.splitlines()
    for tenant in (FORBIDDEN, NO_CONSENT, UNKNOWN):
        assert any(line.startswith(f"batchsync: tenant {tenant}: ") for line in stderr_lines)
    assert "5 tenants: 2 listed, 3 failed" in result.stderr


def test_connected_only_keeps_connected(sim: Simulator) -> None:
    """--connected-only keeps exactly the connectors whose status is connected."""
    everything = json_lines(_invoke(sim, ["-"], input="\n".join(GOOD)).stdout)
    statuses = Counter(r["status"] for r in everything)
    assert statuses["connected"] > 0  # both kinds present, so the filter has work to do
    assert len(statuses) > 1
    result = _invoke(sim, ["-", "--connected-only"], input="\n".join(GOOD))
    assert result.exit_code == 0, result.stderr
    kept = json_lines(result.stdout)
    assert sorted(map(orjson.dumps, kept)) == sorted(
        orjson.dumps(r) for r in everything if r["status"] == "connected"
    )
    assert f"({len(everything) - len(kept)} not connected left out)" in result.stderr


def test_gdap_lists_the_partners_customers(sim: Simulator) -> None:
    """--gdap lists the signed-in partner's GDAP customers, then their connectors."""
    result = _invoke(sim, ["--gdap"])
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result.stdout)
    assert {(r["tenant"], r["connector"]) for r in rows} == _expected(sim, [GOOD[0], GOOD[2]])
    assert "3 tenants: 3 listed" in result.stderr
    tokens = sim.stats.snapshot().token_requests
    assert tokens[("organizations", "refresh_token")] >= 1  # the partner's own token


def test_gdap_app_mode_needs_partner_tenant(sim: Simulator) -> None:
    """App-only auth cannot use 'organizations': --gdap then requires --partner-tenant (exit 2)."""
    env = {k: v for k, v in sim.env().items() if k != "BATCHSYNC_REFRESH_TOKEN"}
    env["BATCHSYNC_CLIENT_SECRET"] = sim.config.client_secret
    result = CliRunner().invoke(main, ["discover", "--gdap", *FAST], env=env)
    assert result.exit_code == 2, result.output
    assert "--partner-tenant" in result.stderr
    result = CliRunner().invoke(
        main, ["discover", "--gdap", "--partner-tenant", PARTNER_TENANT_ID, *FAST], env=env
    )
    assert result.exit_code == 0, result.stderr
    assert {r["tenant"] for r in json_lines(result.stdout)} == {GOOD[0], GOOD[2]}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "TENANTS"),
        (["tenants.txt", "--gdap"], "not both"),
        (["tenants.txt", "--partner-tenant", "x.com"], "--gdap"),
        (["header.csv"], "tenant column"),
        (["missing.txt"], "cannot read"),
        (["tenants.txt", "-o", "existing.jsonl"], "--overwrite"),
        (["tenants.txt", "--auth", "app"], "client secret"),
        (["tenants.txt", "--tenant-rate", "x"], "N/SECONDS"),
    ],
)
def test_configuration_errors_exit_2(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str
) -> None:
    """Usage and configuration errors exit 2 with a message naming the problem; nothing is sent."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tenants.txt").write_text(GOOD[0] + "\n")
    (tmp_path / "header.csv").write_text("customer,domain\nContoso,contoso.com\n")
    (tmp_path / "existing.jsonl").write_text("{}\n")
    before = sim.stats.snapshot().graph_requests.total()
    result = _invoke(sim, args)
    assert result.exit_code == 2, result.output
    assert needle.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sim.stats.snapshot().graph_requests.total() == before


def test_unreachable_graph_exit_2(sim: Simulator) -> None:
    """The same preflight as run: an endpoint nobody listens on is exit 2 before any token."""
    env = dict(sim.env(), BATCHSYNC_GRAPH_URL="https://127.0.0.1:9")
    result = CliRunner().invoke(main, ["discover", "-", *FAST], env=env, input=GOOD[0])
    assert result.exit_code == 2, result.output
    assert "cannot reach" in result.stderr


def test_run_stopping_auth_error_said_once(tmp_path: Path) -> None:
    """A revoked sign-in fails every tenant (all in --errors) but stderr says it once; exit 1."""
    with start_in_thread(SimulatorConfig(revoked_refresh_tokens=True)) as s:
        errors = tmp_path / "errors.jsonl"
        result = CliRunner().invoke(
            main,
            ["discover", "-", "--errors", str(errors), *FAST],
            env=s.env(),
            input="\n".join(GOOD),
        )
    assert result.exit_code == 1, result.output
    entries = json_lines(errors.read_text())
    assert sorted(e["tenant"] for e in entries) == sorted(GOOD)
    assert {(e["kind"], e["code"]) for e in entries} == {("auth", "AADSTS700082")}
    errors_said = [line for line in result.stderr.splitlines() if "AADSTS700082" in line]
    assert len(errors_said) == 2  # the error, once, and the summary's "stopped early"
    assert errors_said[0].startswith("batchsync: error: ")
    assert "batchsync login" in errors_said[0]
    assert "stopped early" in errors_said[1]


def test_concurrency_and_token_bounds(tmp_path: Path) -> None:
    """At most --concurrency Graph requests and --token-concurrency token requests at once."""
    config = SimulatorConfig(graph_latency_s=0.02, token_latency_s=0.02, page_size=1)
    tenants = [tenant_id(100 + i) for i in range(24)]
    with start_in_thread(config) as s:
        result = CliRunner().invoke(
            main,
            ["discover", "-", "--concurrency", "3", "--token-concurrency", "2", *FAST],
            env=s.env(),
            input="\n".join(tenants),
        )
        stats = s.stats.snapshot()
        expected = _expected(s, tenants)
    assert result.exit_code == 0, result.stderr
    assert {(r["tenant"], r["connector"]) for r in json_lines(result.stdout)} == expected
    assert 1 <= stats.max_concurrent_graph <= 3
    assert 1 <= stats.max_concurrent_tokens <= 2
    assert {t for t, _ in stats.token_requests} == set(tenants)  # one token per tenant


def test_no_secret_in_output(sim: Simulator, tmp_path: Path) -> None:
    """Neither the refresh token nor an access token appears in stdout, stderr or --errors."""
    errors = tmp_path / "errors.jsonl"
    result = _invoke(
        sim, ["-", "-vv", "--errors", str(errors)], input="\n".join([GOOD[0], FORBIDDEN])
    )
    assert result.exit_code == 1
    for text in (result.stdout, result.stderr, errors.read_text()):
        assert sim.refresh_token not in text
        assert "sim." not in text  # the simulator's access tokens start with "sim."
        assert "Bearer" not in text


def test_discover_pipes_into_run(sim: Simulator, tmp_path: Path) -> None:
    """`batchsync discover T | batchsync run - --format jsonl` syncs every connector found."""
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join(GOOD[:3]) + "\n")
    env = dict(os.environ, **sim.env())
    before = sim.stats.snapshot().syncs
    discover_proc = subprocess.Popen(
        [sys.executable, "-m", "batchsync", "discover", str(tenants), "-q", *FAST],
        stdout=subprocess.PIPE,
        env=env,
    )
    run_proc = subprocess.run(
        [sys.executable, "-m", "batchsync", "run", "-", "--format", "jsonl", *FAST],
        stdin=discover_proc.stdout,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert discover_proc.stdout is not None
    discover_proc.stdout.close()
    assert discover_proc.wait(timeout=60) == 0
    assert run_proc.returncode == 0, run_proc.stderr
    report = json_lines(run_proc.stdout)
    expected = _expected(sim, GOOD[:3])
    assert {(r["tenant"], r["connector"]) for r in report} == expected
    assert {r["status"] for r in report} == {"ok"}
    assert sorted(r["line"] for r in report) == list(range(1, len(expected) + 1))
    synced = sim.stats.snapshot().syncs - before
    assert set(synced) == {c for _, c in expected}


# ------------------------------------------------------------- pacing, against a scripted Graph


class _Tokens:
    """Hands out a token per tenant; a refused one is replaced by the next generation."""

    mode = None  # tokens from elsewhere: 403 messages use the generic hint

    def __init__(self) -> None:
        self.generation: Counter[str] = Counter()
        self.invalidated: list[str] = []

    async def get(self, tenant: str) -> AccessToken:
        return AccessToken(f"tok:{tenant}:{self.generation[tenant]}", 1e12, tenant)

    def invalidate(self, token: AccessToken) -> None:
        self.invalidated.append(token.tenant)
        self.generation[token.tenant] += 1

    def forget(self, tenant: str) -> None:
        pass


Script = Callable[[web.Request, str, int], web.Response]
Start = Callable[[Script], Awaitable[tuple[str, Counter[str]]]]


@pytest.fixture
async def scripted() -> AsyncIterator[Start]:
    """Plain-HTTP Graph stand-ins on 127.0.0.1 whose answers a test scripts per request."""
    runners: list[web.AppRunner] = []

    async def start(script: Script) -> tuple[str, Counter[str]]:
        seen: Counter[str] = Counter()

        async def handler(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            tenant = auth.removeprefix("Bearer ").split(":")[1] if ":" in auth else ""
            seen[tenant] += 1
            return script(request, auth, seen[tenant])

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}", seen

    yield start
    for runner in runners:
        await runner.cleanup()


def _page(ids: list[str], next_link: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "value": [{"id": i, "status": "connected", "lastSyncDateTime": None} for i in ids]
    }
    if next_link:
        body["@odata.nextLink"] = next_link
    return web.json_response(body)


C1, C2 = tenant_id(900), tenant_id(901)  # any GUIDs serve as connector ids


async def _discover_against(
    url: str, tenants: list[str], tmp_path: Path, tokens: _Tokens
) -> tuple[DiscoverStats, list[dict[str, Any]], list[dict[str, Any]]]:
    (tmp_path / "t.txt").write_text("\n".join(tenants) + "\n")
    config = DiscoverConfig(
        endpoints=resolve_endpoints(graph_url=url, authority_host=url),
        auth=AuthSettings(mode=AuthMode.APP, client_id="x", client_secret="y"),
        tenants_path=str(tmp_path / "t.txt"),
        output_path=str(tmp_path / "out.jsonl"),
        errors_path=str(tmp_path / "errors.jsonl"),
        engine=EngineSettings(
            concurrency=4,
            tenant_rate=TenantRate(1000, 1.0),
            retry=RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_cap_s=0.05),
            timeout_s=5.0,
        ),
        preflight=False,
    )
    stats = await discover(config, tokens=tokens)
    out = json_lines((tmp_path / "out.jsonl").read_bytes())
    errors = json_lines((tmp_path / "errors.jsonl").read_bytes())
    return stats, out, errors


async def test_throttled_listing_waits_and_goes_on(scripted: Start, tmp_path: Path) -> None:
    """A 429 with Retry-After pauses that tenant and retries; pages after it are still read."""

    def script(request: web.Request, auth: str, n: int) -> web.Response:
        if n == 1:
            return web.json_response(
                {"error": {"code": "TooManyRequests"}}, status=429, headers={"Retry-After": "0.05"}
            )
        if "skiptoken" not in request.query_string:
            return _page([C1], f"{base}/v1.0/deviceManagement/exchangeConnectors?$skiptoken=2")
        return _page([C2])

    base, seen = await scripted(script)
    stats, out, errors = await _discover_against(base, ["a.example.com"], tmp_path, _Tokens())
    assert errors == []
    assert [r["connector"] for r in out] == [C1, C2]
    assert (stats.throttled_answers, stats.requests, seen["a.example.com"]) == (1, 3, 3)


async def test_refused_token_is_refreshed_once(scripted: Start, tmp_path: Path) -> None:
    """A 401 invalidates the token and retries once with a fresh one; a second 401 fails auth."""

    def script(request: web.Request, auth: str, n: int) -> web.Response:
        if auth.endswith(":0") or auth.startswith("Bearer tok:b.example.com"):
            return web.json_response({"error": {"code": "InvalidAuthenticationToken"}}, status=401)
        return _page([C1])

    base, _ = await scripted(script)
    tokens = _Tokens()
    stats, out, errors = await _discover_against(
        base, ["a.example.com", "b.example.com"], tmp_path, tokens
    )
    assert [r["tenant"] for r in out] == ["a.example.com"]
    assert sorted(tokens.invalidated) == ["a.example.com", "b.example.com"]
    assert [(e["tenant"], e["kind"]) for e in errors] == [("b.example.com", "auth")]
    assert stats.failed == 1


async def test_foreign_next_link_is_never_followed(scripted: Start, tmp_path: Path) -> None:
    """A nextLink to another host or port fails the tenant; the token never reaches it."""
    foreign, foreign_seen = await scripted(lambda request, auth, n: _page([C2]))

    def script(request: web.Request, auth: str, n: int) -> web.Response:
        return _page([C1], f"{foreign}/v1.0/deviceManagement/exchangeConnectors?$skiptoken=x")

    base, _ = await scripted(script)
    _, out, errors = await _discover_against(base, ["a.example.com"], tmp_path, _Tokens())
    assert out == []  # no partial list of a tenant that failed
    assert [(e["kind"], e["code"]) for e in errors] == [("http", "ForeignNextLink")]
    assert foreign_seen.total() == 0


async def test_transient_errors_bounded_by_max_attempts(scripted: Start, tmp_path: Path) -> None:
    """503 without Retry-After is retried up to --max-attempts; a long Retry-After fails at once."""

    def script(request: web.Request, auth: str, n: int) -> web.Response:
        if "slow.example.com" in auth:
            return web.json_response(
                {"error": {"code": "TooManyRequests"}}, status=429, headers={"Retry-After": "3600"}
            )
        return web.json_response({"error": {"code": "ServiceUnavailable"}}, status=503)

    base, seen = await scripted(script)
    stats, out, errors = await _discover_against(
        base, ["down.example.com", "slow.example.com"], tmp_path, _Tokens()
    )
    assert out == []
    kinds = {e["tenant"]: (e["kind"], e["code"]) for e in errors}
    assert kinds == {
        "down.example.com": ("http", "ServiceUnavailable"),
        "slow.example.com": ("throttled", "TooManyRequests"),
    }
    assert seen["down.example.com"] == 3
    assert seen["slow.example.com"] == 1
    assert stats.failed == 2


async def test_tenant_without_connector_is_not_an_error(scripted: Start, tmp_path: Path) -> None:
    """An empty connector list is counted as listed and empty, with no error line."""
    base, _ = await scripted(lambda request, auth, n: _page([]))
    stats, out, errors = await _discover_against(base, ["a.example.com"], tmp_path, _Tokens())
    assert (out, errors) == ([], [])
    assert (stats.listed, stats.empty, stats.failed) == (1, 1, 0)


def test_help_has_examples() -> None:
    """`discover --help` explains TENANTS and --gdap and ends with copyable examples."""
    result = CliRunner().invoke(main, ["discover", "--help"])
    assert result.exit_code == 0
    for needle in ("TENANTS", "--gdap", "--partner-tenant", "--errors", "Examples:"):
        assert needle in result.output


def test_errors_and_output_links_to_files_are_refused(sim: Simulator, tmp_path: Path) -> None:
    """discover's -o and --errors never write through a symbolic link to a file: exit 2 in
    one line, and the file the link names is left as it was."""
    tenants = tmp_path / "tenants.txt"
    tenants.write_text(GOOD[0] + "\n")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    for args in (["--errors", str(link), "--overwrite"], ["-o", str(link), "--overwrite"]):
        result = _invoke(sim, [str(tenants), *args])
        assert result.exit_code == 2, result.output
        assert "symbolic link to a file" in result.stderr
    assert victim.read_text() == "keep"
