"""The CLI: exit statuses, stdout carries only the report, errors are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import orjson
import pytest
from _cli_support import ENV_NAMES
from _support import make_rows, tenant_id, write_csv
from click.testing import CliRunner

from batchsync import __version__
from batchsync.cli import main
from batchsync.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    start_in_thread,
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHSYNC_TOKEN_CACHE", str(tmp_path / "cache.json"))


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        throttle=ThrottleConfig(write_limit=3, window_s=0.5, retry_after="float"),
        faults=FaultConfig(seed=1, http_503=0.05, drop=0.03, retry_after_s=0.2),
        tenant_errors={tenant_id(7): 65001},
    )
    with start_in_thread(config) as s:
        yield s


def _runner() -> CliRunner:
    return CliRunner()


def _lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


FAST = ["--tenant-rate", "1000/1", "--timeout", "5"]


@pytest.mark.usefixtures("clean_env")
def test_run_refresh_token_exit_0_report_on_stdout(sim: Simulator, tmp_path: Path) -> None:
    """A clean run exits 0; stdout holds only report lines; the summary is on stderr."""
    inp = write_csv(tmp_path / "in.csv", make_rows(5, 4))
    result = _runner().invoke(main, ["run", str(inp), *FAST], env=sim.env())
    assert result.exit_code == 0, result.stderr
    lines = _lines(result.stdout)
    assert len(lines) == 20
    assert {r["status"] for r in lines} == {"ok"}
    assert "20 ok" in result.stderr


@pytest.mark.usefixtures("clean_env")
def test_app_secret_mode_and_failed_tenant_exit_1(sim: Simulator, tmp_path: Path) -> None:
    """App-only auth works; a tenant without consent fails its rows and the run exits 1."""
    rows = make_rows(8, 1)
    inp = write_csv(tmp_path / "in.csv", rows)
    env = {
        "BATCHSYNC_GRAPH_URL": sim.url,
        "BATCHSYNC_AUTHORITY_HOST": sim.url,
        "BATCHSYNC_CA_BUNDLE": sim.ca_pem_path,
        "AZURE_CLIENT_ID": sim.config.client_id,
        "AZURE_CLIENT_SECRET": sim.config.client_secret,
    }
    report = tmp_path / "r.jsonl"
    result = _runner().invoke(main, ["run", str(inp), "-o", str(report), *FAST], env=env)
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    out = _lines(report.read_text())
    failed = [r for r in out if r["status"] == "failed"]
    assert [r["tenant"] for r in failed] == [tenant_id(7)]
    assert failed[0]["error"] == {
        "kind": "auth",
        "code": "AADSTS65001",
        "message": failed[0]["error"]["message"],  # type: ignore[index]
    }
    assert tenant_id(7) in result.stderr


@pytest.mark.usefixtures("clean_env")
def test_existing_report_exit_2_names_options(sim: Simulator, tmp_path: Path) -> None:
    """An existing report is never overwritten silently: exit 2 naming --resume and --overwrite."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    report = tmp_path / "r.jsonl"
    report.write_text('{"line": 1}\n')
    result = _runner().invoke(main, ["run", str(inp), "-o", str(report)], env=sim.env())
    assert result.exit_code == 2
    assert "--resume" in result.stderr
    assert "--overwrite" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("clean_env")
def test_resume_skips_ok_rows(sim: Simulator, tmp_path: Path) -> None:
    """--resume appends only rows not already ok, and never syncs an ok row again."""
    rows = make_rows(3, 3)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.jsonl"
    first = _runner().invoke(main, ["run", str(inp), "-o", str(report), *FAST], env=sim.env())
    assert first.exit_code == 0, first.stderr
    before = sum(sim.stats.snapshot().syncs.values())
    again = _runner().invoke(
        main, ["run", str(inp), "-o", str(report), "--resume", *FAST], env=sim.env()
    )
    assert again.exit_code == 0, again.stderr
    assert sum(sim.stats.snapshot().syncs.values()) == before
    assert len(_lines(report.read_text())) == 9


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tenant-rate", "fast"], "N/SECONDS"),
        (["--concurrency", "0"], "concurrency"),
        (["--shard", "3/2"], "shard"),
        (["--cloud", "mars"], "cloud"),
        (["--resume"], "--report"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    """A bad option exits 2 with a message naming the problem and no traceback."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    result = _runner().invoke(main, ["run", str(inp), "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert needle.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("clean_env")
def test_missing_input_column_exit_2(tmp_path: Path) -> None:
    """An input header without a connector column exits 2 before anything is sent."""
    inp = tmp_path / "in.csv"
    inp.write_text("tenant,foo\ncontoso.com,1\n")
    result = _runner().invoke(main, ["run", str(inp), "--dry-run"])
    assert result.exit_code == 2
    assert "connector" in result.stderr
    assert result.stdout == ""


@pytest.mark.usefixtures("clean_env")
def test_missing_client_id_exit_2(tmp_path: Path) -> None:
    """Without a client id the run refuses to start (exit 2) and says which option to set."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    result = _runner().invoke(
        main, ["run", str(inp), "--auth", "app", "--client-secret", "x"], env={}
    )
    assert result.exit_code == 2
    assert "client" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("clean_env")
