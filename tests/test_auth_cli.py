"""Sign-in through the CLI: login, status, logout, delegated runs, Entra errors, certificates.

Everything runs against the built-in simulator on 127.0.0.1 (real MSAL, real HTTPS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cli_support import ENV_NAMES
from _support import client_certificate_pem, make_rows, tenant_id, write_csv
from click.testing import CliRunner, Result

from batchsync._auth._entra_errors import RUN_STOP_CODES, TENANT_CODES
from batchsync._auth._token_cache import open_token_cache
from batchsync.cli import main
from batchsync.simulator import TECHNICIAN_UPN, Simulator, start_in_thread

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--tenant-rate", "1000/1", "--timeout", "10"]
DELEGATED = ["--auth", "delegated", *FAST]
TENANT_LEVEL = (50076, 50079, 53003, 65001, 50020, 50034, 500011)
CERT_PASSWORD = "pem-password-that-must-not-leak"


@pytest.fixture
def cache_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment whose token cache is a fresh file under tmp_path."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "cache" / "token_cache.json"
    monkeypatch.setenv("BATCHSYNC_TOKEN_CACHE", str(path))
    return path


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with start_in_thread() as s:
        yield s


def _env(sim: Simulator, **extra: str) -> dict[str, str]:
    """Point the CLI at the simulator, with no refresh token (delegated unless told)."""
    return {
        "BATCHSYNC_GRAPH_URL": sim.url,
        "BATCHSYNC_AUTHORITY_HOST": sim.url,
        "BATCHSYNC_CA_BUNDLE": sim.ca_pem_path,
        "BATCHSYNC_CLIENT_ID": sim.config.client_id,
        **extra,
    }


def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def _lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def _configure(sim: Simulator, **changes: Any) -> None:
    sim.set_config(dataclasses.replace(sim.config, **changes))


def _grants(sim: Simulator, grant: str) -> dict[str, int]:
    return {t: n for (t, g), n in sim.stats.snapshot().token_requests.items() if g == grant}


def _cached_secrets(path: Path) -> list[str]:
    """Every token value stored in a plaintext token cache."""
    state = json.loads(path.read_text())
    return [
        entry["secret"]
        for kind in ("AccessToken", "RefreshToken", "IdToken")
        for entry in state.get(kind, {}).values()
        if entry.get("secret")
    ]


def _login(sim: Simulator) -> Result:
    result = _invoke(["login"], _env(sim))
    assert result.exit_code == 0, result.stderr
    return result


def _assert_private(path: Path) -> None:
    """A plaintext cache is 0600; an encrypted one keeps no token in the file."""
    if open_token_cache(str(path), warn=False).encrypted:  # pragma: no cover - desktop OS
        assert "secret" not in path.read_text()
    elif os.name == "posix":  # Windows keeps it private by the profile's permissions
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# --- login, status, delegated runs, logout ----------------------------------------------------


def test_login_delegated_50_tenants_then_a_new_process_uses_the_cache(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """login (device code on stderr), then a delegated run over 50 tenants makes one
    refresh-token request per tenant's authority with every row ok; a new process reuses
    the cache without a device code; status names the account; logout forgets it."""
    login = _login(sim)
    assert f"{sim.url}/devicelogin" in login.stderr
    assert "enter the code" in login.stderr
    assert f"signed in as {TECHNICIAN_UPN}" in login.stderr
    assert login.stdout == ""
    assert _grants(sim, "device_code") == {"organizations": 1}
    _assert_private(cache_path)

    status = _invoke(["login", "--status"], _env(sim))
    assert status.exit_code == 0, status.stderr
    assert TECHNICIAN_UPN in status.stderr
    assert str(cache_path) in status.stderr

    rows = make_rows(50, 2)
    tenants = sorted({t for t, _, _ in rows})
    sim.reset_stats()
    first = _invoke(
        ["run", str(write_csv(tmp_path / "in.csv", rows)), "--auth", "delegated", *FAST],
        _env(sim),
    )
    assert first.exit_code == 0, first.stderr
    report = _lines(first.stdout)
    assert len(report) == 100
    assert {r["status"] for r in report} == {"ok"}
    token_requests = sim.stats.snapshot().token_requests
    assert dict(token_requests) == {(t, "refresh_token"): 1 for t in tenants}
    _assert_private(cache_path)

    # A new process: the 50 tenants' tokens come from the cache, 5 new tenants are
    # refreshed from the cached sign-in; nobody is asked for a device code again.
    more = [(tenant_id(100 + i), tenant_id(200 + i), "deltaSync") for i in range(5)]
    sim.reset_stats()
    proc = subprocess.run(
        [sys.executable, "-m", "batchsync", "run", "-", "--format", "jsonl", *DELEGATED],
        input="\n".join(
            json.dumps({"tenant": t, "connector": c, "syncType": s}) for t, c, s in rows + more
        ).encode(),
        env=dict(os.environ, **_env(sim)),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert {r["status"] for r in _lines(proc.stdout.decode())} == {"ok"}
    assert _grants(sim, "device_code") == {}
    assert _grants(sim, "refresh_token") == {t: 1 for t, _, _ in more}

    outputs = [login.stderr, status.stderr, status.stdout, first.stderr, first.stdout]
    outputs += [proc.stdout.decode(), proc.stderr.decode()]
    for secret in [*_cached_secrets(cache_path), sim.config.client_secret]:
        assert all(secret not in text for text in outputs)

    logout = _invoke(["logout"], _env(sim))
    assert logout.exit_code == 0, logout.stderr
    assert f"signed out: {TECHNICIAN_UPN}" in logout.stderr
    assert not cache_path.exists()
    after = _invoke(["login", "--status"], _env(sim))
    assert after.exit_code == 1
    assert "not signed in" in after.stderr
    again = _invoke(["run", str(tmp_path / "in.csv"), "--auth", "delegated"], _env(sim))
    assert again.exit_code == 2
    assert "batchsync login" in again.stderr


def test_login_timeout_is_clear(sim: Simulator, cache_path: Path) -> None:
    """A code nobody uses in time ends login with a message saying so; no cache is written."""
    _configure(sim, auto_approve_device_code=False)
    result = _invoke(["login", "--timeout", "1"], _env(sim))
    assert result.exit_code == 1
    assert "not completed in time" in result.stderr
    assert "within 1 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert not cache_path.exists()


def test_login_in_another_tenant_and_cloud_host(sim: Simulator, cache_path: Path) -> None:
    """`login --tenant HOME` signs in at that tenant's authority."""
    result = _invoke(["login", "--tenant", "partner.onmicrosoft.com"], _env(sim))
    assert result.exit_code == 0, result.stderr
    assert _grants(sim, "device_code") == {"partner.onmicrosoft.com": 1}


