"""Input: a 1,000,000-row CSV through ``--dry-run``, against plain csv.reader + orjson loops.

``python benchmarks/input.py [--quick] [--runs 3] [--rows 1000000]``

No server: ``python -m batchsync run big.csv --dry-run -o report.jsonl`` (the defaults: the
summary goes to standard error) validates every row (GUIDs, sync types, duplicates) and
writes a ``planned`` line per row. Two yardsticks read the same file with ``csv.reader``
and write one ``orjson.dumps`` line per row, with no validation: ``baselines.py
report-input`` writes the same report dict (sixteen fields, a timestamp per row: issue
10's yardstick, the target's), ``baselines.py plain-input`` a five-field line (the floor).
Each runs as its own process writing to a file in the same scratch directory, the three
interleaved run by run; the ratios compare whole processes (start-up counts), medians of
the runs. Peak RSS is each process's ``ru_maxrss``.
"""

from __future__ import annotations

import json
import sys
import uuid

from _common import (
    PY,
    Proc,
    Sample,
    base_parser,
    baseline_cmd,
    child_env,
    fmt_ratio,
    format_table,
    median,
    parse_baseline,
    run_process,
    save_results,
    scratch_dir,
    tenant_ids,
    write_csv,
)

TARGET_TIME_RATIO = 2.0  # batchsync time at most this multiple of the plain loop's
TARGET_RSS_MB = 150.0


def _sample(proc: Proc, work_s: float) -> Sample:
    return Sample(
        work_s=round(work_s, 4),
        wall_s=round(proc.wall_s, 4),
        max_rss_mb=round(proc.max_rss_mb, 1),
        cpu_s=round(proc.cpu_s, 3),
        server_busy=0.0,
        server={},
    )


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 1000000 (quick 20000)")
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    quick = args.quick
    rows = args.rows or (20_000 if quick else 1_000_000)
    runs = args.runs or (1 if quick else 3)
    names = {"report-input": "csv+orjson, report dict", "plain-input": "csv+orjson, 5 fields"}
    samples: dict[str, list[Sample]] = {"batchsync --dry-run": []}
    samples.update({name: [] for name in names.values()})
    with scratch_dir(args.keep) as work:
        csv = work / "input.csv"
        n = write_csv(csv, tenant_ids(args.tenants, f"input-{uuid.uuid4()}"), rows // args.tenants)
        size_mb = csv.stat().st_size / 1e6
        env = child_env()
        for rep in range(runs):
            report = work / f"report-{rep}.jsonl"
            summary = work / f"summary-{rep}.json"
            cmd = [
                PY, "-m", "batchsync", "run", str(csv), "--dry-run", "-o", str(report),
                "--summary-json", str(summary),
            ]  # fmt: skip
            proc = run_process(cmd, env=env, timeout_s=1800)
            data = json.loads(summary.read_bytes()) if summary.exists() else {}
            planned = data.get("statuses", {}).get("planned", 0)
            if proc.returncode != 0 or planned != n:
                raise RuntimeError(
                    f"batchsync --dry-run exited {proc.returncode}, {planned}/{n} planned: "
                    + proc.stderr.decode(errors="replace")[-2000:]
                )
            samples["batchsync --dry-run"].append(_sample(proc, float(data["elapsed_s"])))
            report.unlink()
            for kind, name in names.items():
                out = work / f"{kind}-{rep}.jsonl"
                proc = run_process(
                    baseline_cmd(kind, None, csv, output=out), env=env, timeout_s=1800
                )
                result = parse_baseline(kind, proc)
                if result["ok"] != n:
                    raise RuntimeError(f"{kind}: {result}")
                samples[name].append(_sample(proc, result["work_s"]))
                out.unlink()
            print(
                f"  run {rep + 1}/{runs}: "
                + ", ".join(f"{name} {ss[-1].wall_s:.2f} s" for name, ss in samples.items()),
                file=sys.stderr,
            )

    summary_out: dict[str, dict[str, object]] = {}
    for name, ss in samples.items():
        summary_out[name] = {
            "runs": len(ss),
            "work_s": median([s.work_s for s in ss]),
            "wall_s": median([s.wall_s for s in ss]),
            "max_rss_mb": median([s.max_rss_mb for s in ss]),
            "cpu_s": median([s.cpu_s for s in ss]),
            "samples": [s.as_dict() for s in ss],
        }
    b = summary_out["batchsync --dry-run"]
    yard, floor = (summary_out[names[kind]] for kind in ("report-input", "plain-input"))
    ratio = float(b["wall_s"]) / float(yard["wall_s"])  # type: ignore[arg-type]
    floor_ratio = float(b["wall_s"]) / float(floor["wall_s"])  # type: ignore[arg-type]
    rss = float(b["max_rss_mb"])  # type: ignore[arg-type]
    targets = {
        "time_within_2x_of_report_dict_loop": ratio <= TARGET_TIME_RATIO,
        "rss_under_150_mb": rss < TARGET_RSS_MB,
    }
    print(f"\ninput: {n} rows ({size_mb:.0f} MB CSV, {args.tenants} tenants), median of {runs}")
    print(
        format_table(
            ["reader", "process s", "work s", "rows/s", "CPU s", "peak RSS MB"],
            [
                [
                    name,
                    f"{d['wall_s']:.2f}",
                    f"{d['work_s']:.2f}",
                    f"{n / float(d['wall_s']):.0f}",  # type: ignore[arg-type]
                    f"{d['cpu_s']:.2f}",
                    f"{d['max_rss_mb']:.0f}",
                ]
                for name, d in summary_out.items()
            ],
        )
    )
    print(
        f"  batchsync / report-dict loop (whole processes): {fmt_ratio(ratio)} (target <= 2x: "
        f"{'met' if targets['time_within_2x_of_report_dict_loop'] else 'MISSED'}); "
        f"/ 5-field loop: {fmt_ratio(floor_ratio)}; batchsync peak RSS {rss:.0f} MB "
        f"(target < 150 MB: {'met' if targets['rss_under_150_mb'] else 'MISSED'})"
    )
    path = save_results(
        "input",
        {
            "settings": {"rows": n, "tenants": args.tenants, "csv_mb": round(size_mb, 1)},
            "server": None,
            "contenders": summary_out,
            "ratios": {
                "batchsync_over_report_dict_loop": round(ratio, 3),
                "batchsync_over_five_field_loop": round(floor_ratio, 3),
            },
            "targets_met": targets,
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
