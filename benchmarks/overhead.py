"""Overhead: the engine's own cost per row, with no latency and no throttling.

``python benchmarks/overhead.py [--quick] [--runs 3] [--rows 20000] [--tenants 10]``

``fastserver.py`` (its own process) answers at once and never throttles; ``batchsync run
--concurrency N --tenant-rate 1000000/1`` (a window that never binds) and the bare aiohttp
loop of ``baselines.py`` (one token per tenant, then every row under one semaphore of N) send
the same rows. What separates them is what batchsync does per row on top of the POST: the
lanes, pacing, ids, outcome and report line. The CLI uses uvloop when it is installed (the
``fast`` extra) and the bare loop uses asyncio's loop, so when uvloop is installed one extra
run of batchsync with ``BATCHSYNC_UVLOOP=0`` shows the engine on the same loop as the bare
one. The server's CPU share is printed: near 1.0 it was the bottleneck and the ratio
understates the difference.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid

from _common import (
    FastServer,
    Sample,
    base_parser,
    fmt_ratio,
    format_table,
    run_baseline,
    run_batchsync,
    save_results,
    scratch_dir,
    summarize_samples,
    tenant_ids,
    write_csv,
)

TARGET_RATIO = 0.8  # batchsync rows/s at least this share of the bare loop's
NO_LIMIT = "1000000/1"
ASYNCIO = "batchsync (asyncio loop)"  # BATCHSYNC_UVLOOP=0: the same event loop as the bare loop


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 20000 (quick 2000)")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--extra-runs", type=int, default=1, help="runs of batchsync on asyncio's loop (0: none)"
    )
    args = parser.parse_args()
    quick = args.quick
    rows = args.rows or (2000 if quick else 20_000)
    runs = args.runs or (1 if quick else 3)
    per_tenant = max(1, rows // args.tenants)
    rows = per_tenant * args.tenants
    names = ["batchsync", "bare"]
    extras = [ASYNCIO] if args.extra_runs and importlib.util.find_spec("uvloop") else []
    samples: dict[str, list[Sample]] = {n: [] for n in names + extras}

    with scratch_dir(args.keep) as work, FastServer() as server:
        for rep in range(runs):
            order = names[rep % 2 :] + names[: rep % 2]
            for name in order + (extras if rep < args.extra_runs else []):
                csv = work / f"overhead-{rep}-{len(samples[name])}.csv"
                write_csv(csv, tenant_ids(args.tenants, f"overhead-{uuid.uuid4()}"), per_tenant)
                if name in ("batchsync", ASYNCIO):
                    run = run_batchsync(
                        server,
                        csv,
                        work,
                        concurrency=args.concurrency,
                        tenant_rate=NO_LIMIT,
                        env={"BATCHSYNC_UVLOOP": "0"} if name == ASYNCIO else None,
                    )
                    run.check(rows)
                    sample = Sample.of(run.measured, run.work_s)
                else:
                    measured, result = run_baseline(
                        "bare", server, csv, concurrency=args.concurrency
                    )
                    if result["ok"] != rows:
                        raise RuntimeError(f"bare: {result}")
                    sample = Sample.of(measured, result["work_s"])
                samples[name].append(sample)
                print(
                    f"  run {rep + 1}/{runs} {name}: {rows / sample.work_s:.0f} rows/s "
                    f"(server busy {sample.server_busy:.2f})",
                    file=sys.stderr,
                )

    summary = {n: summarize_samples(s) for n, s in samples.items() if s}
    for d in summary.values():
        d["rows_per_s"] = round(rows / d["work_s"], 1)
    ratio = summary["batchsync"]["rows_per_s"] / summary["bare"]["rows_per_s"]
    table = [
        [
            n,
            f"{d['rows_per_s']:.0f}",
            f"{d['work_s']:.2f}",
            f"{d['wall_s']:.2f}",
            f"{d['cpu_s']:.1f}",
            f"{1000 * d['cpu_s'] / rows:.3f}",
            f"{d['max_rss_mb']:.0f}",
            f"{d['server_busy']:.2f}",
        ]
        for n, d in summary.items()
    ]
    print(
        f"\noverhead: {rows} rows over {args.tenants} tenants, concurrency {args.concurrency}, "
        f"zero latency, no throttling, server fastserver.py, median of {runs}"
    )
    print(
        format_table(
            ["client", "rows/s", "work s", "wall s", "CPU s", "CPU ms/row", "RSS MB", "srv busy"],
            table,
        )
    )
    met = ratio >= TARGET_RATIO
    print(
        f"  batchsync / bare rows/s: {fmt_ratio(ratio)} (target >= {TARGET_RATIO}x: "
        f"{'met' if met else 'MISSED'})"
    )
    path = save_results(
        "overhead",
        {
            "settings": {
                "rows": rows,
                "tenants": args.tenants,
                "concurrency": args.concurrency,
                "batchsync_tenant_rate": NO_LIMIT,
                "latency_s": 0,
            },
            "server": "benchmarks/fastserver.py (separate process)",
            "contenders": summary,
            "ratios": {"batchsync_over_bare_rows_per_s": round(ratio, 3)},
            "targets_met": {"batchsync_rows_per_s_at_least_0.8_of_bare": met},
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
