"""The end-of-run summary: pure formatting of ``RunStats`` for stderr and ``--summary-json``."""

from __future__ import annotations

from typing import Any

from ._engine import RunStats

__all__ = ["exit_status", "format_summary", "summary_dict"]

_ORDER = ("ok", "failed", "invalid", "skipped", "planned")
_TENANTS_SHOWN = 10


def exit_status(stats: RunStats) -> int:
    """The contract's exit status for a finished (or interrupted) run."""
    if stats.interrupted:
        return 130
    if stats.statuses.get("failed", 0) or stats.statuses.get("invalid", 0):
        return 1
    return 0


def summary_dict(stats: RunStats) -> dict[str, Any]:
    elapsed = stats.elapsed_s
    return {
        "rows": stats.rows_done,
        "statuses": {k: stats.statuses.get(k, 0) for k in _ORDER},
        "error_kinds": dict(stats.error_kinds.most_common()),
        "error_codes": dict(stats.error_codes.most_common(10)),
        "requests": stats.requests,
        "throttled": stats.throttled_answers,
        "failed_tenants": stats.failed_tenant_count,
        "failed_tenants_first": dict(stats.failed_tenants),
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(stats.rows_done / elapsed, 1) if elapsed > 0 else None,
        "interrupted": stats.interrupted,
        "stopped": stats.stop_reason,
        "exit_status": exit_status(stats),
    }


def format_summary(stats: RunStats) -> str:
    """A few human lines; the first always holds the counts."""
    d = summary_dict(stats)
    counts = ", ".join(f"{n} {k}" for k, n in d["statuses"].items() if n)
    lines = [f"batchsync: {d['rows']} rows: {counts or 'nothing to do'}"]
    rate = d["rows_per_s"]
    lines.append(
        f"  {d['requests']} requests, {d['throttled']} throttled answers (429/503), "
        f"{d['elapsed_s']:.1f} s" + (f", {rate:g} rows/s" if rate else "")
    )
    if d["error_kinds"]:
        kinds = ", ".join(f"{k} {n}" for k, n in d["error_kinds"].items())
        codes = ", ".join(f"{k} {n}" for k, n in d["error_codes"].items())
        lines.append(f"  failures by kind: {kinds}" + (f"; by code: {codes}" if codes else ""))
    if stats.failed_tenants:
        lines.append(f"  tenants with failures: {stats.failed_tenant_count}")
        for tenant, why in list(stats.failed_tenants.items())[:_TENANTS_SHOWN]:
            lines.append(f"    {tenant}: {why}")
        more = stats.failed_tenant_count - min(_TENANTS_SHOWN, len(stats.failed_tenants))
        if more > 0:
            lines.append(f"    ... and {more} more (see the report)")
    if stats.stop_reason:
        lines.append(f"  run stopped: {stats.stop_reason}")
    if stats.interrupted:
        lines.append("  interrupted: run the same command with --resume to finish the job")
    return "\n".join(lines)
