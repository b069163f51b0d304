"""What happened to each tenant: rows per status, throttled answers, the errors and what to do.

One implementation, fed one final outcome at a time: the engine counts a run's outcomes with
it (the end-of-run summary, ``--summary-json``) and ``batchsync report`` counts a report's
settled lines with it. Pure: no I/O, no clock; memory is a few hundred bytes per tenant
(errors only for tenants that have them), never the rows.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Final, NamedTuple

__all__ = ["ErrorKey", "Tally", "TenantTally", "next_step"]

_NO_TENANT: Final = ""


class ErrorKey(NamedTuple):
    """An error as counted: the row's status (failed or invalid), kind and code."""

    status: str
    kind: str
    code: str | None


@dataclasses.dataclass(slots=True)
class TenantTally:
    """One tenant's rows (or, as ``Tally.total``, the whole run's)."""

    tenant: str
    rows: int = 0
    ok: int = 0
    failed: int = 0
    invalid: int = 0
    skipped: int = 0
    planned: int = 0
    throttled: int = 0  # throttled answers (429, 503/504 with Retry-After) its rows met
    errors: Counter[ErrorKey] | None = None  # failed and invalid rows only
    messages: dict[ErrorKey, str] | None = None  # the first message of each error
    first_failure: str | None = None  # "kind: message" of its first failed row (not interrupted)

    @property
    def problems(self) -> int:
        """Rows that make the exit status 1."""
        return self.failed + self.invalid

    def top_error(self) -> tuple[ErrorKey, int, str] | None:
        """The most common error (the first seen among equals), its count and first message."""
        if not self.errors:
            return None
        key, count = self.errors.most_common(1)[0]
        return key, count, (self.messages or {}).get(key, "")

    def statuses(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "planned": self.planned,
        }


class Tally:
    """Totals and one ``TenantTally`` per tenant, in the order tenants first appeared.

    ``max_tenants`` bounds the tenants kept by name (a run's memory stays flat on any
    input); rows of tenants beyond it count in ``total`` and in ``rows_untracked`` only.
    """

    __slots__ = ("max_tenants", "rows_untracked", "tenants", "total")

    def __init__(self, *, max_tenants: int | None = None) -> None:
        self.total = TenantTally("")
        self.tenants: dict[str, TenantTally] = {}
        self.max_tenants = max_tenants
        self.rows_untracked = 0

    def add(
        self,
        tenant: str | None,
        status: str,
        *,
        throttled: int = 0,
        kind: str | None = None,
        code: str | None = None,
        message: str = "",
    ) -> None:
        """Count one final outcome (``kind``/``code``/``message``: its error, if any)."""
        name = tenant or _NO_TENANT
        one = self.tenants.get(name)
        if one is None:
            if self.max_tenants is not None and len(self.tenants) >= self.max_tenants:
                self.rows_untracked += 1
                one = TenantTally(name)  # counted, then dropped
            else:
                one = self.tenants[name] = TenantTally(name)
        total = self.total
        total.rows += 1
        one.rows += 1
        if throttled:
            total.throttled += throttled
            one.throttled += throttled
        # Unrolled, ok first: this runs once a row (a million-row dry run counts each).
        if status == "ok":
            total.ok += 1
            one.ok += 1
        elif status == "planned":
            total.planned += 1
            one.planned += 1
        elif status == "failed":
            total.failed += 1
            one.failed += 1
        elif status == "invalid":
            total.invalid += 1
            one.invalid += 1
        elif status == "skipped":
            total.skipped += 1
            one.skipped += 1
        if kind is None or status not in ("failed", "invalid"):
            return
        key = ErrorKey(status, kind, code or None)
        for t in (self.total, one):
            if t.errors is None:
                t.errors, t.messages = Counter(), {}
            t.errors[key] += 1
            assert t.messages is not None
            t.messages.setdefault(key, message)
            if status == "failed" and kind != "interrupted" and t.first_failure is None:
                t.first_failure = f"{kind}: {message}"

    def failed_tenants(self) -> list[TenantTally]:
        """Tenants with a failed row that was not interrupted, in order of appearance."""
        return [t for t in self.tenants.values() if t.first_failure is not None and t.tenant]

    def worst_first(self) -> list[TenantTally]:
        """Tenants by rows that failed or are invalid, then failed, throttled answers, rows."""
        return sorted(
            self.tenants.values(),
            key=lambda t: (-t.problems, -t.failed, -t.throttled, -t.rows, t.tenant),
        )

    def __repr__(self) -> str:
        return f"<Tally tenants={len(self.tenants)} rows={self.total.rows}>"


_STEPS: Final = {
    "auth": "fix the tenant's sign-in or consent as the message says, then run again with --resume",
    "throttled": "run again later with --resume (or a lower --tenant-rate)",
    "network": "a network failure: run again with --resume",
    "timeout": "no answer in time: run again with --resume (or a longer --timeout)",
    "input": "fix this row of the input, then run again with --resume",
    "duplicate": "nothing to do: the same row appears earlier in the input",
    "interrupted": "the run was stopped: run the same command again with --resume",
}
_HTTP_STEPS: Final = {
    "Forbidden": "give the account the Intune Administrator role in this tenant (GDAP), or "
    "consent the app's permission there, then run again with --resume",
    "Authorization_RequestDenied": "give the account the Intune Administrator role in this "
    "tenant (GDAP), then run again with --resume",
    "ResourceNotFound": "the object (connector, device, token...) is not in this tenant: list "
    "them again with `batchsync discover` (with the run's --action) and run the new list",
    "BadRequest": "Graph refused the request as the message says; fix the row",
}


def next_step(kind: str, code: str | None) -> str:
    """One line saying what to do about an error, for people reading a report."""
    if kind == "http":
        step = _HTTP_STEPS.get(code or "")
        if step:
            return step
        return (
            "a service error: run again with --resume; if it stays, open a ticket with "
            "Microsoft quoting the request_id"
        )
    return _STEPS.get(kind, "see the message, then run again with --resume")