def test_unreachable_graph_exit_2(tmp_path: Path, sim: Simulator) -> None:
    """An endpoint nobody listens on is a one-line configuration error (exit 2)."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    env = dict(sim.env(), BATCHSYNC_GRAPH_URL="https://127.0.0.1:9")
    result = _runner().invoke(main, ["run", str(inp)], env=env)
    assert result.exit_code == 2, result.output
    assert "cannot reach" in result.stderr
    assert result.stdout == ""


@pytest.mark.usefixtures("clean_env")
def test_untrusted_tls_exit_2(tmp_path: Path, sim: Simulator) -> None:
    """Without the simulator's CA the TLS check fails before any row (exit 2), never unverified."""
    inp = write_csv(tmp_path / "in.csv", make_rows(1, 1))
    env = {k: v for k, v in sim.env().items() if k != "BATCHSYNC_CA_BUNDLE"}
    before = sum(sim.stats.snapshot().sync_requests.values())
    result = _runner().invoke(main, ["run", str(inp)], env=env)
    assert result.exit_code == 2, result.output
    assert "--ca-bundle" in result.stderr
    assert sum(sim.stats.snapshot().sync_requests.values()) == before


@pytest.mark.usefixtures("clean_env")
def test_stdin_jsonl(sim: Simulator) -> None:
    """`run -` reads JSONL from stdin with --format."""
    rows = make_rows(2, 2)
    text = "\n".join(orjson.dumps({"tenantId": t, "connectorId": c}).decode() for t, c, _ in rows)
    result = _runner().invoke(
        main, ["run", "-", "--format", "jsonl", *FAST], input=text, env=sim.env()
    )
    assert result.exit_code == 0, result.stderr
    assert {r["syncType"] for r in _lines(result.stdout)} == {"deltaSync"}


@pytest.mark.usefixtures("clean_env")
def test_stdin_without_format_exit_2() -> None:
    """stdin cannot tell its format: exit 2 asking for --format."""
    result = _runner().invoke(main, ["run", "-", "--dry-run"], input="tenant,connector\n")
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_help_has_examples() -> None:
    """Every command's --help ends with a copy-paste example."""
    for command in ["run", "demo", "simulator", "login", "logout"]:
        result = _runner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, command


def test_version() -> None:
    """--version prints the package version."""
    result = _runner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.usefixtures("clean_env")
def test_no_secret_in_any_output(sim: Simulator, tmp_path: Path) -> None:
    """No secret, refresh or access token of the setup appears in stdout, stderr or report."""
    rows = make_rows(4, 2)
    inp = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.jsonl"
    secrets = [sim.refresh_token, sim.config.client_secret]
    env = dict(sim.env(), BATCHSYNC_CLIENT_SECRET=sim.config.client_secret)
    result = _runner().invoke(main, ["run", str(inp), "-o", str(report), "-vv", *FAST], env=env)
    assert result.exit_code == 0, result.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "batchsync", "run", str(inp), "-v", *FAST],
        env=dict(os.environ, **env),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    texts = [
        result.stdout,
        result.stderr,
        report.read_text(),
        proc.stdout.decode(),
        proc.stderr.decode(),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "sim." not in text  # the simulator's access tokens start with "sim."
        assert "Bearer" not in text


def test_closed_stdout_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """When the report's reader goes away (a closed pipe), batchsync stops with one clear line."""
    inp = write_csv(tmp_path / "in.csv", make_rows(50, 40))
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchsync", "run", str(inp), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "closed the pipe" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("clean_env")
def test_one_deeply_nested_row_does_not_stop_the_run(sim: Simulator, tmp_path: Path) -> None:
    """With --keep-extra, one JSONL row nesting 990 deep is that row's `invalid` line: the 19
    others are synced, and --resume of the report runs again without a crash."""
    rows = [
        {"tenant": t, "connector": c, "syncType": s, "note": "x"} for t, c, s in make_rows(4, 5)
    ]
    lines = [orjson.dumps(r).decode() for r in rows]
    lines[7] = lines[7][:-1] + ', "deep": ' + "[" * 990 + "]" * 990 + "}"
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.jsonl"
    env = {**sim.env(), "BATCHSYNC_CA_BUNDLE": sim.ca_pem_path}
    args = ["run", str(inp), "--keep-extra", "-o", str(report), *FAST]
    first = _runner().invoke(main, args, env=env)
    assert first.exit_code == 1, first.output
    got = _lines(report.read_text())
    assert len(got) == 20
    invalid = [(d["line"], d["error"]) for d in got if d["status"] == "invalid"]
    assert invalid == [(8, {"kind": "input", "code": "too_deep", "message": ANY})]
    again = _runner().invoke(main, [*args, "--resume"], env=env)
    assert again.exit_code == 1, again.output
    assert "internal error" not in first.stderr + again.stderr
