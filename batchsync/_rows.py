"""The row schema: what one input row is, and the one set of rules that validates it.

Rules:

1. Tenants and connectors end up in URLs, so validation here is the security boundary: a
   tenant is a GUID or an ASCII DNS name, a connector is a GUID, nothing else gets through.
2. Every reader (CSV, JSONL, a library caller's mappings) accepts a row through
   ``RowRules.accept`` and explains a refusal through ``row_problems``: one source for both,
   so a rule changes in one place. ``tests/test_input.py`` checks that the three ways in
   agree on the same values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._errors import ErrorKind, ReportError

__all__ = [
    "CONNECTOR",
    "FIELD_NAMES",
    "SYNC",
    "TENANT",
    "InputFormat",
    "Item",
    "Rejected",
    "Row",
    "RowRules",
    "SyncType",
    "canonical_connector",
    "canonical_tenant",
    "field_of",
    "raw_value",
    "row_problems",
    "show_value",
]


class SyncType(enum.StrEnum):
    """The ``syncType`` of the Graph action, written canonically."""

    FULL = "fullSync"
    DELTA = "deltaSync"

    @classmethod
    def parse(cls, text: str) -> SyncType:
        """Match ``fullSync``/``deltaSync`` case-insensitively; raise ``ValueError`` otherwise."""
        found = SYNC_TYPES.get(text.strip().lower())
        if found is None:
            raise ValueError(f"{show_value(text)} is not a sync type; use fullSync or deltaSync")
        return found


SYNC_TYPES: Final[dict[str, SyncType]] = {s.value.lower(): s for s in SyncType}


class InputFormat(enum.StrEnum):
    """How the input is encoded (``--format``)."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Row:
    """One valid input row, canonical: lower-case tenant and connector, canonical syncType."""

    line: int
    tenant: str
    connector: str
    sync_type: SyncType
    extra: Mapping[str, str] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity for duplicates and ``--resume``: (tenant, connector, syncType)."""
        return (self.tenant, self.connector, self.sync_type.value)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A data row that cannot be run: ``invalid`` (kind input) or ``skipped`` (duplicate).

    ``tenant``, ``connector`` and ``sync_type`` hold the raw values (trimmed, cut to 200
    characters) when the row had them, for the report.
    """

    line: int
    tenant: str | None
    connector: str | None
    sync_type: str | None
    kind: ErrorKind
    code: str
    message: str
    extra: Mapping[str, str] | None = None

    @property
    def error(self) -> ReportError:
        """The refusal as the report states it."""
        return ReportError(self.kind, self.code, self.message)


Item: TypeAlias = Row | Rejected


def _row_factory() -> Callable[[int, str, str, SyncType, Mapping[str, str] | None], Row]:
    """``Row(...)`` without the frozen dataclass ``__init__``, which pays an
    ``object.__setattr__`` call per field: a third of the parse time at a million rows.
    Same object as ``Row(...)`` (a test checks it); only for values already validated.
    """
    new = object.__new__
    set_line, set_tenant, set_connector, set_sync, set_extra = (
        Row.__dict__[name].__set__ for name in ("line", "tenant", "connector", "sync_type", "extra")
    )

    def make(
        line: int, tenant: str, connector: str, sync: SyncType, extra: Mapping[str, str] | None
    ) -> Row:
        row = new(Row)
        set_line(row, line)
        set_tenant(row, tenant)
        set_connector(row, connector)
        set_sync(row, sync)
        set_extra(row, extra)
        return row

    return make


new_row: Final = _row_factory()

# --------------------------------------------------------------------------- values

