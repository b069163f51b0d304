"""Every Intune sync action end to end: real HTTPS to the simulator, real MSAL, the real CLI.

discover --action lists the objects, run --action syncs them (dry runs with --check read
them), --resume and --shard work per action, Autopilot's 409 and cooldown end rows skipped.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cli_support import FAST, json_lines, scrub_env
from _support import tenant_id
from click.testing import CliRunner, Result

from batchsync.actions import ACTIONS, DEFAULT_ACTION
from batchsync.cli import main
from batchsync.simulator import (
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    object_ids,
    start_in_thread,
)

TENANTS = [tenant_id(i) for i in range(4)]
# action -> the simulator's kind of object (None: the action is on the tenant itself)
KINDS: dict[str, str | None] = {
    "exchange-connector-sync": "connector",
    "device-sync": "device",
    "vpp-license-sync": "vpp",
    "dep-sync": "dep",
    "autopilot-sync": None,
    "managed-play-sync": None,
}
OTHERS = [name for name in ACTIONS if name != DEFAULT_ACTION]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scrub_env(monkeypatch, tmp_path)


def _config() -> SimulatorConfig:
    """Two objects of each kind in every tenant; no throttling, no faults."""
    two = dict.fromkeys(TENANTS, 2)
    return SimulatorConfig(
        throttle=ThrottleConfig(write_limit=0),
        connectors_per_tenant=two,
        devices_per_tenant=two,
        vpp_tokens_per_tenant=two,
        dep_settings_per_tenant=two,
        managed_play_bind_status=dict.fromkeys(TENANTS, "boundAndValidated"),
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with start_in_thread(_config()) as s:
        yield s


def _invoke(sim: Simulator, args: list[str], *, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, [*args, *FAST], env=sim.env(), input=input)


def _rows(action: str, sim: Simulator) -> list[dict[str, Any]]:
    """The input rows of ``action`` for every tenant, from the simulator's own objects."""
    kind = KINDS[action]
    if kind is None:
        return [{"tenant": t} for t in TENANTS]
    field = "connector" if action == DEFAULT_ACTION else "id"
    return [{"tenant": t, field: i} for t in TENANTS for i in object_ids(kind, t, sim.config)]  # type: ignore[arg-type]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.mark.parametrize("action", OTHERS)
def test_run_syncs_every_object_of_every_action(
    action: str, sim: Simulator, tmp_path: Path
) -> None:
    """Each action's rows end ok, one accepted sync per object, lines carry action and id."""
    rows = _rows(action, sim)
    report = tmp_path / "r.jsonl"
    result = _invoke(
        sim,
        ["run", str(_write(tmp_path / "in.jsonl", rows)), "--action", action, "-o", str(report)],
    )
    assert result.exit_code == 0, result.stderr
    lines = json_lines(report.read_bytes())
    assert [line["status"] for line in lines] == ["ok"] * len(rows)
    assert {line["action"] for line in lines} == {action}
    assert "connector" not in lines[0]
    assert "syncType" not in lines[0]
    expected = {(r["tenant"], r.get("id")) for r in rows}
    assert {(line["tenant"], line["id"]) for line in lines} == expected
    syncs = sim.stats.snapshot().action_syncs
    assert {t: n for (a, t), n in syncs.items() if a == action} == Counter(
        r["tenant"] for r in rows
    )


@pytest.mark.parametrize("action", OTHERS)
def test_discover_pipes_into_run(action: str, sim: Simulator, tmp_path: Path) -> None:
    """discover --action lists each tenant's objects as rows that run --action takes."""
    tenants = tmp_path / "tenants.txt"
    tenants.write_text("\n".join(TENANTS) + "\n")
    listed = _invoke(sim, ["discover", str(tenants), "--action", action])
    assert listed.exit_code == 0, listed.stderr
    found = json_lines(listed.stdout)
    assert {(r["tenant"], r.get("id")) for r in found} == {
        (r["tenant"], r.get("id")) for r in _rows(action, sim)
    }
    ran = _invoke(sim, ["run", "-", "--format", "jsonl", "--action", action], input=listed.stdout)
    assert ran.exit_code == 0, ran.stderr
    assert {line["status"] for line in json_lines(ran.stdout)} == {"ok"}


