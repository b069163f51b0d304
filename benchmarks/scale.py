"""Scale: how time and memory grow with rows and with tenants.

``python benchmarks/scale.py [--quick] [--rows 1000,10000,100000] [--tenants 10,100,1000,10000]``

``fastserver.py`` (its own process) answers at once and never throttles; batchsync runs with
``--concurrency 32 --tenant-rate 1000000/1`` (a window that never binds), once per point:

* rows axis: 1k, 10k, 100k rows over 10 tenants: time should grow linearly (constant
  rows/s) and peak RSS stay flat (the engine holds at most its look-ahead of rows);
* tenants axis: ``--tenant-rows`` rows (default 10,000) spread over 10, 100, 1k, 10k
  tenants: the per-tenant cost (an MSAL application, a discovery and a token request each)
  at a constant number of rows.

Peak RSS is the batchsync process's ``ru_maxrss``. Linearity is judged on the rows axis by
the marginal cost per row, ``(t[i] - t[i-1]) / (rows[i] - rows[i-1])``: the last segment's
over the first's (1.0 is perfectly linear; the fixed start-up cost cancels out).
"""

from __future__ import annotations

import itertools
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
    tenant_ids,
    write_csv,
)

NO_LIMIT = "1000000/1"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=None, help="rows axis (default 1000,10000,100000)")
    parser.add_argument("--tenants", default=None, help="tenants axis (default 10,...,10000)")
    parser.add_argument("--row-tenants", type=int, default=10, help="tenants on the rows axis")
    parser.add_argument("--tenant-rows", type=int, default=None, help="rows on the tenants axis")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    quick = args.quick
    rows_axis = _ints(args.rows or ("500,2000" if quick else "1000,10000,100000"))
    tenants_axis = _ints(args.tenants or ("10,100" if quick else "10,100,1000,10000"))
    tenant_rows = args.tenant_rows or (500 if quick else 10_000)
    points: list[dict[str, object]] = []

    with scratch_dir(args.keep) as work, FastServer() as server:

        def measure(axis: str, rows: int, tenants: int) -> None:
            per_tenant = max(1, rows // tenants)
            csv = work / f"scale-{axis}-{rows}-{tenants}.csv"
            n = write_csv(csv, tenant_ids(tenants, f"scale-{uuid.uuid4()}"), per_tenant)
            run = run_batchsync(
                server, csv, work, concurrency=args.concurrency, tenant_rate=NO_LIMIT
            )
            run.check(n)
            sample = Sample.of(run.measured, run.work_s)
            csv.unlink()
            point = {
                "axis": axis,
                "rows": n,
                "tenants": tenants,
                "work_s": sample.work_s,
                "wall_s": sample.wall_s,
                "rows_per_s": round(n / sample.work_s, 1),
                "us_per_row": round(1e6 * sample.work_s / n, 1),
                "max_rss_mb": sample.max_rss_mb,
                "cpu_s": sample.cpu_s,
                "server_busy": sample.server_busy,
                "server": sample.server,
            }
            points.append(point)
            print(
                f"  {axis}: {n} rows / {tenants} tenants: {sample.work_s:.1f} s, "
                f"{sample.max_rss_mb:.0f} MB",
                file=sys.stderr,
            )

        for rows in rows_axis:
            measure("rows", rows, args.row_tenants)
        for tenants in tenants_axis:
            measure("tenants", max(tenant_rows, tenants), tenants)

    row_points = [p for p in points if p["axis"] == "rows"]
    rss = [float(p["max_rss_mb"]) for p in row_points]  # type: ignore[arg-type]
    slopes = [
        1e6
        * (float(b["work_s"]) - float(a["work_s"]))  # type: ignore[arg-type]
        / (int(b["rows"]) - int(a["rows"]))  # type: ignore[call-overload]
        for a, b in itertools.pairwise(row_points)
    ]
    linearity = slopes[-1] / slopes[0] if len(slopes) >= 2 and slopes[0] > 0 else float("nan")
    rss_growth = max(rss) / min(rss) if rss else float("nan")
    tenant_points = [p for p in points if p["axis"] == "tenants"]
    print(
        f"\nscale: concurrency {args.concurrency}, zero latency, no throttling, server "
        "fastserver.py, one run per point"
    )
    print(
        format_table(
            ["axis", "rows", "tenants", "time s", "rows/s", "µs/row", "peak RSS MB", "CPU s"],
            [
                [
                    p["axis"],
                    p["rows"],
                    p["tenants"],
                    f"{p['work_s']:.2f}",
                    f"{p['rows_per_s']:.0f}",
                    f"{p['us_per_row']:.0f}",
                    f"{p['max_rss_mb']:.0f}",
                    f"{p['cpu_s']:.1f}",
                ]
                for p in points
            ],
        )
    )
    print(
        "  rows axis: marginal µs/row "
        + " -> ".join(f"{s:.0f}" for s in slopes)
        + f" (last/first {linearity:.2f}, 1.0 = linear); peak RSS max/min {rss_growth:.2f}"
        " (1.0 = flat)"
    )
    if len(tenant_points) >= 2:
        first, last = tenant_points[0], tenant_points[-1]
        extra_s = float(last["work_s"]) - float(first["work_s"])  # type: ignore[arg-type]
        extra_t = int(last["tenants"]) - int(first["tenants"])  # type: ignore[call-overload]
        if extra_t > 0:
            print(f"  tenants axis: {1000 * extra_s / extra_t:.2f} ms per extra tenant")
    path = save_results(
        "scale",
        {
            "settings": {
                "concurrency": args.concurrency,
                "tenant_rate": NO_LIMIT,
                "row_tenants": args.row_tenants,
                "tenant_rows": tenant_rows,
                "latency_s": 0,
            },
            "server": "benchmarks/fastserver.py (separate process)",
            "points": points,
            "rows_axis_marginal_us_per_row": [round(s, 1) for s in slopes],
            "rows_axis_marginal_last_over_first": round(linearity, 3),
            "rows_axis_rss_max_over_min": round(rss_growth, 3),
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
