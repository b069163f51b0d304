"""What happened in a run or a discover: live counters, exit status, human and JSON summaries.

The engine and ``discover`` only bump the counters here; the progress bar and the
end-of-run summary read them. Formatting is pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import Counter
from typing import Any, Final

import orjson

from ._errors import ConfigError, ErrorKind, ReportError
from ._files import open_output
from ._report import Outcome, Status
from ._tally import Tally, TenantTally

__all__ = [
    "DiscoverStats",
    "RunStats",
    "TenantFailure",
    "check_summary_path",
    "discover_exit_status",
    "exit_status",
    "format_discover_summary",
    "format_summary",
    "summary_dict",
    "write_summary_json",
]

_ORDER = ("ok", "failed", "invalid", "skipped", "planned")
_STATUS_NAMES: Final = {status: status.value for status in Status}
_TENANTS_SHOWN = 10
_FAILED_TENANTS_KEPT = 50
_TENANTS_KEPT = 100_000  # tenants a run's tally keeps by name: ~30 MB at most
_FAILURES_KEPT = 50


@dataclasses.dataclass(slots=True)
class RunStats:
    """Live counters of a run, read by the progress bar and the summary.

    What happened to each tenant is counted by ``_tally.Tally``, the same aggregation that
    ``batchsync report`` applies to a report; ``statuses`` stays a plain live counter for
    the progress bar.
    """

    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    throttled_answers: int = 0
    requests: int = 0
    paused_tenants: int = 0
    interrupted: bool = False
    stop_reason: str | None = None
    tally: Tally = dataclasses.field(default_factory=lambda: Tally(max_tenants=_TENANTS_KEPT))

    @property
    def rows_done(self) -> int:
        return sum(self.statuses.values())

    @property
    def elapsed_s(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(0.0, end - self.started)

    def record(self, outcome: Outcome) -> None:
        """Count one row's outcome (the engine calls this once per report line)."""
        status = _STATUS_NAMES[outcome.status]  # a plain str key, cheaper than .value
        self.statuses[status] += 1
        error = outcome.error
        if error is None:
            self.tally.add(outcome.fields.get("tenant"), status, throttled=outcome.throttled)
            return
        self.tally.add(
            outcome.fields.get("tenant"),
            status,
            throttled=outcome.throttled,
            kind=error.kind.value,
            code=error.code,
            message=error.message,
        )

    @property
    def error_kinds(self) -> Counter[str]:
        """Error kinds of the failed rows."""
        kinds: Counter[str] = Counter()
        for key, n in (self.tally.total.errors or {}).items():
            if key.status == "failed":
                kinds[key.kind] += n
        return kinds

    @property
    def error_codes(self) -> Counter[str]:
        """Error codes of the failed rows (rows without a code left out)."""
        codes: Counter[str] = Counter()
        for key, n in (self.tally.total.errors or {}).items():
            if key.status == "failed" and key.code:
                codes[key.code] += n
        return codes

    @property
    def failed_tenants(self) -> dict[str, str]:
        """The first tenants with a failed row (interruptions aside) and the first reason."""
        return {
            t.tenant: t.first_failure or ""
            for t in self.tally.failed_tenants()[:_FAILED_TENANTS_KEPT]
        }

    @property
    def failed_tenant_count(self) -> int:
        return len(self.tally.failed_tenants())


@dataclasses.dataclass(frozen=True, slots=True)
class TenantFailure:
    """Why one tenant could not be listed (a line of ``discover --errors``)."""

    tenant: str
    error: ReportError

    def to_json(self) -> bytes:
        """One ``--errors`` line, newline included."""
        doc: dict[str, str | None] = {
            "tenant": self.tenant,
            "kind": self.error.kind.value,
            "code": self.error.code,
            "message": self.error.message,
        }
        return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)