def test_concurrent_processes_share_one_cache(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """Three delegated runs at once on one cache: all succeed and the cache keeps every
    process's tokens and the sign-in (locked, merged writes; never a torn file)."""
    _login(sim)
    procs = []
    groups = [[tenant_id(300 + 10 * p + i) for i in range(5)] for p in range(3)]
    for p, tenants in enumerate(groups):
        rows = [(t, tenant_id(900 + i), "deltaSync") for i, t in enumerate(tenants)]
        path = write_csv(tmp_path / f"in{p}.csv", rows)
        out = tmp_path / f"r{p}.jsonl"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "batchsync", "run", str(path), "-o", str(out), *DELEGATED],
                env=dict(os.environ, **_env(sim)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    state = json.loads(cache_path.read_text())
    realms = {entry["realm"] for entry in state["AccessToken"].values()}
    assert {t for group in groups for t in group} <= realms
    assert [a["username"] for a in state["Account"].values()] == [TECHNICIAN_UPN]
    _assert_private(cache_path)
    assert not Path(str(cache_path) + ".lockfile").exists()


# --- Entra errors, per tenant and for the whole run ---------------------------------------------


def test_mapped_tenant_errors_fail_only_their_tenant(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """Each tenant-level Entra error fails its tenant's rows (kind auth, the documented
    advice, no retry); the other tenants' rows are ok."""
    _login(sim)
    failing = {tenant_id(i): code for i, code in enumerate(TENANT_LEVEL)}
    _configure(sim, tenant_errors=failing)
    rows = make_rows(len(TENANT_LEVEL) + 3, 2)
    result = _invoke(
        ["run", str(write_csv(tmp_path / "in.csv", rows)), "--auth", "delegated", *FAST],
        _env(sim),
    )
    assert result.exit_code == 1, result.stderr
    report = _lines(result.stdout)
    assert len(report) == len(rows)
    for row in report:
        code = failing.get(row["tenant"])
        if code is None:
            assert row["status"] == "ok", row
            continue
        assert row["status"] == "failed"
        error = row["error"]
        assert error["kind"] == "auth"
        assert error["code"] == f"AADSTS{code}"
        assert error["message"].startswith(f"tenant '{row['tenant']}': token failed (AADSTS{code})")
        assert TENANT_CODES[code] in error["message"]
        assert "Trace ID" not in error["message"]
    refreshes = _grants(sim, "refresh_token")
    assert all(refreshes[t] == 1 for t in failing)  # permanent: never retried


@pytest.mark.parametrize("code", [700082, 50173])
def test_expired_or_revoked_sign_in_stops_the_run(
    sim: Simulator, cache_path: Path, tmp_path: Path, code: int
) -> None:
    """An expired (700082) or revoked (50173) sign-in stops the run: every row fails with
    kind auth and says to run `batchsync login`; the other tenants are not even tried."""
    _login(sim)
    rows = make_rows(20, 2)
    if code == 700082:
        _configure(sim, revoked_refresh_tokens=True)
    else:
        _configure(sim, tenant_errors={t: code for t, _, _ in rows})
    result = _invoke(
        ["run", str(write_csv(tmp_path / "in.csv", rows)), "--auth", "delegated", *FAST],
        _env(sim),
    )
    assert result.exit_code == 1, result.stderr
    report = _lines(result.stdout)
    assert len(report) == 40
    for row in report:
        assert row["status"] == "failed"
        assert row["error"]["kind"] == "auth"
        assert row["error"]["code"] == f"AADSTS{code}"
        assert "batchsync login" in row["error"]["message"]
        assert RUN_STOP_CODES[code] in row["error"]["message"]
    assert "run stopped" in result.stderr
    assert "batchsync login" in result.stderr
    assert sum(_grants(sim, "refresh_token").values()) <= 16  # not one per tenant (20)
    assert sim.stats.snapshot().sync_requests.total() == 0


@pytest.mark.parametrize(
    ("mode", "hint"),
    [("delegated", "lacks an Intune role"), ("app", "lacks the consented application permission")],
)
def test_graph_403_says_what_is_missing(
    sim: Simulator, cache_path: Path, tmp_path: Path, mode: str, hint: str
) -> None:
    """A 403 from Graph names the account's missing Intune role (delegated) or the app's
    missing consented permission (app-only); other tenants are ok."""
    extra: dict[str, str] = {}
    if mode == "delegated":
        _login(sim)
    else:
        extra["BATCHSYNC_CLIENT_SECRET"] = sim.config.client_secret
    _configure(sim, forbidden_tenants=frozenset({tenant_id(1)}))
    rows = make_rows(3, 1)
    result = _invoke(
        ["run", str(write_csv(tmp_path / "in.csv", rows)), "--auth", mode, *FAST],
        _env(sim, **extra),
    )
    assert result.exit_code == 1, result.stderr
    by_tenant = {r["tenant"]: r for r in _lines(result.stdout)}
    forbidden = by_tenant.pop(tenant_id(1))
    assert forbidden["http_status"] == 403
    assert forbidden["error"]["kind"] == "http"
    assert hint in forbidden["error"]["message"]
    assert {r["status"] for r in by_tenant.values()} == {"ok"}


def test_docs_explain_every_mapped_error() -> None:
    """docs/auth.md names every Entra error code batchsync maps, and how to fix it."""
    text = (ROOT / "docs" / "auth.md").read_text(encoding="utf-8")
    for code in (*TENANT_LEVEL, 700082, 50173, 7000215, 7000222, 700027):
        assert f"AADSTS{code}" in text, code
    for needle in ("batchsync login", "GDAP", "Intune Administrator", "403", "--ca-bundle"):
        assert needle in text


# --- confidential clients: certificates and secrets ----------------------------------------------


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, bytes, Path]:
    """(registered PEM with an encrypted key, its certificate, an unregistered PEM)."""
    registered = tmp_path / "app.pem"
    cert_pem = client_certificate_pem(registered, password=CERT_PASSWORD)
    other = tmp_path / "other.pem"
    client_certificate_pem(other)
    return registered, cert_pem, other


@pytest.mark.usefixtures("cache_path")
def test_app_certificate_with_password_from_env(
    sim: Simulator, tmp_path: Path, certificates: tuple[Path, bytes, Path]
) -> None:
    """--auth app --certificate PEM (key password in BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD)
    signs client assertions the simulator verifies; an unregistered certificate stops the
    run (AADSTS700027); a wrong password is exit 2; the password never shows."""
    registered, cert_pem, other = certificates
    _configure(sim, certificate_pem=cert_pem)
    inp = write_csv(tmp_path / "in.csv", make_rows(4, 1))
    env = _env(sim, BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD)
    ok = _invoke(["run", str(inp), "--auth", "app", "--certificate", str(registered), *FAST], env)
    assert ok.exit_code == 0, ok.stderr
    assert {r["status"] for r in _lines(ok.stdout)} == {"ok"}
    assert set(_grants(sim, "client_credentials").values()) == {1}

    refused = _invoke(
        ["run", str(inp), "--auth", "app", "--certificate", str(other), *FAST], _env(sim)
    )
    assert refused.exit_code == 1
    assert {r["error"]["code"] for r in _lines(refused.stdout)} == {"AADSTS700027"}

    wrong = _invoke(
        ["run", str(inp), "--auth", "app", "--certificate", str(registered)],
        _env(sim, BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD="not-the-password"),
    )
    assert wrong.exit_code == 2
    assert "password" in wrong.stderr
    for result in (ok, refused, wrong):
        assert CERT_PASSWORD not in result.output
        assert "PRIVATE KEY" not in result.output


@pytest.mark.usefixtures("cache_path")
@pytest.mark.parametrize("credential", ["secret", "certificate"])
def test_refresh_token_with_a_confidential_app(
    sim: Simulator,
    tmp_path: Path,
    certificates: tuple[Path, bytes, Path],
    credential: str,
) -> None:
    """--auth refresh-token redeems BATCHSYNC_REFRESH_TOKEN per tenant with the app's secret
    or certificate; a wrong credential is refused, proving it is sent and checked."""
    registered, cert_pem, other = certificates
    _configure(sim, certificate_pem=cert_pem)
    inp = write_csv(tmp_path / "in.csv", make_rows(3, 2))
    base = _env(sim, BATCHSYNC_REFRESH_TOKEN=sim.refresh_token)
    if credential == "secret":
        good = dict(base, BATCHSYNC_CLIENT_SECRET=sim.config.client_secret)
        bad = dict(base, BATCHSYNC_CLIENT_SECRET="wrong-secret-value")
        code = "AADSTS7000215"
    else:
        good = dict(
            base,
            BATCHSYNC_CLIENT_CERTIFICATE_PATH=str(registered),
            BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD,
        )
        bad = dict(base, BATCHSYNC_CLIENT_CERTIFICATE_PATH=str(other))
        code = "AADSTS700027"
    ok = _invoke(["run", str(inp), "--auth", "refresh-token", *FAST], good)
    assert ok.exit_code == 0, ok.stderr
    assert {r["status"] for r in _lines(ok.stdout)} == {"ok"}
    assert set(_grants(sim, "refresh_token").values()) == {1}
    assert len(_grants(sim, "refresh_token")) == 3

    refused = _invoke(["run", str(inp), "--auth", "refresh-token", *FAST], bad)
    assert refused.exit_code == 1
    assert {r["error"]["code"] for r in _lines(refused.stdout)} == {code}
    for result in (ok, refused):
        for secret in (sim.refresh_token, sim.config.client_secret, CERT_PASSWORD):
            assert secret not in result.output


# --- the client secret on the command line -------------------------------------------------------

_FLAG_WARNING = "--client-secret on the command line can be read by other local users"


def _app_run(sim: Simulator, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    inp = write_csv(tmp_path / "in.csv", make_rows(2, 1))
    return ["run", str(inp), "--auth", "app", *FAST], _env(sim)


def test_client_secret_flag_works_with_one_warning(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """--client-secret VALUE still works but warns once on stderr (naming the env variable
    and `-`); the same secret from BATCHSYNC_CLIENT_SECRET gives no warning."""
    args, env = _app_run(sim, tmp_path)
    secret = sim.config.client_secret
    flag = _invoke([*args, "--client-secret", secret], env)
    assert flag.exit_code == 0, flag.stderr
    assert flag.stderr.count(_FLAG_WARNING) == 1
    assert "BATCHSYNC_CLIENT_SECRET" in flag.stderr
    assert "--client-secret -" in flag.stderr
    from_env = _invoke(args, dict(env, BATCHSYNC_CLIENT_SECRET=secret))
    assert from_env.exit_code == 0, from_env.stderr
    assert _FLAG_WARNING not in from_env.stderr
    assert secret not in flag.output + from_env.output


def test_client_secret_dash_reads_a_line_of_stdin(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """--client-secret - reads the secret from stdin when stdin is not the input (no
    warning, nothing echoed); when stdin is the input and there is no terminal, exit 2."""
    args, env = _app_run(sim, tmp_path)
    secret = sim.config.client_secret
    before = sum(_grants(sim, "client_credentials").values())
    piped = CliRunner().invoke(main, [*args, "--client-secret", "-"], env=env, input=secret + "\n")
    assert piped.exit_code == 0, piped.stderr
    assert sum(_grants(sim, "client_credentials").values()) > before
    assert _FLAG_WARNING not in piped.stderr
    assert secret not in piped.output
    rows = json.dumps({"tenant": tenant_id(1), "connector": tenant_id(2)}) + "\n"
    command = ["run", "-", "--format", "jsonl", "--auth", "app", "--client-secret", "-"]
    no_tty = subprocess.run(
        [sys.executable, "-m", "batchsync", *command],
        input=rows.encode(),
        env=dict(os.environ, **env),
        capture_output=True,
        start_new_session=True,  # no controlling terminal: nothing to type the secret on
        timeout=60,
    )
    assert no_tty.returncode == 2, no_tty.stderr
    assert b"stdin is the input" in no_tty.stderr
    assert b"BATCHSYNC_CLIENT_SECRET" in no_tty.stderr
    assert b"Traceback" not in no_tty.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a Unix device")
def test_client_secret_dash_reads_the_terminal_without_echo(
    sim: Simulator, cache_path: Path, tmp_path: Path
) -> None:
    """On a terminal, --client-secret - asks for the secret with echo off: the run gets it,
    the terminal never shows it."""
    import pty

    args, env = _app_run(sim, tmp_path)
    secret = sim.config.client_secret
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchsync", *args[: -len(FAST)], *FAST, "--client-secret", "-"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=dict(os.environ, **env),
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    while b"not shown" not in shown:  # the prompt (each wait bounded: never a hung test)
        assert select.select([master], [], [], 30)[0], shown
        shown += os.read(master, 1024)
    os.write(master, secret.encode() + b"\n")
    out, _ = proc.communicate(timeout=60)
    with contextlib.suppress(OSError):
        while chunk := os.read(master, 4096):
            shown += chunk
    os.close(master)
    assert proc.returncode == 0, shown.decode(errors="replace")
    assert len(_lines(out.decode())) == 2
    assert secret.encode() not in shown + out
