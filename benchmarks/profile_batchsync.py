"""Where batchsync's time goes: the fleet or overhead scenario under py-spy.

``python benchmarks/profile_batchsync.py fleet|overhead|input [--quick] [--gil] [--run-args ARGS]``

Runs the same ``python -m batchsync run`` as ``fleet.py`` / ``overhead.py`` / ``input.py``
(same server, latencies and options; ``input`` is a 200,000-row ``--dry-run``) under
``py-spy record --format speedscope`` (``pip install py-spy``), writes
``benchmarks/results/profile-{scenario}[-{tag}][-gil].speedscope.json`` (speedscope.app
opens it) and prints the busy seconds per thread, the top functions (inclusive and self) and a
breakdown by cost centre (MSAL app construction, discovery, token requests, TLS handshakes,
report writes, input parsing, the engine, the Graph send, ...). ``--gil`` samples only the
thread holding the GIL: the CPU the event loop competes for. Without it, every thread that
is not idle counts, so MSAL's pool threads show up while they wait on the network.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from _common import (
    RESULTS_DIR,
    FastServer,
    batchsync_cmd,
    child_env,
    scratch_dir,
    tenant_ids,
    write_csv,
)
from speedscope_top import summarize

# Cost centres: a label -> a text that appears in the frames of that cost (file or function).
CENTRES: dict[str, str] = {
    "MSAL app construction (ClientApplication.__init__)": "ClientApplication.__init__",
    "MSAL authority / OIDC discovery": "tenant_discovery",
    "MSAL acquire_token_for_client": "acquire_token_for_client",
    "requests (MSAL's HTTP)": "requests/sessions.py",
    "TLS handshakes (any thread)": "do_handshake",
    "SSLContext creation": "create_default_context",
    "token provider (batchsync/_auth.py)": "batchsync/_auth.py",
    "engine (batchsync/_engine.py)": "batchsync/_engine.py",
    "Graph send (batchsync/_graph.py)": "batchsync/_graph.py",
    "aiohttp client request": "aiohttp/client.py",
    "report writes (batchsync/_report.py)": "batchsync/_report.py",
    "input parsing (batchsync/_input.py)": "batchsync/_input.py",
    "duplicate detection (drop_duplicates)": "drop_duplicates",
    "report line encoding (encode_outcome)": "encode_outcome",
    "report timestamps (rfc3339)": "rfc3339",
    "os.write of report lines": "ReportWriter.write_bytes",
    "aiohttp proxy lookup per request (trust_env)": "get_env_proxy_for_url",
    "thread hops (ThreadPoolExecutor.submit)": "ThreadPoolExecutor.submit",
    "uuid4": "uuid4",
    "aiolimiter": "aiolimiter/",
    "pacing (batchsync/_pacing.py)": "batchsync/_pacing.py",
    "logging": "logging/__init__.py",
    "imports at start-up": "_find_and_load",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["fleet", "overhead", "input"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--tenants", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--run-args", default="", help="extra `batchsync run` options, quoted")
    parser.add_argument("--tag", default="", help="a name for this profile's file")
    args = parser.parse_args()
    extra = shlex.split(args.run_args)
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    if args.scenario == "fleet":
        tenants = args.tenants or (60 if args.quick else 2000)
        per_tenant = 1
        server = FastServer(token_latency_s=0.08, graph_latency_s=0.12, discovery_latency_s=0.03)
        options: dict[str, object] = {"concurrency": 32}
    elif args.scenario == "overhead":
        tenants = args.tenants or 10
        per_tenant = (args.rows or (2000 if args.quick else 20_000)) // tenants
        server = FastServer()
        options = {"concurrency": 32, "tenant_rate": "1000000/1"}
    else:
        tenants = args.tenants or 1000
        per_tenant = (args.rows or (20_000 if args.quick else 200_000)) // tenants
        server = FastServer()  # started but unused: a dry run sends nothing
        options = {"extra": ["--dry-run", *extra]}
    suffix = (f"-{args.tag}" if args.tag else "") + ("-gil" if args.gil else "")
    out = RESULTS_DIR / f"profile-{args.scenario}{suffix}.speedscope.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with scratch_dir() as work, server:
        csv = work / "input.csv"
        rows = write_csv(csv, tenant_ids(tenants, f"profile-{uuid.uuid4()}"), per_tenant)
        cmd = batchsync_cmd(
            server,
            csv,
            work / "report.jsonl",
            work / "summary.json",
            **{"extra": extra, **options},  # type: ignore[arg-type]
        )
        spy = ["py-spy", "record", "-o", str(out), "--format", "speedscope", "-r", str(args.rate)]
        spy += ["--gil"] if args.gil else []
        proc = subprocess.run(
            [*spy, "--", *cmd],
            env=child_env({"BATCHSYNC_CLIENT_SECRET": server.client_secret}),
            capture_output=True,
            check=False,
        )
        summary_path = work / "summary.json"
        summary = summary_path.read_text() if summary_path.exists() else "{}"
    if proc.returncode != 0:
        sys.exit(f"batchsync under py-spy failed ({proc.returncode}): {proc.stderr[-2000:]!r}")
    s = summarize(Path(out), tuple(CENTRES.values()))
    print(f"{args.scenario}: {rows} rows over {tenants} tenants; batchsync summary: {summary}")
    busy = ", ".join(f"{k.split(' ', 2)[-1]} {v:.1f} s" for k, v in s.threads.items())
    print(f"busy samples {s.total:.1f} s{' (GIL holder only)' if args.gil else ''}: {busy}")
    print("\n-- cost centres (share of busy samples with that frame on the stack) --")
    for label, needle in CENTRES.items():
        print(f"{100 * s.needle_share(needle):5.1f}%  {label}")
    for which in ("inclusive", "self"):
        print(f"\n-- top {args.top} functions by {which} share --")
        for label, share in s.top(which, args.top):
            print(f"{100 * share:5.1f}%  {label}")
    print(f"\nprofile: {out}")


if __name__ == "__main__":
    main()
