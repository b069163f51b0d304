"""device-sync at scale: discover then run 50 tenants x 2,000 devices against the simulator.

The large case of the Intune sync family (issue 13): 100,000 rows of one action, each tenant
paced at Intune's device write limit (the action's default ``--tenant-rate 200/20``) while
the built-in simulator, in its own process, enforces that same limit per tenant (its
``--write-limit 100`` gives devices twice that, as Intune does). Measured, as whole
processes: ``discover --action device-sync`` (every page of every tenant), then
``run --action device-sync`` at the defaults: wall time, rows/s, peak RSS and CPU, and the
pace each tenant actually got (its busiest 20-s window, read from the report) against the
limit. All traffic stays on 127.0.0.1.

    python benchmarks/devices.py            # 50 x 2,000: about 4 minutes
    python benchmarks/devices.py --quick    # 5 x 200
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    base_parser,
    child_env,
    format_table,
    run_process,
    save_results,
    scratch_dir,
    tenant_ids,
)

_LISTENING = re.compile(rb"listening on (https://127\.0\.0\.1:\d+)")
_EXPORT = re.compile(rb"^export (\w+)=(.*)$", re.M)
WINDOW_S = 20.0


def start_simulator(devices: int, work: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``batchsync simulator`` on a free port, in its own process; its environment lines."""
    log = open(work / "simulator.err", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchsync",
            "simulator",
            "--port",
            "0",
            "--devices-per-tenant",
            str(devices),
            "--write-limit",
            "100",
            "--window",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=child_env(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (work / "simulator.err").read_bytes()
        if _LISTENING.search(text) and len(_EXPORT.findall(text)) >= 5:
            env = {k.decode(): v.decode().strip("'") for k, v in _EXPORT.findall(text)}
            return proc, env
        if proc.poll() is not None:
            raise SystemExit(f"the simulator exited: {text.decode(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the simulator did not start within 60 s")


def busiest_window(times: list[float], window_s: float) -> int:
    """The most report lines finished in any window of ``window_s`` seconds."""
    times.sort()
    return max(
        (bisect.bisect_right(times, t + window_s) - i for i, t in enumerate(times)), default=0
    )


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=None)
    parser.add_argument("--devices", type=int, default=None, help="per tenant")
    args = parser.parse_args()
    tenants_n = args.tenants or (5 if args.quick else 50)
    devices = args.devices or (200 if args.quick else 2000)
    with scratch_dir(args.keep) as work:
        sim, sim_env = start_simulator(devices, work)
        try:
            env = child_env(sim_env)
            tenants = tenant_ids(tenants_n, "devices")
            (work / "tenants.txt").write_text("\n".join(tenants) + "\n")
            listing = work / "devices.jsonl"
            discover = run_process(
                [
                    sys.executable,
                    "-m",
                    "batchsync",
                    "discover",
                    str(work / "tenants.txt"),
                    "--action",
                    "device-sync",
                    "-o",
                    str(listing),
                    "-q",
                ],
                env=env,
            )
            if discover.returncode != 0:
                raise SystemExit(f"discover failed: {discover.stderr.decode(errors='replace')}")
            rows = sum(1 for _ in listing.open("rb"))
            report, summary = work / "report.jsonl", work / "summary.json"
            run = run_process(
                [
                    sys.executable,
                    "-m",
                    "batchsync",
                    "run",
                    str(listing),
                    "--action",
                    "device-sync",
                    "-o",
                    str(report),
                    "--summary-json",
                    str(summary),
                    "-q",
                    "--no-progress",
                ],
                env=env,
                timeout_s=3600,
            )
        finally:
            sim.terminate()
            sim.wait(timeout=30)
        stats: dict[str, Any] = orjson.loads(summary.read_bytes())
        finished: dict[str, list[float]] = defaultdict(list)
        statuses: dict[str, int] = defaultdict(int)
        throttled = 0
        for line in report.open("rb"):
            doc = orjson.loads(line)
            statuses[doc["status"]] += 1
            throttled += doc["throttled"]
            when = dt.datetime.fromisoformat(doc["finished_at"].replace("Z", "+00:00"))
            finished[doc["tenant"]].append(when.timestamp())
    busiest = [busiest_window(times, WINDOW_S) for times in finished.values()]
    limit = 200
    result = {
        "tenants": tenants_n,
        "devices_per_tenant": devices,
        "rows": rows,
        "discover": {
            "wall_s": round(discover.wall_s, 2),
            "max_rss_mb": round(discover.max_rss_mb, 1),
            "cpu_s": round(discover.cpu_s, 2),
            "rows_per_s": round(rows / discover.wall_s, 1),
        },
        "run": {
            "exit": run.returncode,
            "wall_s": round(run.wall_s, 2),
            "work_s": stats.get("elapsed_s"),
            "rows_per_s_wall": round(rows / run.wall_s, 1),
            "max_rss_mb": round(run.max_rss_mb, 1),
            "cpu_s": round(run.cpu_s, 2),
            "statuses": dict(statuses),
            "throttled_answers": throttled,
            "requests": stats.get("requests"),
        },
        "pace": {
            "limit_per_20s": limit,
            "busiest_20s_window_max": max(busiest, default=0),
            "busiest_20s_window_min": min(busiest, default=0),
            "ideal_s": round(devices / (limit / WINDOW_S), 1),
            "share_of_ideal": round(devices / (limit / WINDOW_S) / max(run.wall_s, 1e-9), 3),
        },
        "cores": os.cpu_count(),
    }
    print(
        format_table(
            ["step", "rows", "wall s", "rows/s", "peak RSS MB", "CPU s"],
            [
                [
                    "discover",
                    rows,
                    result["discover"]["wall_s"],
                    result["discover"]["rows_per_s"],
                    result["discover"]["max_rss_mb"],
                    result["discover"]["cpu_s"],
                ],
                [
                    "run",
                    rows,
                    result["run"]["wall_s"],
                    result["run"]["rows_per_s_wall"],
                    result["run"]["max_rss_mb"],
                    result["run"]["cpu_s"],
                ],
            ],
        )
    )
    pace = result["pace"]
    print(
        f"pace: busiest 20-s window per tenant {pace['busiest_20s_window_min']}-"
        f"{pace['busiest_20s_window_max']} rows (limit {limit}); ideal {pace['ideal_s']} s, "
        f"{pace['share_of_ideal']:.0%} of it; {throttled} throttled answers; "
        f"statuses {dict(statuses)}"
    )
    print(f"results: {save_results('devices', result, quick=args.quick)}")


if __name__ == "__main__":
    main()
