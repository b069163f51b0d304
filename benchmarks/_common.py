"""Shared benchmark plumbing: the fast server, input files, measured subprocesses, results.

Every client (batchsync's CLI and each baseline) runs in its own subprocess, and the server
in another, so that on a 2-core machine neither shares an event loop with what is measured.
A client's time is reported twice: ``work_s``, measured by the client itself from before its
first action (batchsync: ``--summary-json`` ``elapsed_s``, which starts before the token
provider is built and ends when the last row is done; baselines: before reading the input
to the last answer), and ``wall_s``, the whole process including interpreter start and
imports. Peak RSS comes from ``os.wait4`` (``ru_maxrss`` of that child alone), so no psutil.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "CLIENT_ID",
    "PY",
    "REPO_DIR",
    "RESULTS_DIR",
    "BatchsyncRun",
    "FastServer",
    "Measured",
    "Proc",
    "Sample",
    "base_parser",
    "baseline_cmd",
    "batchsync_cmd",
    "child_env",
    "connector_id",
    "fmt_ratio",
    "format_table",
    "machine_info",
    "median",
    "parse_baseline",
    "run_baseline",
    "run_batchsync",
    "run_process",
    "save_results",
    "scratch_dir",
    "summarize_samples",
    "tenant_ids",
    "write_csv",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results")
PY = sys.executable
CLIENT_ID = "0b7c1f0e-5a1d-4b6e-8f3a-2c9d4e5f6a7b"  # any GUID: the fast server checks the secret
_NS = uuid.UUID("6f1d2b3c-4a5e-4f60-8a7b-9c0d1e2f3a4b")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- input ---------------------------------------------------------------------------------


def tenant_ids(count: int, salt: str) -> list[str]:
    """``count`` tenant GUIDs; a new ``salt`` per run gives tenants no server has seen."""
    return [str(uuid.uuid5(_NS, f"{salt}/tenant-{i}")) for i in range(count)]


def connector_id(tenant: str, index: int) -> str:
    return str(uuid.uuid5(_NS, f"{tenant}/connector-{index}"))


def write_csv(path: Path, tenants: Sequence[str], per_tenant: int) -> int:
    """Rows interleaved across tenants (as an export of many tenants would be); the count."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("tenant,connector,syncType\n")
        for j in range(per_tenant):
            sync = "fullSync" if j % 2 else "deltaSync"
            f.writelines(f"{t},{connector_id(t, j)},{sync}\n" for t in tenants)
            rows += len(tenants)
    return rows


