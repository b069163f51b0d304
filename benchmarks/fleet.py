"""Fleet: thousands of tenants with one row each, where the cost is per tenant.

``python benchmarks/fleet.py [--quick] [--runs 3] [--tenants 2000] [--concurrency 32]``

Against ``fastserver.py`` (its own process) with 80 ms token, 120 ms Graph and 30 ms OpenID
discovery latency (``--token-latency``/``--graph-latency``/``--discovery-latency``), each
contender runs in its own process over the same rows, at the same Graph concurrency:

* ``batchsync``: ``python -m batchsync run --auth app --concurrency N`` (default
  ``--token-concurrency``), then once per ``--token-concurrency-variants`` value;
* ``bare``: the aiohttp loop of ``baselines.py`` (token POST then sync POST per tenant, under
  one semaphore of N);
* ``peer``: msgraph-sdk-python + azure-identity (``baselines.py peer``), per tenant a
  credential and a ``GraphServiceClient``, ``asyncio.gather`` under a semaphore of N;
  ``peer-shared-http`` (extra) shares one httpx client between the tenants' adapters;
* ``sequential``: a ``foreach`` over the first ``--sequential-rows`` rows, extrapolated
  linearly to all rows (it is strictly one row after another: 2,000 rows would take ~7 min).

batchsync and bare are the median of ``--runs`` (3); the peer runs ``--peer-runs`` times (1:
at 2,000 tenants one run takes ~160 s, and it is far from the 3x line either way) and the
extras ``--extra-runs`` times (1).

Each run uses fresh tenant IDs; contenders take turns within a run (the order rotates) so
drift on a shared machine hits all alike. The floor is ``rows * graph_latency / concurrency
+ token_latency``: what a perfect client would need if tokens cost nothing but the first.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

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

TARGET_PEER_OVER_BATCHSYNC = 3.0  # at least
TARGET_BATCHSYNC_OVER_BARE = 0.8  # at most


def _batchsync(server: FastServer, csv: Path, work: Path, rows: int, **opts: Any) -> Sample:
    run = run_batchsync(server, csv, work, **opts)
    run.check(rows)
    return Sample.of(run.measured, run.work_s)


def _baseline(kind: str, server: FastServer, csv: Path, rows: int, **opts: Any) -> Sample:
    measured, result = run_baseline(kind, server, csv, **opts)
    if result["ok"] != result["rows"] or result["rows"] == 0:
        raise RuntimeError(f"{kind}: {result}")
    return Sample.of(measured, result["work_s"], rows=result["rows"])


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=None, help="default 2000 (quick: 60)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--token-concurrency-variants", default="32", help="comma list, or ''")
    parser.add_argument("--token-latency", type=float, default=0.08)
    parser.add_argument("--graph-latency", type=float, default=0.12)
    parser.add_argument("--discovery-latency", type=float, default=0.03)
    parser.add_argument("--sequential-rows", type=int, default=None, help="default 100 (quick 10)")
    parser.add_argument("--extra-runs", type=int, default=1, help="runs of the extra contenders")
    parser.add_argument(
        "--peer-runs", type=int, default=1, help="runs of the SDK peer (~160 s each at 2,000)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip msgraph-sdk (not installed)")
    args = parser.parse_args()
    quick = args.quick
    tenants = args.tenants or (60 if quick else 2000)
    runs = args.runs or (1 if quick else 3)
    seq_rows = min(tenants, args.sequential_rows or (10 if quick else 100))
    conc = args.concurrency
    variants = [int(v) for v in args.token_concurrency_variants.split(",") if v.strip()]
    latency = {
        "token_latency_s": args.token_latency,
        "graph_latency_s": args.graph_latency,
        "discovery_latency_s": args.discovery_latency,
    }

    main_names = ["batchsync", "bare"] + ([] if args.no_peer else ["peer"])
    extra_names = [f"batchsync --token-concurrency {v}" for v in variants]
    extra_names += [] if args.no_peer else ["peer-shared-http"]
    samples: dict[str, list[Sample]] = {n: [] for n in main_names + extra_names + ["sequential"]}

    with scratch_dir(args.keep) as work, FastServer(**latency) as server:

        def run_one(name: str, csv: Path) -> Sample:
            if name == "batchsync":
                return _batchsync(server, csv, work, tenants, concurrency=conc)
            if name.startswith("batchsync --token-concurrency "):
                tc = int(name.rsplit(" ", 1)[1])
                return _batchsync(
                    server, csv, work, tenants, concurrency=conc, token_concurrency=tc
                )
            if name == "bare":
                return _baseline("bare", server, csv, tenants, concurrency=conc)
            if name == "peer":
                return _baseline("peer", server, csv, tenants, concurrency=conc)
            if name == "peer-shared-http":
                return _baseline("peer", server, csv, tenants, concurrency=conc, shared_http=1)
            raise ValueError(name)

        for rep in range(runs):
            order = main_names[rep % len(main_names) :] + main_names[: rep % len(main_names)]
            if rep < args.extra_runs:
                order += extra_names
            for name in order:
                if name == "peer" and rep >= args.peer_runs:
                    continue
                csv = work / f"fleet-{rep}-{uuid.uuid4().hex[:6]}.csv"
                write_csv(csv, tenant_ids(tenants, f"fleet-{name}-{rep}-{uuid.uuid4()}"), 1)
                sample = run_one(name, csv)
                samples[name].append(sample)
                print(f"  run {rep + 1}/{runs} {name}: {sample.work_s:.2f} s", file=sys.stderr)
        csv = work / "fleet-sequential.csv"
        write_csv(csv, tenant_ids(seq_rows, f"fleet-seq-{uuid.uuid4()}"), 1)
        measured, result = run_baseline("sequential", server, csv, limit_rows=seq_rows)
        per_row = result["work_s"] / result["rows"]
        samples["sequential"].append(
            Sample.of(
                measured,
                per_row * tenants,
                measured_rows=result["rows"],
                measured_work_s=result["work_s"],
                extrapolated=True,
            )
        )
        print(f"  sequential: {per_row * 1000:.0f} ms per row", file=sys.stderr)

    summary = {name: summarize_samples(s) for name, s in samples.items() if s}
    t = {name: d["work_s"] for name, d in summary.items()}
    floor = tenants * args.graph_latency / conc + args.token_latency
    ratios: dict[str, float | None] = {
        "batchsync_over_floor": t["batchsync"] / floor,
        "batchsync_over_bare": t["batchsync"] / t["bare"],
        "peer_over_batchsync": t["peer"] / t["batchsync"] if "peer" in t else None,
        "sequential_over_batchsync": t["sequential"] / t["batchsync"],
        "peer_over_bare": t["peer"] / t["bare"] if "peer" in t else None,
    }
    peer_ratio = ratios["peer_over_batchsync"]
    bare_ratio = t["batchsync"] / t["bare"]
    targets = {
        "peer_over_batchsync_at_least_3": (
            None if peer_ratio is None else peer_ratio >= TARGET_PEER_OVER_BATCHSYNC
        ),
        "batchsync_over_bare_at_most_0.8": bare_ratio <= TARGET_BATCHSYNC_OVER_BARE,
    }

    rows_out = []
    for name, d in summary.items():
        first = d["samples"][0]
        server_stats = first["server"]
        rows_out.append(
            [
                name,
                f"{d['work_s']:.2f}" + (" (extrap.)" if name == "sequential" else ""),
                d["runs"],
                f"{d['wall_s']:.2f}",
                fmt_ratio(d["work_s"] / floor),
                fmt_ratio(d["work_s"] / t["batchsync"]),
                f"{d['max_rss_mb']:.0f}",
                f"{d['cpu_s']:.1f}",
                f"{d['server_busy']:.2f}",
                server_stats.get("token_connections", ""),
                server_stats.get("graph_connections", ""),
            ]
        )
    print(
        f"\nfleet: {tenants} tenants x 1 row, concurrency {conc}, latency token "
        f"{args.token_latency * 1000:.0f} ms / Graph {args.graph_latency * 1000:.0f} ms / "
        f"discovery {args.discovery_latency * 1000:.0f} ms, server fastserver.py, "
        f"median of {runs} (peer: {min(runs, args.peer_runs)}, extras: {args.extra_runs})"
    )
    print(
        format_table(
            [
                "contender",
                "work s",
                "runs",
                "wall s",
                "/floor",
                "/batchsync",
                "RSS MB",
                "CPU s",
                "srv busy",
                "tok conns",
                "graph conns",
            ],
            rows_out,
        )
    )
    print(f"floor (rows x Graph latency / concurrency + one token latency): {floor:.2f} s")
    for key, value in ratios.items():
        print(f"  {key}: {'n/a' if value is None else fmt_ratio(value)}")
    for key, ok in targets.items():
        print(f"  target {key}: {'n/a' if ok is None else 'met' if ok else 'MISSED'}")
    path = save_results(
        "fleet",
        {
            "settings": {
                "tenants": tenants,
                "rows_per_tenant": 1,
                "concurrency": conc,
                "token_concurrency_variants": variants,
                "sequential_rows_measured": seq_rows,
                "runs": runs,
                "peer_runs": min(runs, args.peer_runs),
                "extra_runs": min(runs, args.extra_runs),
                **latency,
            },
            "server": "benchmarks/fastserver.py (separate process)",
            "floor_s": round(floor, 3),
            "contenders": summary,
            "ratios": {k: None if v is None else round(v, 3) for k, v in ratios.items()},
            "targets_met": targets,
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
