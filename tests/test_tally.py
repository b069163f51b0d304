"""Per-tenant aggregation: what happened to each tenant, worst first, and what to do."""

from __future__ import annotations

from batchsync._tally import ErrorKey, Tally, next_step


def _tally() -> Tally:
    t = Tally()
    t.add("a", "ok", throttled=2)
    t.add("b", "failed", kind="auth", code="AADSTS65001", message="consent, please")
    t.add("b", "failed", kind="auth", code="AADSTS65001", message="later message")
    t.add("b", "failed", kind="interrupted", message="stopped")
    t.add("c", "invalid", kind="input", code="tenant", message="bad tenant")
    t.add(None, "skipped", kind="duplicate", code="duplicate", message="dup")
    t.add("a", "planned")
    return t


def test_counts_per_status_and_throttled_answers() -> None:
    """Totals and each tenant count rows per status and the throttled answers of their rows."""
    t = _tally()
    assert t.total.statuses() == {"ok": 1, "failed": 3, "invalid": 1, "skipped": 1, "planned": 1}
    assert (t.total.rows, t.total.throttled, t.total.problems) == (7, 2, 4)
    assert (t.tenants["a"].rows, t.tenants["a"].throttled) == (2, 2)
    assert t.tenants[""].skipped == 1  # a line without a tenant is still counted


def test_errors_of_failed_and_invalid_rows_only() -> None:
    """Errors count for failed and invalid rows; a duplicate's error is not a problem."""
    t = _tally()
    assert t.total.errors == {
        ErrorKey("failed", "auth", "AADSTS65001"): 2,
        ErrorKey("failed", "interrupted", None): 1,
        ErrorKey("invalid", "input", "tenant"): 1,
    }
    assert t.tenants[""].errors is None


def test_most_common_error_keeps_its_first_message() -> None:
    """A tenant's top error is its most frequent one, with the first message seen for it."""
    top = _tally().tenants["b"].top_error()
    assert top == (ErrorKey("failed", "auth", "AADSTS65001"), 2, "consent, please")


def test_first_failure_ignores_interruptions() -> None:
    """The reason a tenant failed is its first failed row that was not interrupted."""
    t = Tally()
    t.add("x", "failed", kind="interrupted", message="stopped")
    assert t.tenants["x"].first_failure is None
    t.add("x", "failed", kind="http", code="Forbidden", message="no role")
    assert t.tenants["x"].first_failure == "http: no role"


def test_worst_tenants_come_first() -> None:
    """Tenants with the most failed or invalid rows first, then throttled, then larger ones."""
    assert [t.tenant for t in _tally().worst_first()] == ["b", "c", "a", ""]


def test_every_error_kind_has_a_next_step() -> None:
    """Each contract error kind (and Graph's common codes) gets a one-line next step."""
    kinds = ["auth", "throttled", "http", "network", "timeout", "input", "duplicate", "interrupted"]
    for kind in kinds:
        step = next_step(kind, None)
        assert step
        assert "\n" not in step
    assert "discover" in next_step("http", "ResourceNotFound")
    assert "Intune Administrator" in next_step("http", "Forbidden")
