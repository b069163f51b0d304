"""Keeps ``benchmarks/`` from rotting: one script end to end at its smoke size.

No timing is asserted (speed is measured in ``benchmarks/``, never in tests); this only
checks that the script runs against its local server and writes a well-formed result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_overhead_quick_runs_and_writes_results(tmp_path: Path) -> None:
    """`overhead.py --quick` runs batchsync and the bare loop and writes both to its JSON."""
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--quick", "--rows", "200"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert b"rows/s" in proc.stdout
    doc = json.loads((tmp_path / "overhead.quick.json").read_text())
    assert doc["settings"]["rows"] == 200
    assert {"batchsync", "bare"} <= set(doc["contenders"])
    for contender in doc["contenders"].values():
        assert contender["runs"] == 1
        assert contender["samples"][0]["server"]["syncs"] == 200
