"""pip-audit's JSON report -> CI's verdict, one line on stderr.

A known advisory fails CI. An audit that could not be performed (pip-audit not installable,
the service unreachable, or packages it could not look up, which pip-audit itself counts as a
pass) says NOT PERFORMED and why, and fails CI only where AUDIT_REQUIRE_ONLINE=1.
Usage: audit_verdict.py REPORT.json PIP_AUDIT_EXIT_STATUS LOG
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _last_line(log: str) -> str:
    path = Path(log) if log else None
    lines = path.read_text(errors="replace").strip().splitlines() if path and path.is_file() else []
    return lines[-1][:300] if lines else "no output"


def _not_performed(why: str) -> int:
    strict = os.environ.get("AUDIT_REQUIRE_ONLINE") == "1"
    tail = "; failing: AUDIT_REQUIRE_ONLINE=1" if strict else ""
    print(f"dependency-audit: NOT PERFORMED: {why}{tail}", file=sys.stderr)
    return 1 if strict else 0


def main(report: str, rc: str, log: str = "") -> int:
    path = Path(report)
    try:
        deps: list[dict[str, Any]] = json.loads(path.read_text())["dependencies"]
    except (OSError, ValueError, KeyError, TypeError):
        return _not_performed(f"pip-audit exited {rc} without a report: {_last_line(log)}")
    found = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
    skipped = [d for d in deps if "skip_reason" in d]
    for name, version, v in found:
        fix = ", ".join(v.get("fix_versions") or []) or "no fix"
        aliases = ", ".join(v.get("aliases") or [])
        print(
            f"dependency-audit: FAIL: {name} {version}: {v['id']} ({aliases}) fixed in {fix}",
            file=sys.stderr,
        )
    if found:
        return 1
    if skipped:
        names = ", ".join(d["name"] for d in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        return _not_performed(
            f"{len(skipped)} of {len(deps)} packages could not be looked up ({names}: "
            f"{skipped[0]['skip_reason']})"
        )
    print(f"dependency-audit: ok ({len(deps)} packages, no known advisory)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
