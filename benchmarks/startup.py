"""Start-up: commands that send nothing, as whole processes, against ``python -c "import click"``.

``python benchmarks/startup.py [--quick] [--runs 15]``

Each command runs as its own process through the installed ``batchsync`` console script (the
one users type), the runs interleaved: ``batchsync --version``, ``batchsync run --help``, a
shell-completion TAB (``_BATCHSYNC_COMPLETE=bash_complete``, completing ``run x.csv --cl``),
a usage error (``run in.csv --concurrency 0``, exit 2), and a ``--dry-run`` of a one-row CSV
(the smallest real run). The yardstick is the interpreter plus click alone. batchsync's
modules are byte-compiled first (``compileall``), as ``pip install`` does: a tree run with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module on every start.
"""

from __future__ import annotations

import compileall
import os
import shutil
import sys
from pathlib import Path

from _common import (
    PY,
    REPO_DIR,
    base_parser,
    child_env,
    fmt_ratio,
    format_table,
    median,
    run_process,
    save_results,
    scratch_dir,
)

TARGET_RATIO = 2.5  # issue 10: at most this multiple of `python -c "import click"`


def _console_script() -> str:
    """The ``batchsync`` script next to this interpreter (the venv's), else on PATH."""
    name = "batchsync.exe" if os.name == "nt" else "batchsync"
    beside = Path(PY).with_name(name)
    found = str(beside) if beside.exists() else shutil.which("batchsync")
    if found is None:
        raise SystemExit("no batchsync console script: pip install -e . first")
    return found


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 15)
    compileall.compile_dir(str(REPO_DIR / "batchsync"), quiet=1)
    script = _console_script()
    with scratch_dir(args.keep) as work:
        one_row = work / "one.csv"
        one_row.write_text(
            "tenant,connector\ncontoso.com,6f2b1c9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f\n",
            encoding="utf-8",
        )
        complete = {
            "_BATCHSYNC_COMPLETE": "bash_complete",
            "COMP_WORDS": "batchsync run x.csv --cl",
            "COMP_CWORD": "3",
        }
        commands: dict[str, tuple[list[str], dict[str, str], int]] = {
            'python -c "import click"': ([PY, "-c", "import click"], {}, 0),
            "batchsync --version": ([script, "--version"], {}, 0),
            "batchsync run --help": ([script, "run", "--help"], {}, 0),
            "completion TAB": ([script], complete, 0),
            "usage error (exit 2)": ([script, "run", "in.csv", "--concurrency", "0"], {}, 2),
            "run --dry-run, 1 row": (
                [
                    script,
                    "run",
                    str(one_row),
                    "--dry-run",
                    "-o",
                    str(work / "r.jsonl"),
                    "--overwrite",
                ],
                {},
                0,
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[float]] = {name: [] for name in commands}
        for rep in range(runs + 1):
            for name, (cmd, extra, want) in commands.items():
                proc = run_process(cmd, env=child_env(extra), timeout_s=60, cwd=work)
                if proc.returncode != want:
                    raise RuntimeError(
                        f"{name}: exit {proc.returncode}, wanted {want}: "
                        + proc.stderr.decode(errors="replace")[-500:]
                    )
                if rep:  # the first round only warms the file cache
                    walls[name].append(proc.wall_s)
                    rss[name].append(proc.max_rss_mb)
    base = median(walls['python -c "import click"'])
    results = {
        name: {
            "runs": len(ws),
            "wall_s": round(median(ws), 4),
            "min_s": round(min(ws), 4),
            "max_rss_mb": round(median(rss[name]), 1),
            "over_click": round(median(ws) / base, 3),
        }
        for name, ws in walls.items()
    }
    print(f"\nstartup: whole processes, median of {runs} (interleaved), {script}")
    print(
        format_table(
            ["command", "median s", "min s", "x import click", "peak RSS MB"],
            [
                [
                    name,
                    f"{r['wall_s']:.3f}",
                    f"{r['min_s']:.3f}",
                    fmt_ratio(float(r["over_click"])),
                    f"{r['max_rss_mb']:.0f}",
                ]
                for name, r in results.items()
            ],
        )
    )
    sends_nothing = ["batchsync --version", "batchsync run --help", "completion TAB"]
    worst = max(float(results[name]["over_click"]) for name in sends_nothing)
    met = worst <= TARGET_RATIO
    print(
        f"  worst of --version / run --help / TAB: {fmt_ratio(worst)} `import click` "
        f"(target <= {TARGET_RATIO}x: {'met' if met else 'MISSED'})"
    )
    path = save_results(
        "startup",
        {
            "settings": {"runs": runs, "script": script, "python": sys.version.split()[0]},
            "server": None,
            "contenders": results,
            "ratios": {"worst_over_import_click": round(worst, 3)},
            "targets_met": {"within_2_5x_of_import_click": met},
        },
        quick=args.quick,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
