"""Throttle: a few tenants with many rows, where the per-tenant limit decides.

``python benchmarks/throttle.py [--quick] [--runs 3] [--tenants 5] [--rows-per-tenant 500]``

``fastserver.py`` (its own process, 80 ms token / 120 ms Graph latency) allows each tenant
``--limit`` requests per ``--window`` seconds (default 50 per 2 s, a sliding window) and
answers 429 with ``Retry-After`` (whole seconds, ``--retry-after``) beyond it. The ideal time
is ``rows_per_tenant / (limit / window)`` (tenants run in parallel); throughput is ideal /
achieved. batchsync runs with ``--concurrency 32`` in three cases:

* ``right``: ``--tenant-rate 50/2``, the limit told;
* ``default``: no ``--tenant-rate``, the default ``100/20`` (5 requests/s), a ceiling below
  this server's 25/s, which batchsync may only lower: the time is bound by the ceiling, not
  by learning (one run by default, ``--default-runs``: it is ~100 s and deterministic);
* ``unknown``: ``--tenant-rate 500/2``, a ceiling 10x the real limit, so the limit is unknown
  and must be learned from 429s.

Reported per case: time, % of ideal throughput, and 429s (batchsync's count, checked against
the server's) as a share of requests.
"""

from __future__ import annotations

import sys
import uuid

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


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows-per-tenant", type=int, default=None, help="default 500 (quick 100)")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--retry-after", choices=["seconds", "float", "none"], default="seconds")
    parser.add_argument("--unknown-rate", default="500/2", help="the ceiling of the unknown case")
    parser.add_argument("--default-runs", type=int, default=1)
    parser.add_argument("--token-latency", type=float, default=0.08)
    parser.add_argument("--graph-latency", type=float, default=0.12)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    quick = args.quick
    per_tenant = args.rows_per_tenant or (100 if quick else 500)
    runs = args.runs or (1 if quick else 3)
    rows = per_tenant * args.tenants
    ideal = per_tenant / (args.limit / args.window)
    cases = {
        "right": f"{args.limit}/{args.window:g}",
        "unknown": args.unknown_rate,
        "default": None,
    }
    case_runs = {"right": runs, "unknown": runs, "default": min(runs, args.default_runs)}
    samples: dict[str, list[Sample]] = {c: [] for c in cases}
    server = FastServer(
        token_latency_s=args.token_latency,
        graph_latency_s=args.graph_latency,
        limit=args.limit,
        window_s=args.window,
        retry_after=args.retry_after,
    )
    with scratch_dir(args.keep) as work, server:
        for rep in range(runs):
            for case, rate in cases.items():
                if rep >= case_runs[case]:
                    continue
                csv = work / f"throttle-{case}-{rep}.csv"
                write_csv(csv, tenant_ids(args.tenants, f"throttle-{uuid.uuid4()}"), per_tenant)
                run = run_batchsync(
                    server,
                    csv,
                    work,
                    concurrency=args.concurrency,
                    tenant_rate=rate,
                    timeout_s=1800,
                )
                run.check(rows)
                requests = int(run.summary.get("requests", 0))
                throttled = int(run.summary.get("throttled", 0))
                sample = Sample.of(
                    run.measured,
                    run.work_s,
                    requests=requests,
                    throttled=throttled,
                    server_throttled=run.measured.server.get("throttled"),
                    share_429=round(throttled / requests, 4) if requests else 0.0,
                    throughput_of_ideal=round(ideal / run.work_s, 4),
                )
                samples[case].append(sample)
                print(
                    f"  run {rep + 1} {case}: {run.work_s:.1f} s, {throttled} x 429 "
                    f"of {requests} requests",
                    file=sys.stderr,
                )

    summary = {}
    table = []
    targets = {}
    for case, rate in cases.items():
        if not samples[case]:
            continue  # asked for 0 runs of this case
        d = summarize_samples(samples[case])
        s429 = sorted(x.extra["share_429"] for x in samples[case])
        d["share_429"] = s429[len(s429) // 2]
        d["throughput_of_ideal"] = round(ideal / d["work_s"], 4)
        d["tenant_rate"] = rate or "default (100/20)"
        summary[case] = d
        ok = d["throughput_of_ideal"] >= TARGET_THROUGHPUT and d["share_429"] < TARGET_429_SHARE
        targets[case] = ok
        first = samples[case][0].extra
        table.append(
            [
                case,
                d["tenant_rate"],
                d["runs"],
                f"{d['work_s']:.1f}",
                f"{100 * d['throughput_of_ideal']:.0f}%",
                f"{first['throttled']} / {first['requests']}",
                f"{100 * d['share_429']:.1f}%",
                "met" if ok else "MISSED",
            ]
        )
    print(
        f"\nthrottle: {args.tenants} tenants x {per_tenant} rows, limit {args.limit} per "
        f"{args.window:g} s per tenant (Retry-After: {args.retry_after}), concurrency "
        f"{args.concurrency}, ideal {ideal:.1f} s, server fastserver.py, median of runs"
    )
    print(
        format_table(
            [
                "case",
                "--tenant-rate",
                "runs",
                "time s",
                "of ideal",
                "429s / requests (1st run)",
                "429 share",
                ">=90% & <5%",
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
                "concurrency": args.concurrency,
                "token_latency_s": args.token_latency,
                "graph_latency_s": args.graph_latency,
            },
            "server": "benchmarks/fastserver.py (separate process)",
            "ideal_s": ideal,
            "cases": summary,
            "targets_met": {
                f"{c}_throughput_90pct_and_429_below_5pct": v for c, v in targets.items()
            },
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
