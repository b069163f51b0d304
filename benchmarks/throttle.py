"""Throttle: tenants under a per-tenant limit, told, unknown or shifting, and busy answers.

``python benchmarks/throttle.py [--quick] [--runs 3] [--tenants 5] [--rows-per-tenant 500]``

``fastserver.py`` (its own process per server setup, 80 ms token / 120 ms Graph latency)
allows each tenant ``--limit`` requests per ``--window`` seconds (default 50 per 2 s, a
sliding window) and answers 429 with ``Retry-After`` (whole seconds, ``--retry-after``)
beyond it. The ideal time is ``rows_per_tenant / (limit / window)`` (tenants run in
parallel); throughput is ideal / achieved. batchsync runs with ``--concurrency 32``:

* ``right``: ``--tenant-rate 50/2``, the limit told;
* ``unknown``: ``--tenant-rate 1000/2``, a ceiling 20x the real limit, so the limit is
  unknown and must be learned from 429s;
* ``default``: no ``--tenant-rate``, the default ``100/20`` (5 requests/s), a ceiling below
  this server's 25/s, which batchsync may only lower: the time is bound by the ceiling, not
  by learning (one run by default, ``--default-runs``: it is ~100 s and deterministic);
* ``shifts``: as ``unknown``, but each tenant's limit halves 40% into the ideal run and
  comes back at 80% (another app spending the tenant's shared budget, then stopping); the
  ideal follows the schedule;
* ``calm`` and ``spurious 503s``: ``--spurious-tenants`` x ``--spurious-rows`` (8 x 60) at
  the default ``--tenant-rate``, no limit at the server; ``spurious 503s`` answers 4% of
  requests 503 with ``Retry-After: 1`` (``--busy-share``), ``calm`` none: their ratio is
  what busy answers cost (target: at most 1.5x the calm run + 3 s);
* ``fault mix``: the issue's run, 10 tenants x 20 rows at the defaults against 5% 500,
  5% 503 + ``Retry-After: 1`` and 3% dropped connections, 5-20 ms Graph latency (target:
  every row within 50 s).

Reported per case: time, % of ideal throughput, 429s (the server's count) as a share of
requests, and requests that arrived inside a pause the server had announced (target 0 in
every case; the server excuses 200 ms after the announcement, as the simulator does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import uuid
from typing import Any

from _common import (
    FastServer,
    Sample,
    base_parser,
    format_table,
    run_batchsync,
    save_results,
    scratch_dir,
    summarize_samples,
    tenant_ids,
    write_csv,
)

TARGET_THROUGHPUT = 0.90  # share of ideal, at least
TARGET_429_SHARE = 0.05  # share of requests answered 429, below
TARGET_SHIFT_THROUGHPUT = 0.85  # limit shifts: share of the schedule's ideal, at least
SPURIOUS_RATIO, SPURIOUS_EXTRA_S = 1.5, 3.0  # spurious 503s: at most 1.5x calm + 3 s
MIX_MAX_S = 50.0  # the fault mix: every row done within


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    name: str
    server: str  # key into the servers
    tenants: int
    per_tenant: int
    rate: str | None  # --tenant-rate, None: the default
    ideal_s: float | None  # None: no limit at the server
    runs: int


def _shift_ideal(rows: int, limit_rps: float, halves_at: float, back_at: float) -> float:
    """Seconds a client told the schedule needs for ``rows``: the full rate, half of it
    from ``halves_at`` to ``back_at``, then the full rate again."""
    if rows <= limit_rps * halves_at:
        return rows / limit_rps
    by_back = limit_rps * halves_at + limit_rps / 2 * (back_at - halves_at)
    if rows <= by_back:
        return halves_at + (rows - limit_rps * halves_at) / (limit_rps / 2)
    return back_at + (rows - by_back) / limit_rps


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows-per-tenant", type=int, default=None, help="default 500 (quick 100)")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--retry-after", choices=["seconds", "float", "none"], default="seconds")
    parser.add_argument("--unknown-rate", default="1000/2", help="the ceiling of the unknown case")
    parser.add_argument("--default-runs", type=int, default=1)
    parser.add_argument("--spurious-tenants", type=int, default=8)
    parser.add_argument("--spurious-rows", type=int, default=None, help="default 60 (quick 20)")
    parser.add_argument("--busy-share", type=float, default=0.04)
    parser.add_argument("--token-latency", type=float, default=0.08)
    parser.add_argument("--graph-latency", type=float, default=0.12)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", default="", help="comma-separated case names (default all)")
    args = parser.parse_args()
    quick = args.quick
    per_tenant = args.rows_per_tenant or (100 if quick else 500)
    spurious_rows = args.spurious_rows or (20 if quick else 60)
    runs = args.runs or (1 if quick else 3)
    limit_rps = args.limit / args.window
    ideal = per_tenant / limit_rps
    halves_at, back_at = 0.4 * ideal, 0.8 * ideal
    schedule = f"{halves_at:g}:{args.limit // 2},{back_at:g}:{args.limit}"
    common = {"token_latency_s": args.token_latency, "graph_latency_s": args.graph_latency}
    limited = {**common, "limit": args.limit, "window_s": args.window}
    servers = {
        "limit": FastServer(**limited, retry_after=args.retry_after),
        "shift": FastServer(**limited, retry_after=args.retry_after, limit_schedule=schedule),
        "calm": FastServer(**common),
        "busy": FastServer(**common, busy_share=args.busy_share, seed=args.seed),
        "mix": FastServer(
            token_latency_s=args.token_latency,
            graph_latency_s=0.005,
            graph_latency_max_s=0.02,
            busy_share=0.05,
            error_share=0.05,
            drop_share=0.03,
            seed=args.seed,
        ),
    }
    shift_ideal = _shift_ideal(per_tenant, limit_rps, halves_at, back_at)
    n, sr = args.tenants, spurious_rows
    cases = [
        Case("right", "limit", n, per_tenant, f"{args.limit}/{args.window:g}", ideal, runs),
        Case("unknown", "limit", n, per_tenant, args.unknown_rate, ideal, runs),
        Case("default", "limit", n, per_tenant, None, ideal, min(runs, args.default_runs)),
        Case("shifts", "shift", n, per_tenant, args.unknown_rate, shift_ideal, runs),
        Case("calm", "calm", args.spurious_tenants, sr, None, None, runs),
        Case("spurious 503s", "busy", args.spurious_tenants, sr, None, None, runs),
        Case("fault mix", "mix", 10, 20, None, None, runs),
    ]
    if args.cases:
        wanted = {name.strip() for name in args.cases.split(",")}
        cases = [c for c in cases if c.name in wanted]
    samples: dict[str, list[Sample]] = {c.name: [] for c in cases}
    with scratch_dir(args.keep) as work, contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        for rep in range(runs):
            for case in cases:
                if rep >= case.runs:
                    continue
                samples[case.name].append(_run(case, servers[case.server], work, args, rep))

    summary: dict[str, Any] = {}
    table = []
    targets: dict[str, bool] = {}
    calm_s = None
    for case in cases:
        if not samples[case.name]:
            continue  # asked for 0 runs of this case
        d = summarize_samples(samples[case.name])
        extras = [x.extra for x in samples[case.name]]
        d["share_429"] = sorted(e["share_429"] for e in extras)[len(extras) // 2]
        d["inside_pause"] = max(e["inside_pause"] for e in extras)
        d["tenant_rate"] = case.rate or "default (100/20)"
        d["rows"] = case.tenants * case.per_tenant
        verdict = "-"
        if case.ideal_s is not None:
            d["ideal_s"] = round(case.ideal_s, 2)
            d["throughput_of_ideal"] = round(case.ideal_s / d["work_s"], 4)
            floor = TARGET_SHIFT_THROUGHPUT if case.name == "shifts" else TARGET_THROUGHPUT
            if case.name != "default":
                ok = d["throughput_of_ideal"] >= floor and d["share_429"] < TARGET_429_SHARE
                targets[f"{case.name}_throughput_{floor:.0%}_and_429_below_5pct"] = ok
                verdict = "met" if ok else "MISSED"
            of_ideal = f"{100 * d['throughput_of_ideal']:.0f}%"
        else:
            of_ideal = "-"
        if case.name == "calm":
            calm_s = d["work_s"]
        elif case.name == "spurious 503s" and calm_s is not None:
            d["vs_calm"] = round(d["work_s"] / calm_s, 3)
            ok = d["work_s"] <= SPURIOUS_RATIO * calm_s + SPURIOUS_EXTRA_S
            targets["spurious_503s_within_1.5x_calm_plus_3s"] = ok
            verdict = f"{d['vs_calm']:.2f}x calm: " + ("met" if ok else "MISSED")
        elif case.name == "fault mix":
            ok = d["work_s"] <= MIX_MAX_S
            targets["fault_mix_within_50s"] = ok
            verdict = "met" if ok else "MISSED"
        targets[f"{case.name}_no_request_inside_a_pause"] = d["inside_pause"] == 0
        summary[case.name] = d
        first = extras[0]
        table.append(
            [
                case.name,
                d["tenant_rate"],
                f"{case.tenants}x{case.per_tenant}",
                d["runs"],
                f"{d['work_s']:.1f}",
                of_ideal,
                f"{first['server_throttled']} / {first['busy']} / {first['requests']}",
                f"{100 * d['share_429']:.1f}%",
                d["inside_pause"],
                verdict,
            ]
        )
    print(
        f"\nthrottle: limit {args.limit} per {args.window:g} s per tenant (Retry-After: "
        f"{args.retry_after}), shifts {schedule} s after a tenant's first request, concurrency "
        f"{args.concurrency}, ideal {ideal:.1f} s (shifts {shift_ideal:.1f} s), server "
        "fastserver.py, median of runs"
    )
    print(
        format_table(
            [
                "case",
                "--tenant-rate",
                "rows",
                "runs",
                "time s",
                "of ideal",
                "429 / 503 / requests (1st run)",
                "429 share",
                "in pause",
                "target",
            ],
            table,
        )
    )
    path = save_results(
        "throttle",
        {
            "settings": {
                "tenants": args.tenants,
                "rows_per_tenant": per_tenant,
                "limit": args.limit,
                "window_s": args.window,
                "retry_after": args.retry_after,
                "limit_schedule": schedule,
                "spurious": f"{args.spurious_tenants}x{spurious_rows}, {args.busy_share:.0%} 503",
                "concurrency": args.concurrency,
                "token_latency_s": args.token_latency,
                "graph_latency_s": args.graph_latency,
                "servers": {k: s.settings for k, s in servers.items()},
            },
            "server": "benchmarks/fastserver.py (separate process per setup)",
            "ideal_s": ideal,
            "cases": summary,
            "targets_met": targets,
        },
        quick=quick,
    )
    print(f"results: {path}")


def _run(case: Case, server: FastServer, work: Any, args: Any, rep: int) -> Sample:
    name = case.name.replace(" ", "-")
    csv = work / f"throttle-{name}-{rep}.csv"
    tenants = tenant_ids(case.tenants, f"throttle-{uuid.uuid4()}")
    write_csv(csv, tenants, case.per_tenant)
    run = run_batchsync(
        server,
        csv,
        work,
        concurrency=args.concurrency,
        tenant_rate=case.rate,
        timeout_s=1800,
    )
    run.check(case.tenants * case.per_tenant)
    requests = int(run.summary.get("requests", 0))
    server_429 = int(run.measured.server.get("throttled", 0))
    sample = Sample.of(
        run.measured,
        run.work_s,
        requests=requests,
        throttled=int(run.summary.get("throttled", 0)),
        server_throttled=server_429,
        busy=int(run.measured.server.get("busy", 0)),
        inside_pause=int(run.measured.server.get("inside_pause", 0)),
        share_429=round(server_429 / requests, 4) if requests else 0.0,
    )
    print(
        f"  run {rep + 1} {case.name}: {run.work_s:.1f} s, {server_429} x 429 and "
        f"{sample.extra['busy']} x 503 of {requests} requests, "
        f"{sample.extra['inside_pause']} inside a pause",
        file=sys.stderr,
    )
    return sample


if __name__ == "__main__":
    main()