def test_discover_filters_devices(sim: Simulator) -> None:
    """--filter reaches Graph's $filter: only the Windows devices are listed."""
    tenants = "\n".join(TENANTS) + "\n"
    every = json_lines(
        _invoke(sim, ["discover", "-", "--action", "device-sync"], input=tenants).stdout
    )
    result = _invoke(
        sim,
        ["discover", "-", "--action", "device-sync", "--filter", "operatingSystem eq 'Windows'"],
        input=tenants,
    )
    assert result.exit_code == 0, result.stderr
    windows = json_lines(result.stdout)
    assert {r["operatingSystem"] for r in windows} <= {"Windows"}
    assert [r for r in every if r["operatingSystem"] == "Windows"] == windows


def test_filter_on_an_action_without_one_is_a_usage_error(sim: Simulator) -> None:
    """--filter on a listing Graph filters not is exit 2 before any request."""
    result = _invoke(
        sim,
        ["discover", "-", "--action", "vpp-license-sync", "--filter", "x eq 1"],
        input="a.com\n",
    )
    assert result.exit_code == 2
    assert "--filter" in result.stderr
    assert sim.stats.snapshot().graph_requests.total() == 0


@pytest.mark.parametrize("action", ["dep-sync", "autopilot-sync", "managed-play-sync"])
def test_beta_only_action_on_v1_is_a_usage_error(
    action: str, sim: Simulator, tmp_path: Path
) -> None:
    """A beta-only action with --api-version v1.0 is exit 2 naming beta; no request is sent."""
    inp = _write(tmp_path / "in.jsonl", _rows(action, sim))
    result = _invoke(sim, ["run", str(inp), "--action", action, "--api-version", "v1.0"])
    assert result.exit_code == 2
    assert "beta" in result.stderr
    assert sim.stats.snapshot().token_requests.total() == 0


@pytest.mark.parametrize("action", OTHERS)
def test_check_reads_each_object_and_syncs_nothing(
    action: str, sim: Simulator, tmp_path: Path
) -> None:
    """--dry-run --check GETs each row's object: planned when found, a 404 explained when not."""
    rows = _rows(action, sim)
    kind = KINDS[action]
    if kind is not None:
        rows.append({"tenant": TENANTS[0], "id": "00000000-0000-4000-8000-000000000001"})
    inp = _write(tmp_path / "in.jsonl", rows)
    result = _invoke(sim, ["run", str(inp), "--action", action, "--dry-run", "--check"])
    lines = json_lines(result.stdout)
    planned = [line for line in lines if line["status"] == "planned"]
    assert len(planned) == len(_rows(action, sim))
    assert sim.stats.snapshot().action_syncs.total() == 0
    if kind is not None:
        (missing,) = [line for line in lines if line["status"] == "failed"]
        assert missing["http_status"] == 404
        assert ACTIONS[action].object_label in missing["error"]["message"]
        assert result.exit_code == 1


def test_resume_never_syncs_an_ok_row_twice(sim: Simulator, tmp_path: Path) -> None:
    """A device-sync run that failed for one tenant resumes: only that tenant's rows are sent."""
    rows = _rows("device-sync", sim)
    inp = _write(tmp_path / "in.jsonl", rows)
    report = tmp_path / "r.jsonl"
    sim.set_config(dataclasses.replace(sim.config, forbidden_tenants=frozenset({TENANTS[1]})))
    first = _invoke(sim, ["run", str(inp), "--action", "device-sync", "-o", str(report)])
    assert first.exit_code == 1
    failed = [line for line in json_lines(report.read_bytes()) if line["status"] == "failed"]
    assert {line["tenant"] for line in failed} == {TENANTS[1]}
    assert "PrivilegedOperations" in failed[0]["error"]["message"]  # the action's permission
    sim.set_config(dataclasses.replace(sim.config, forbidden_tenants=frozenset()))
    sim.reset_stats()
    again = _invoke(
        sim, ["run", str(inp), "--action", "device-sync", "-o", str(report), "--resume"]
    )
    assert again.exit_code == 0, again.stderr
    syncs = sim.stats.snapshot().action_syncs
    assert {t for (_, t) in syncs} == {TENANTS[1]}