_HEX = "[0-9A-Fa-f]"
GUID_RE: Final = re.compile(rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")
# RFC 1123 labels (ASCII letters, digits, inner hyphens), at least two labels, and a top-level
# label that starts with a letter (so no IP addresses). Explicit ASCII classes, no IGNORECASE:
# with IGNORECASE, [a-z] would also match the Kelvin sign and the long s.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE: Final = re.compile(rf"(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])")
_MAX_DOMAIN: Final = 253
_RAW_MAX: Final = 200  # raw values kept in Rejected
_TENANT_CACHE_MAX: Final = 16_384


def canonical_tenant(text: str) -> str | None:
    """A tenant GUID (braces allowed) or DNS domain name, lower-cased; None if it is neither."""
    if GUID_RE.fullmatch(text) or (len(text) <= _MAX_DOMAIN and _DOMAIN_RE.fullmatch(text)):
        return text.lower()
    if text[:1] == "{" and text[-1:] == "}" and GUID_RE.fullmatch(text, 1, len(text) - 1):
        return text[1:-1].lower()
    return None


def canonical_connector(text: str) -> str | None:
    """A GUID (``8-4-4-4-12`` hex, braces allowed) lower-cased without braces; None otherwise."""
    if GUID_RE.fullmatch(text):
        return text.lower()
    if text[:1] == "{" and text[-1:] == "}" and GUID_RE.fullmatch(text, 1, len(text) - 1):
        return text[1:-1].lower()
    return None


def show_value(value: str) -> str:
    """A short, escaped rendering of a user value for messages (repr escapes control chars)."""
    return repr(value if len(value) <= 60 else value[:60] + "...")


def raw_value(value: str) -> str | None:
    """A raw value as a Rejected keeps it: cut to 200 characters, None when empty."""
    return value[:_RAW_MAX] if value else None


# --------------------------------------------------------------------------- columns

TENANT: Final = "tenant"
CONNECTOR: Final = "connector"
SYNC: Final = "syncType"
FIELD_NAMES: Final = {
    TENANT: "tenant, tenantId, tenant_id",
    CONNECTOR: "connector, connectorId, connector_id, id",
    SYNC: "syncType, sync_type",
}
# Names as field_of sees them: case, spaces, '_' and '-' do not matter ("Tenant ID" is tenantid).
_ALIASES: Final[dict[str, str]] = {
    "tenant": TENANT,
    "tenantid": TENANT,
    "connector": CONNECTOR,
    "connectorid": CONNECTOR,
    "id": CONNECTOR,
    "synctype": SYNC,
}
_KEY_STRIP: Final = str.maketrans("", "", " _-")


def field_of(name: str) -> str | None:
    """The canonical field a column or key names, or None for an extra column."""
    return _ALIASES.get(name.strip().lower().translate(_KEY_STRIP))


# --------------------------------------------------------------------------- rules


class RowRules:
    """Accepts a row's trimmed values, fast, for one reader (it remembers valid tenants).

    ``accept`` returns the canonical ``Row`` or None; ``row_problems`` then says why. Both
    follow the same rules: a tenant GUID or domain, a connector GUID, a syncType that is
    empty (the default applies) or fullSync/deltaSync in any case.
    """

    __slots__ = ("_default", "_tenants")

    def __init__(self, default: SyncType) -> None:
        self._default = default
        # Tenants repeat (many connectors or rows per tenant): remember the valid ones, boundedly.
        self._tenants: dict[str, str] = {}

    def accept(
        self, line: int, t: str, c: str, s: str, extra: Mapping[str, str] | None
    ) -> Row | None:
        """The row for values already trimmed, or None when any of them is not valid."""
        tenants = self._tenants
        tenant = tenants.get(t)
        if tenant is None:
            tenant = canonical_tenant(t)
            if tenant is None:
                return None
            if len(tenants) < _TENANT_CACHE_MAX:
                tenants[t] = tenant
        connector = c.lower() if GUID_RE.fullmatch(c) else canonical_connector(c)
        if connector is None:
            return None
        sync = SYNC_TYPES.get(s.lower()) if s else self._default
        if sync is None:
            return None
        return new_row(line, tenant, connector, sync, extra)


def row_problems(
    tenant: tuple[str, str | None], connector: tuple[str, str | None], sync: tuple[str, str | None]
) -> list[tuple[str, str]]:
    """(code, message) for each bad value, given (column name, trimmed value) pairs.

    A value of None was already reported (a JSON value that is not a string) and is skipped.
    """
    problems: list[tuple[str, str]] = []
    name, value = tenant
    if value == "":
        problems.append(("missing_value", f"column {name!r}: no value"))
    elif value is not None and canonical_tenant(value) is None:
        problems.append(
            (
                "bad_tenant",
                f"column {name!r}: {show_value(value)} is not a tenant GUID or domain name",
            )
        )
    name, value = connector
    if value == "":
        problems.append(("missing_value", f"column {name!r}: no value"))
    elif value is not None and canonical_connector(value) is None:
        problems.append(("bad_connector", f"column {name!r}: {show_value(value)} is not a GUID"))
    name, value = sync
    if value and value.lower() not in SYNC_TYPES:
        problems.append(
            ("bad_sync_type", f"column {name!r}: {show_value(value)} is not fullSync or deltaSync")
        )
    return problems
