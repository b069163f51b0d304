"""Memory: peak RSS of a 1,000,000-row dry run and a 200,000-row run stays under a fixed bound.

``python benchmarks/memory.py [--quick] [--dry-rows 1000000] [--run-rows 200000]
[--run-tenants 2000] [--keep]``

* dry run: ``batchsync run INPUT --dry-run`` over a generated CSV (rows interleaved across
  ``--dry-tenants`` tenants), report to /dev/null.
* real run: ``batchsync simulator --write-limit 0`` in its own process, then
  ``batchsync run INPUT --tenant-rate 1000000/1`` against it (refresh-token auth), every row
  expected ``ok``.

Each ``batchsync`` runs in its own subprocess; its peak RSS is its own ``VmHWM``, read at
exit (``ru_maxrss`` from ``os.wait4`` is kept for reference: Linux counts the forking
parent's RSS into it), and ``VmRSS`` is sampled from /proc every 0.2 s to show the curve
(max per quarter of the run: a flat curve means memory does not grow with rows read,
except for the duplicate check, which keeps ~32-48 bytes per distinct key). The figures
go to stdout and ``benchmarks/results/memory.json``; the exit status is 1 when a peak
passes its bound.

Where memory goes: the interpreter and imports (~55 MB); the duplicate check
(``_input._SeenKeys``, per distinct key); at most ``EngineSettings.lookahead`` rows in the
engine; per tenant with rows in flight a lane, and per tenant seen its token state.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from _common import (
    PY,
    base_parser,
    child_env,
    save_results,
    scratch_dir,
    tenant_ids,
    write_csv,
)

DRY_BOUND_MB = 160.0  # 1M-row dry run (measured ~110 MB: ~55 MB interpreter + imports)
RUN_BOUND_MB = 200.0  # 200k-row run against the simulator
_SAMPLE_S = 0.2


def _vm_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure(cmd: list[str], env: dict[str, str], work: Path, *, timeout_s: float) -> dict[str, Any]:
    """Run ``cmd`` (a ``_measured_batchsync``); exit code, wall time, peak RSS (the child's
    VmHWM), ``ru_maxrss`` from wait4 for reference, and the RSS curve sampled from /proc."""
    peak_file = work / "peak.txt"
    peak_file.unlink(missing_ok=True)
    env = dict(env, BATCHSYNC_BENCH_PEAK_FILE=str(peak_file))
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(_SAMPLE_S):
            rss = _vm_rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - start, rss))

    stderr: list[bytes] = []
    sampler = threading.Thread(target=sample, daemon=True)
    reader = threading.Thread(
        target=lambda: stderr.append(proc.stderr.read() if proc.stderr else b""), daemon=True
    )
    sampler.start()
    reader.start()
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        done.set()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    reader.join(timeout=10)
    quarters = [0.0, 0.0, 0.0, 0.0]
    for at, rss in samples:
        q = min(3, int(4 * at / wall)) if wall > 0 else 0
        quarters[q] = max(quarters[q], rss)
    hwm = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    return {
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(hwm, 1),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_mb_max_per_quarter": [round(x, 1) for x in quarters],
        "stderr_tail": b"".join(stderr)[-600:].decode(errors="replace"),
    }


# ``python -m batchsync`` that writes, at exit, its own peak RSS (VmHWM, KiB) to the file
# named by BATCHSYNC_BENCH_PEAK_FILE. ``ru_maxrss`` from wait4 also counts the RSS of the
# process that forked the child (Linux carries the pre-exec high-water mark over), so it is
# only an upper bound; VmHWM is the child's own.
_MEASURED_CLI = """
import atexit, os, runpy

def _write_peak():
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BATCHSYNC_BENCH_PEAK_FILE"], "w", encoding="ascii") as out:
        out.write(str(kib))

