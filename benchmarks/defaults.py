"""Issue 10's table in one invocation: each row at the defaults a user runs, beside its yardstick.

``python benchmarks/defaults.py [--quick]``

Runs, one after the other (never two at once), each as its own benchmark script:

* ``fleet.py --tenants 300 --runs 3``: 300 tenants x 1 row at ``--concurrency 32`` and every
  other option at its default (so ``--token-concurrency`` = 32), against the bare aiohttp
  loop and the Graph SDK peer;
* ``startup.py``: ``--version``, ``run --help``, a completion TAB against
  ``python -c "import click"``;
* ``overhead.py``: 20,000 rows over 10 tenants at zero latency against the bare loop;
* ``input.py``: a 1,000,000-row ``--dry-run`` against csv.reader + orjson of the same
  report dict.

Then prints one table: each figure, its yardstick, the ratio, the goal, met or missed. The
scripts' own results land in ``results/`` as usual (``fleet.json`` is then this 300-tenant
run); this one adds ``results/defaults.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, PY, RESULTS_DIR, base_parser, format_table, save_results


def _run(script: str, args: list[str], quick: bool) -> dict[str, Any]:
    cmd = [PY, str(BENCH_DIR / script), *args, *(["--quick"] if quick else [])]
    print(f"$ {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    name = Path(script).stem
    path = RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    quick = args.quick
    fleet = _run(
        "fleet.py",
        ["--tenants", "60" if quick else "300", "--token-concurrency-variants", "",
         "--sequential-rows", "10" if quick else "20"],
        quick,
    )  # fmt: skip
    startup = _run("startup.py", [], quick)
    overhead = _run("overhead.py", [], quick)
    source = _run("input.py", [], quick)

    fc = fleet["contenders"]
    b, bare, peer = fc["batchsync"], fc["bare"], fc.get("peer")
    sc = startup["contenders"]
    click = sc['python -c "import click"']
    oc = overhead["contenders"]
    ic = source["contenders"]
    dry, yard = ic["batchsync --dry-run"], ic["csv+orjson, report dict"]
    rows: list[list[str]] = []

    def row(what: str, ours: str, yardstick: str, ratio: float, goal: str, met: bool) -> None:
        rows.append([what, ours, yardstick, f"{ratio:.2f}x", goal, "met" if met else "MISSED"])

    tenants = fleet["settings"]["tenants"]
    ratio = b["work_s"] / bare["work_s"]
    row(
        f"fleet, {tenants} tenants x 1 row, --concurrency 32, defaults",
        f"{b['work_s']:.2f} s",
        f"bare aiohttp loop {bare['work_s']:.2f} s",
        ratio,
        "<= 0.8x",
        ratio <= 0.8,
    )
    if peer is not None:
        ratio = peer["work_s"] / b["work_s"]
        row(
            "  the Graph SDK peer, same fleet",
            f"{b['work_s']:.2f} s",
            f"msgraph-sdk {peer['work_s']:.2f} s",
            ratio,
            "SDK >= 3x slower",
            ratio >= 3.0,
        )
    for name in ("batchsync --version", "batchsync run --help", "completion TAB"):
        ratio = sc[name]["wall_s"] / click["wall_s"]
        row(
            name,
            f"{sc[name]['wall_s']:.3f} s",
            f"import click {click['wall_s']:.3f} s",
            ratio,
            "<= 2.5x",
            ratio <= 2.5,
        )
    ours_rps = overhead["settings"]["rows"] / oc["batchsync"]["work_s"]
    bare_rps = overhead["settings"]["rows"] / oc["bare"]["work_s"]
    ratio = ours_rps / bare_rps
    row(
        f"overhead, {overhead['settings']['rows']} rows / 10 tenants, zero latency",
        f"{ours_rps:,.0f} rows/s",
        f"bare loop {bare_rps:,.0f} rows/s",
        ratio,
        ">= 0.8x",
        ratio >= 0.8,
    )
    ratio = dry["wall_s"] / yard["wall_s"]
    row(
        f"{source['settings']['rows']:,}-row CSV --dry-run (peak {dry['max_rss_mb']:.0f} MB)",
        f"{dry['wall_s']:.2f} s",
        f"csv.reader + orjson, report dict {yard['wall_s']:.2f} s",
        ratio,
        "<= 2x, < 150 MB",
        ratio <= 2.0 and dry["max_rss_mb"] < 150,
    )
    print("\nissue 10 at the defaults (each row's script ran alone, in this invocation)")
    print(format_table(["what", "batchsync", "yardstick", "ratio", "goal", ""], rows))
    path = save_results(
        "defaults",
        {
            "settings": {"quick": quick},
            "server": None,
            "rows": [
                dict(
                    zip(
                        ["what", "batchsync", "yardstick", "ratio", "goal", "verdict"],
                        r,
                        strict=True,
                    )
                )
                for r in rows
            ],
        },
        quick=quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