def test_resume_keys_by_action(sim: Simulator, tmp_path: Path) -> None:
    """A report of one action does not make --resume skip the same tenants for another."""
    report = tmp_path / "r.jsonl"
    tenants = _write(tmp_path / "tenants.jsonl", [{"tenant": t} for t in TENANTS])
    first = _invoke(sim, ["run", str(tenants), "--action", "autopilot-sync", "-o", str(report)])
    assert first.exit_code == 0, first.stderr
    again = _invoke(
        sim, ["run", str(tenants), "--action", "managed-play-sync", "-o", str(report), "--resume"]
    )
    assert again.exit_code == 0, again.stderr
    assert (
        sum(
            n for (a, _), n in sim.stats.snapshot().action_syncs.items() if a == "managed-play-sync"
        )
        == 4
    )


def test_shards_split_an_action_by_tenant(sim: Simulator, tmp_path: Path) -> None:
    """--shard splits device-sync rows by tenant; the shards together are the whole run."""
    rows = _rows("device-sync", sim)
    inp = _write(tmp_path / "in.jsonl", rows)
    seen: list[tuple[str, str]] = []
    for k in (1, 2):
        result = _invoke(sim, ["run", str(inp), "--action", "device-sync", "--shard", f"{k}/2"])
        assert result.exit_code == 0, result.stderr
        seen += [(line["tenant"], line["id"]) for line in json_lines(result.stdout)]
    assert sorted(seen) == sorted((r["tenant"], r["id"]) for r in rows)


def test_autopilot_running_and_cooldown_end_rows_skipped(tmp_path: Path) -> None:
    """Autopilot's 409 (a sync running) and 429 (its 10-minute cooldown) end the row skipped
    at once: no retry, no tenant pause, exit 0, the report saying what happened."""
    cfg = dataclasses.replace(
        _config(),
        autopilot_sync_s=30.0,
        throttle=ThrottleConfig(write_limit=0, autopilot_cooldown_s=600),
    )
    with start_in_thread(cfg) as sim:
        inp = _write(tmp_path / "in.jsonl", [{"tenant": t} for t in TENANTS])
        assert _invoke(sim, ["run", str(inp), "--action", "autopilot-sync"]).exit_code == 0
        sim.reset_stats()
        running = _invoke(sim, ["run", str(inp), "--action", "autopilot-sync"])
        sim.set_config(dataclasses.replace(sim.config, autopilot_sync_s=0.0))
        cooling = _invoke(sim, ["run", str(inp), "--action", "autopilot-sync"])
        requests = sim.stats.snapshot().action_requests.total()
    for result, status, kind in ((running, 409, "http"), (cooling, 429, "throttled")):
        assert result.exit_code == 0, result.stderr
        lines = json_lines(result.stdout)
        assert {line["status"] for line in lines} == {"skipped"}
        assert {line["http_status"] for line in lines} == {status}
        assert {line["attempts"] for line in lines} == {1}
        assert {line["error"]["kind"] for line in lines} == {kind}
    assert "already running" in json_lines(running.stdout)[0]["error"]["message"]
    assert "10 minutes" in json_lines(cooling.stdout)[0]["error"]["message"]
    assert requests == 2 * len(TENANTS)  # one request a row: nothing retried


def test_actions_lists_every_action(sim: Simulator) -> None:
    """batchsync actions names each action with its request, permission, rate and version."""
    result = CliRunner().invoke(main, ["actions", "--format", "jsonl"])
    assert result.exit_code == 0
    listed = {d["name"]: d for d in json_lines(result.stdout)}
    assert list(listed) == list(ACTIONS)
    assert listed["device-sync"]["tenant_rate"] == "200/20"
    assert listed["autopilot-sync"]["beta_only"] is True
    assert listed["exchange-connector-sync"]["request"].startswith(
        "POST /deviceManagement/exchangeConnectors/"
    )
    table = CliRunner().invoke(main, ["actions"]).stdout
    assert "exchange-connector-sync (default)" in table
    for name in ACTIONS:
        assert name in table


@pytest.mark.parametrize("action", ["device-sync", "autopilot-sync"])
def test_demo_runs_another_action(action: str) -> None:
    """batchsync demo --action lists the sample's objects and syncs them all: exit 0."""
    result = CliRunner().invoke(main, ["demo", "--action", action])
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    assert lines
    assert {line["status"] for line in lines} == {"ok"}
    assert {line["action"] for line in lines} == {action}
    assert f"discover --action {action} listed" in result.stderr
