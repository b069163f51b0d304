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
    "CONNECTOR_COLUMNS",
    "OBJECT",
    "SYNC",
    "TENANT",
    "Columns",
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
    """One valid input row, canonical: lower-case tenant and object id, canonical syncType.

    ``object_id`` is the GUID the action acts on (the connector of an Exchange connector
    sync, a device, a VPP token...), None for an action on the tenant itself (Autopilot);
    ``sync_type`` is None for the actions that take none.
    """

    line: int
    tenant: str
    object_id: str | None
    sync_type: SyncType | None
    extra: Mapping[str, str] | None = None

    @property
    def connector(self) -> str | None:
        """The object id under the Exchange connector sync's name for it."""
        return self.object_id

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity for duplicates and ``--resume``: (tenant, object id, syncType), "" for
        what the action has none of."""
        return (self.tenant, self.object_id or "", self.sync_type.value if self.sync_type else "")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A data row that cannot be run: ``invalid`` (kind input) or ``skipped`` (duplicate).

    ``tenant``, ``object_id`` and ``sync_type`` hold the raw values (trimmed, cut to 200
    characters) when the row had them, for the report.
    """

    line: int
    tenant: str | None
    object_id: str | None
    sync_type: str | None
    kind: ErrorKind
    code: str
    message: str
    extra: Mapping[str, str] | None = None

    @property
    def connector(self) -> str | None:
        """The raw object id under the Exchange connector sync's name for it."""
        return self.object_id

    @property
    def error(self) -> ReportError:
        """The refusal as the report states it."""
        return ReportError(self.kind, self.code, self.message)


Item: TypeAlias = Row | Rejected


def _row_factory() -> Callable[
    [int, str, str | None, SyncType | None, Mapping[str, str] | None], Row
]:
    """``Row(...)`` without the frozen dataclass ``__init__``, which pays an
    ``object.__setattr__`` call per field: a third of the parse time at a million rows.
    Same object as ``Row(...)`` (a test checks it); only for values already validated.
    """
    new = object.__new__
    set_line, set_tenant, set_object, set_sync, set_extra = (
        Row.__dict__[name].__set__ for name in ("line", "tenant", "object_id", "sync_type", "extra")
    )

    def make(
        line: int,
        tenant: str,
        object_id: str | None,
        sync: SyncType | None,
        extra: Mapping[str, str] | None,
    ) -> Row:
        row = new(Row)
        set_line(row, line)
        set_tenant(row, tenant)
        set_object(row, object_id)
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
OBJECT: Final = "id"
SYNC: Final = "syncType"
_KEY_STRIP: Final = str.maketrans("", "", " _-")


def _normal(name: str) -> str:
    """A column or key name as aliases are matched: case, spaces, '_' and '-' do not matter
    ("Tenant ID" is tenantid)."""
    return name.strip().lower().translate(_KEY_STRIP)


@dataclass(frozen=True, slots=True)
class Columns:
    """The input columns an action takes: always the tenant; the id of the object it acts on
    under ``object_field`` (None for an action on the tenant itself); a syncType or not.

    ``object_names`` are the accepted names of the object column, as shown in messages and
    matched in any case. The default is the Exchange connector sync's (its ``id`` included).
    """

    object_field: str | None = CONNECTOR
    object_names: tuple[str, ...] = ("connector", "connectorId", "connector_id", "id")
    sync_type: bool = True

    def field_of(self, name: str) -> str | None:
        """The canonical field a column or key names, or None for an extra column."""
        return self._aliases().get(_normal(name))

    def _aliases(self) -> dict[str, str]:
        aliases = _ALIAS_CACHE.get(self)
        if aliases is None:
            aliases = {"tenant": TENANT, "tenantid": TENANT}
            if self.object_field is not None:
                aliases.update((_normal(n), self.object_field) for n in self.object_names)
            if self.sync_type:
                aliases["synctype"] = SYNC
            _ALIAS_CACHE[self] = aliases
        return aliases

    def names(self, field: str) -> str:
        """The accepted names of a field, for a message."""
        if field == TENANT:
            return "tenant, tenantId, tenant_id"
        if field == SYNC:
            return "syncType, sync_type"
        return ", ".join(self.object_names)

    @property
    def required(self) -> tuple[str, ...]:
        """The fields every row must have."""
        return (TENANT,) if self.object_field is None else (TENANT, self.object_field)


_ALIAS_CACHE: Final[dict[Columns, dict[str, str]]] = {}
CONNECTOR_COLUMNS: Final = Columns()


def field_of(name: str, columns: Columns = CONNECTOR_COLUMNS) -> str | None:
    """The canonical field a column or key names, or None for an extra column."""
    return columns.field_of(name)


# --------------------------------------------------------------------------- rules


class RowRules:
    """Accepts a row's trimmed values, fast, for one reader (it remembers valid tenants).

    ``accept`` returns the canonical ``Row`` or None; ``row_problems`` then says why. Both
    follow the same rules: a tenant GUID or domain; an object GUID when the action acts on
    one (else its value is not read); when the action takes a syncType, one that is empty
    (the default applies) or fullSync/deltaSync in any case (else it is not read).
    """

    __slots__ = ("_default", "_object", "_sync", "_tenants")

    def __init__(self, default: SyncType, columns: Columns = CONNECTOR_COLUMNS) -> None:
        self._default = default
        self._object = columns.object_field is not None
        self._sync = columns.sync_type
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
        object_id: str | None = None
        if self._object:
            object_id = c.lower() if GUID_RE.fullmatch(c) else canonical_connector(c)
            if object_id is None:
                return None
        sync: SyncType | None = None
        if self._sync:
            sync = SYNC_TYPES.get(s.lower()) if s else self._default
            if sync is None:
                return None
        return new_row(line, tenant, object_id, sync, extra)


def row_problems(
    tenant: tuple[str, str | None],
    obj: tuple[str, str | None] | None,
    sync: tuple[str, str | None] | None,
    *,
    object_field: str = CONNECTOR,
) -> list[tuple[str, str]]:
    """(code, message) for each bad value, given (column name, trimmed value) pairs; None for
    a field the action does not take. A bad object id is ``bad_connector`` for the Exchange
    connector sync, ``bad_id`` for the others.

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
    if obj is not None:
        name, value = obj
        if value == "":
            problems.append(("missing_value", f"column {name!r}: no value"))
        elif value is not None and canonical_connector(value) is None:
            problems.append(
                (
                    f"bad_{object_field.lower()}",
                    f"column {name!r}: {show_value(value)} is not a GUID",
                )
            )
    if sync is not None:
        name, value = sync
        if value and value.lower() not in SYNC_TYPES:
            problems.append(
                (
                    "bad_sync_type",
                    f"column {name!r}: {show_value(value)} is not fullSync or deltaSync",
                )
            )
    return problems