@contextlib.contextmanager
def scratch_dir(keep: bool = False) -> Iterator[Path]:
    """A temporary directory for inputs and reports (removed unless ``keep``)."""
    path = Path(tempfile.mkdtemp(prefix="batchsync-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- processes -----------------------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for clients: no stray credentials or endpoints, no proxy for 127.0.0.1."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATCHSYNC_", "AZURE_", "FASTSERVER_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


@dataclasses.dataclass(frozen=True, slots=True)
class Proc:
    """What one measured subprocess did."""

    returncode: int
    wall_s: float
    max_rss_mb: float
    cpu_s: float  # user + system
    stdout: bytes
    stderr: bytes


def run_process(
    cmd: Sequence[str], *, env: Mapping[str, str], timeout_s: float = 900.0, cwd: Path | None = None
) -> Proc:
    """Run ``cmd`` to its end; wall time, peak RSS and CPU of that child alone (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd
        )
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Proc(
            returncode=proc.returncode,
            wall_s=wall,
            max_rss_mb=usage.ru_maxrss / 1024,  # Linux: KiB
            cpu_s=usage.ru_utime + usage.ru_stime,
            stdout=out.read(),
            stderr=err.read(),
        )


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


class FastServer:
    """``benchmarks/fastserver.py`` in its own process; a context manager."""

    def __init__(
        self,
        *,
        token_latency_s: float = 0.0,
        graph_latency_s: float = 0.0,
        discovery_latency_s: float = 0.0,
        limit: int = 0,
        window_s: float = 1.0,
        retry_after: str = "seconds",
        limit_schedule: str = "",
        graph_latency_max_s: float = 0.0,
        busy_share: float = 0.0,
        busy_retry_after_s: float = 1.0,
        error_share: float = 0.0,
        drop_share: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.settings: dict[str, Any] = {
            "server": "benchmarks/fastserver.py",
            "token_latency_s": token_latency_s,
            "graph_latency_s": graph_latency_s,
            "discovery_latency_s": discovery_latency_s,
            "limit": limit,
            "window_s": window_s,
            "retry_after": retry_after,
        }
        # Faults and a changing limit (throttle.py): named only when used.
        extra: dict[str, Any] = {
            "limit_schedule": limit_schedule,
            "graph_latency_max_s": graph_latency_max_s,
            "busy_share": busy_share,
            "busy_retry_after_s": busy_retry_after_s if busy_share else 0,
            "error_share": error_share,
            "drop_share": drop_share,
            "seed": seed,
        }
        self.settings.update({k: v for k, v in extra.items() if v})
        self.client_secret = secrets.token_urlsafe(24)
        self.client_id = CLIENT_ID
        self.url = ""
        self.ca_pem = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._ssl: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"<FastServer {self.url or 'not started'} {self.settings}>"

    def __enter__(self) -> FastServer:
        s = self.settings
        cmd = [
            PY,
            str(BENCH_DIR / "fastserver.py"),
            f"--token-latency={s['token_latency_s']}",
            f"--graph-latency={s['graph_latency_s']}",
            f"--discovery-latency={s['discovery_latency_s']}",
            f"--limit={s['limit']}",
            f"--window={s['window_s']}",
            f"--retry-after={s['retry_after']}",
        ]
        flags = {
            "limit_schedule": "--limit-schedule",
            "graph_latency_max_s": "--graph-latency-max",
            "busy_share": "--busy-share",
            "busy_retry_after_s": "--busy-retry-after",
            "error_share": "--error-share",
            "drop_share": "--drop-share",
            "seed": "--seed",
        }
        cmd += [f"{flag}={s[key]}" for key, flag in flags.items() if key in s]
        env = child_env({"FASTSERVER_CLIENT_SECRET": self.client_secret})
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=None, stdin=subprocess.DEVNULL, env=env
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the fast server did not start (see its stderr above)")
        ready = json.loads(line)
        self.url, self.ca_pem = ready["url"], ready["ca_pem"]
        self._ssl = ssl.create_default_context(cafile=self.ca_pem)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (to tell whether it was the bottleneck)."""
        return _proc_cpu_s(self.pid)

    def stats(self) -> dict[str, int]:
        """The server's counters (cumulative since it started)."""
        with urllib.request.urlopen(  # noqa: S310 - our own https://127.0.0.1 URL
            f"{self.url}/_bench/stats", context=self._ssl, timeout=10
        ) as resp:
            data: dict[str, int] = json.loads(resp.read())
        return data

    def measure(self, cmd: Sequence[str], *, env: Mapping[str, str], timeout_s: float) -> Measured:
        """Run a client against this server: the process figures plus the server's share."""
        before, cpu_before = self.stats(), self.cpu_s()
        proc = run_process(cmd, env=env, timeout_s=timeout_s)
        cpu = self.cpu_s() - cpu_before
        after = self.stats()
        delta = {k: after[k] - before.get(k, 0) for k in after}
        return Measured(
            proc=proc, server=delta, server_busy=cpu / proc.wall_s if proc.wall_s else 0
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Measured:
    proc: Proc
    server: dict[str, int]  # counter deltas over the run (connections: new distinct peers)
    server_busy: float  # server CPU seconds / client wall seconds (1.0 = one core saturated)


# --- batchsync and the baselines -------------------------------------------------------------


def batchsync_cmd(
    server: FastServer,
    input_path: Path,
    report: Path,
    summary: Path,
    *,
    concurrency: int | None = None,
    token_concurrency: int | None = None,
    tenant_rate: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m batchsync run`` against the fast server, app-only auth, quiet."""
    cmd = [
        PY,
        "-m",
        "batchsync",
        "run",
        str(input_path),
        "-o",
        str(report),
        "--summary-json",
        str(summary),
        "--no-progress",
        "-q",
        "--auth",
        "app",
        "--client-id",
        server.client_id,
        "--graph-url",
        server.url,
        "--authority-host",
        server.url,
        "--ca-bundle",
        server.ca_pem,
    ]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    if token_concurrency is not None:
        cmd += ["--token-concurrency", str(token_concurrency)]
    if tenant_rate is not None:
        cmd += ["--tenant-rate", tenant_rate]
    return cmd + list(extra)


@dataclasses.dataclass(frozen=True, slots=True)
class BatchsyncRun:
    """One batchsync run: the measured process and its own summary."""

    measured: Measured
    summary: dict[str, Any]

    @property
    def work_s(self) -> float:
        return float(self.summary.get("elapsed_s", self.measured.proc.wall_s))

    @property
    def ok(self) -> int:
        statuses = self.summary.get("statuses", {})
        return int(statuses.get("ok", 0)) + int(statuses.get("planned", 0))

    def check(self, rows: int) -> None:
        """A run that did not end every row ok/planned measured something else: stop."""
        proc = self.measured.proc
        if proc.returncode != 0 or self.ok != rows:
            raise RuntimeError(
                f"batchsync exited {proc.returncode} with {self.ok}/{rows} rows ok: "
                + proc.stderr.decode(errors="replace")[-2000:]
            )


def run_batchsync(
    server: FastServer,
    input_path: Path,
    workdir: Path,
    *,
    timeout_s: float = 900.0,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> BatchsyncRun:
    """Run the CLI once (fresh report file) and read its ``--summary-json``."""
    tag = uuid.uuid4().hex[:8]
    report, summary = workdir / f"report-{tag}.jsonl", workdir / f"summary-{tag}.json"
    cmd = batchsync_cmd(server, input_path, report, summary, **options)
    env = child_env({"BATCHSYNC_CLIENT_SECRET": server.client_secret, **(env or {})})
    measured = server.measure(cmd, env=env, timeout_s=timeout_s)
    data: dict[str, Any] = {}
    if summary.exists():
        data = json.loads(summary.read_bytes())
    with contextlib.suppress(FileNotFoundError):
        report.unlink()
    return BatchsyncRun(measured=measured, summary=data)


def baseline_cmd(
    kind: str, server: FastServer | None, input_path: Path, **options: Any
) -> list[str]:
    """``python benchmarks/baselines.py KIND ...`` (see that module for each baseline)."""
    cmd = [PY, str(BENCH_DIR / "baselines.py"), kind, "--input", str(input_path)]
    if server is not None:
        cmd += ["--url", server.url, "--ca-pem", server.ca_pem, "--client-id", server.client_id]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return cmd


def run_baseline(
    kind: str, server: FastServer, input_path: Path, *, timeout_s: float = 900.0, **options: Any
) -> tuple[Measured, dict[str, Any]]:
    """Run one baseline against the server; its own JSON result (``work_s``, counts)."""
    env = child_env({"BENCH_CLIENT_SECRET": server.client_secret})
    measured = server.measure(
        baseline_cmd(kind, server, input_path, **options), env=env, timeout_s=timeout_s
    )
    return measured, parse_baseline(kind, measured.proc)


def parse_baseline(kind: str, proc: Proc) -> dict[str, Any]:
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"baseline {kind} exited {proc.returncode}: "
            + proc.stderr.decode(errors="replace")[-2000:]
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One client run, reduced to what the tables and the JSON keep."""

    work_s: float
    wall_s: float
    max_rss_mb: float
    cpu_s: float
    server_busy: float
    server: dict[str, int]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, measured: Measured, work_s: float, **extra: Any) -> Sample:
        p = measured.proc
        return cls(
            work_s=round(work_s, 4),
            wall_s=round(p.wall_s, 4),
            max_rss_mb=round(p.max_rss_mb, 1),
            cpu_s=round(p.cpu_s, 3),
            server_busy=round(measured.server_busy, 3),
            server=measured.server,
            extra=extra,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarize_samples(samples: Sequence[Sample]) -> dict[str, Any]:
    """Medians over runs, and the runs themselves."""
    return {
        "runs": len(samples),
        "work_s": median([s.work_s for s in samples]),
        "wall_s": median([s.wall_s for s in samples]),
        "max_rss_mb": median([s.max_rss_mb for s in samples]),
        "cpu_s": median([s.cpu_s for s in samples]),
        "server_busy": median([s.server_busy for s in samples]),
        "samples": [s.as_dict() for s in samples],
    }


# --- numbers and output ----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table (first column left, the others right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                return round(int(text.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _git_dirty() -> list[str] | None:
    """Files of the package with uncommitted changes (the figures are of that tree)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "batchsync"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (they mean little without it)."""
    return {
        "cpu": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": _mem_total_gb(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            d: _version(d)
            for d in (
                "batchsync",
                "aiohttp",
                "uvloop",
                "msal",
                "requests",
                "msgraph-sdk",
                "azure-identity",
                "httpx",
            )
        },
        "git_commit": _git_commit(),
        "uncommitted_package_files": _git_dirty(),
    }


_STARTED = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
_AT_START = machine_info()  # the script imports this module first: this is its start


def save_results(name: str, payload: Mapping[str, Any], *, quick: bool) -> Path:
    """Write ``benchmarks/results/{name}.json`` (``{name}.quick.json`` for ``--quick``)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")
    doc = {
        "benchmark": name,
        "quick": quick,
        "started_at": _STARTED,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _AT_START,
        **payload,
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small smoke size")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return parser