atexit.register(_write_peak)
runpy.run_module("batchsync", run_name="__main__", alter_sys=True)
"""


def _batchsync(*args: str) -> list[str]:
    return [PY, "-m", "batchsync", *args]


def _measured_batchsync(*args: str) -> list[str]:
    return [PY, "-c", _MEASURED_CLI, *args]


def dry_run(work: Path, rows: int, tenants: int) -> dict[str, Any]:
    csv = work / "dry.csv"
    written = write_csv(csv, tenant_ids(tenants, "memory-dry"), rows // tenants)
    summary = work / "dry-summary.json"
    result = measure(
        _measured_batchsync(
            "run", str(csv), "--dry-run", "-o", "/dev/null", "-q", "--no-progress",
            "--summary-json", str(summary),
        ),
        child_env(),
        work,
        timeout_s=1800,
    )  # fmt: skip
    doc = orjson.loads(summary.read_bytes()) if summary.exists() else {}
    result.update(rows=written, tenants=tenants, statuses=doc.get("statuses"))
    result["ok"] = result["returncode"] == 0 and doc.get("statuses", {}).get("planned") == written
    return result


class Simulator:
    """``batchsync simulator`` in its own process; its export lines become the client env."""

    def __init__(self, work: Path) -> None:
        self._err_path = work / "simulator.err"
        self._proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Simulator:
        with self._err_path.open("wb") as err:
            self._proc = subprocess.Popen(
                _batchsync("simulator", "--port", "0", "--write-limit", "0"),
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 60
        while len(self.env) < 5:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start: {self._err_path.read_text()}")
            time.sleep(0.1)
            for line in self._err_path.read_text().splitlines():
                m = re.fullmatch(r"export (\w+)='?(.*?)'?", line.strip())
                if m:
                    self.env[m.group(1)] = m.group(2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def real_run(work: Path, rows: int, tenants: int, concurrency: int) -> dict[str, Any]:
    csv = work / "run.csv"
    written = write_csv(csv, tenant_ids(tenants, f"memory-run-{time.time_ns()}"), rows // tenants)
    summary = work / "run-summary.json"
    with Simulator(work) as sim:
        result = measure(
            _measured_batchsync(
                "run", str(csv), "-o", "/dev/null", "-q", "--no-progress",
                "--summary-json", str(summary), "--tenant-rate", "1000000/1",
                "--concurrency", str(concurrency),
            ),
            child_env(sim.env),
            work,
            timeout_s=3600,
        )  # fmt: skip
    doc = orjson.loads(summary.read_bytes()) if summary.exists() else {}
    result.update(
        rows=written,
        tenants=tenants,
        concurrency=concurrency,
        statuses=doc.get("statuses"),
        rows_per_s=doc.get("rows_per_s"),
    )
    result["ok"] = result["returncode"] == 0 and doc.get("statuses", {}).get("ok") == written
    return result


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "memory")
    parser.add_argument("--dry-rows", type=int, default=1_000_000)
    parser.add_argument("--dry-tenants", type=int, default=10_000)
    parser.add_argument("--run-rows", type=int, default=200_000)
    parser.add_argument("--run-tenants", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-run", action="store_true", help="only the dry run")
    args = parser.parse_args()
    if args.quick:
        args.dry_rows, args.dry_tenants, args.run_rows, args.run_tenants = 100_000, 1000, 5000, 50
    results: dict[str, Any] = {
        "bounds_mb": {"dry_run": DRY_BOUND_MB, "run": RUN_BOUND_MB},
        "settings": {k: v for k, v in vars(args).items() if k not in ("keep", "runs")},
    }
    with scratch_dir(keep=args.keep) as work:
        dry = dry_run(work, args.dry_rows, args.dry_tenants)
        results["dry_run"] = dry
        print(
            f"dry run  {dry['rows']:>9,} rows: peak RSS {dry['peak_rss_mb']:6.1f} MB "
            f"(bound {DRY_BOUND_MB:g}), {dry['wall_s']:.1f} s, per quarter "
            f"{dry['rss_mb_max_per_quarter']}{'' if dry['ok'] else '  NOT OK'}"
        )
        if not args.skip_run:
            run = real_run(work, args.run_rows, args.run_tenants, args.concurrency)
            results["run"] = run
            print(
                f"real run {run['rows']:>9,} rows ({run['tenants']} tenants): peak RSS "
                f"{run['peak_rss_mb']:6.1f} MB (bound {RUN_BOUND_MB:g}), {run['wall_s']:.1f} s, "
                f"{run['rows_per_s']} rows/s, per quarter "
                f"{run['rss_mb_max_per_quarter']}{'' if run['ok'] else '  NOT OK'}"
            )
    path = save_results("memory", results, quick=args.quick)
    print(f"wrote {path}")
    failed = [
        name
        for name, bound in (("dry_run", DRY_BOUND_MB), ("run", RUN_BOUND_MB))
        if name in results and (results[name]["peak_rss_mb"] > bound or not results[name]["ok"])
    ]
    for name in failed:
        print(f"{name}: over its bound or not every row ended as expected", file=sys.stderr)
        print(results[name]["stderr_tail"], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