@dataclasses.dataclass(slots=True)
class DiscoverStats:
    """Counters of a discover; ``failures`` keeps the first few, ``failed`` counts all."""

    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    tenants: int = 0  # distinct tenants to list
    listed: int = 0
    failed: int = 0  # tenants that could not be listed
    invalid: int = 0  # input lines that are not a tenant
    empty: int = 0  # listed, with no connector
    connectors: int = 0  # connectors found
    written: int = 0  # rows written (connectors, less those --connected-only left out)
    left_out: int = 0  # not connected, left out by --connected-only
    requests: int = 0
    throttled_answers: int = 0
    paused_tenants: int = 0  # tenants sleeping out a Retry-After right now
    failures: list[TenantFailure] = dataclasses.field(default_factory=list)
    stop_reason: str | None = None

    @property
    def elapsed_s(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(0.0, end - self.started)

    def note_failure(self, failure: TenantFailure) -> None:
        if failure.error.kind is ErrorKind.INPUT:
            self.invalid += 1
        else:
            self.failed += 1
        if len(self.failures) < _FAILURES_KEPT:
            self.failures.append(failure)


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
        "tenants": len(stats.tally.tenants),
        "worst_tenants": [
            {
                "tenant": t.tenant,
                "rows": t.rows,
                **t.statuses(),
                "throttled": t.throttled,
                "error": _top_error(t),
            }
            for t in stats.tally.worst_first()[:_TENANTS_SHOWN]
            if t.problems or t.throttled
        ],
    }


def _top_error(t: TenantTally) -> dict[str, Any] | None:
    top = t.top_error()
    if top is None:
        return None
    key, count, message = top
    return {"kind": key.kind, "code": key.code, "rows": count, "message": message}


def check_summary_path(path: str) -> None:
    """``ConfigError`` (exit 2) now, before anything is sent, if ``--summary-json`` cannot be
    written: a side file must not be found broken only after every row was synced. Leaves
    an existing file as it is, and no new one behind."""
    existed = os.path.lexists(path)
    try:
        fd = open_output(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, what="--summary-json")
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; pick a writable path") from None
    os.close(fd)
    if not existed:
        with contextlib.suppress(OSError):
            os.unlink(path)


def write_summary_json(path: str, stats: RunStats) -> None:
    """``--summary-json``: the summary as one indented JSON document (never written through
    a symbolic link to a file: ``_files``)."""
    fd = open_output(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, what="--summary-json")
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(summary_dict(stats), option=orjson.OPT_INDENT_2))


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


def discover_exit_status(stats: DiscoverStats) -> int:
    """0 when every tenant was listed, 1 when any failed (or an input line was not a tenant)."""
    return 1 if stats.failed or stats.invalid else 0


def format_discover_summary(
    stats: DiscoverStats,
    *,
    connected_only: bool = False,
    object_label: str = "connector",
    kept: str = "connected",
    empty_label: str = "Exchange connector",
) -> str:
    """A few lines for stderr; the first always holds the counts.

    ``object_label`` names the listed objects ("connector rows written"), ``kept`` what
    ``--connected-only`` keeps ("4 not connected left out") and ``empty_label`` what a
    tenant without any lacks ("1 tenant has no Exchange connector").
    """
    lines = [
        f"batchsync discover: {stats.tenants} tenant{'' if stats.tenants == 1 else 's'}: "
        f"{stats.listed} listed, "
        f"{stats.failed} failed; {stats.written} {object_label} rows written"
        + (f" ({stats.left_out} not {kept} left out)" if connected_only else "")
    ]
    if stats.invalid:
        noun = "input line is" if stats.invalid == 1 else "input lines are"
        lines.append(f"  {stats.invalid} {noun} not a tenant (see above)")
    if stats.empty:
        noun = "tenant has" if stats.empty == 1 else "tenants have"
        lines.append(f"  {stats.empty} {noun} no {empty_label}")
    lines.append(
        f"  {stats.requests} requests, {stats.throttled_answers} throttled answers (429/503), "
        f"{stats.elapsed_s:.1f} s"
    )
    if stats.stop_reason:
        lines.append(f"  stopped early: {stats.stop_reason}")
    return "\n".join(lines)
