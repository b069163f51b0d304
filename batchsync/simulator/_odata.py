"""The small OData query subset the simulator understands: ``$filter`` equality and ``$select``.

``$filter`` (managed devices only): clauses ``property eq 'value'`` joined by ``and``, over
the properties the collection names (``operatingSystem``, ``complianceState``). Keywords and
property names are case-insensitive, values are single-quoted strings (``''`` is a quote)
compared case-insensitively; an enum property (``complianceState``) takes only its members.
Anything else (``or``, ``ne``, functions, parentheses, other properties, unquoted values)
is refused with the message Graph would give, so a client that sends more than the subset
learns it in a test, not in a customer tenant.

``$select``: comma-separated property names of the type (case-insensitive); the answer
keeps those and ``id``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["FILTER_NOT_ALLOWED", "QueryError", "Select", "parse_filter", "parse_select"]

FILTER_NOT_ALLOWED = (
    "Query option 'Filter' is not allowed. To allow it, set the 'AllowedQueryOptions' "
    "property on EnableQueryAttribute or QueryValidationSettings."
)
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][\w.]*)|(?P<other>\S))")


class QueryError(ValueError):
    """A query option the simulator (like Graph) refuses: its message is Graph's."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) of each token: ``string``, ``word`` or ``other``."""
    found: list[tuple[str, str, int]] = []
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space
            raise QueryError(f"Invalid filter clause: syntax error at position {position}.")
        kind = match.lastgroup or "other"
        found.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return found


def parse_filter(
    text: str, properties: Mapping[str, frozenset[str] | None], *, type_name: str
) -> tuple[tuple[str, str], ...]:
    """(property, lower-cased value) pairs that must all hold.

    ``properties`` maps each filterable property to its enum members (None: any string).
    """
    canonical = {name.lower(): name for name in properties}
    tokens = _tokens(text)
    clauses: list[tuple[str, str]] = []
    at = 0
    while True:
        clause = tokens[at : at + 3]
        if len(clause) < 3:
            where = clause[-1][2] if clause else len(text)
            raise QueryError(
                f"Invalid filter clause: syntax error at position {where} in '{text}'."
            )
        (kind1, name, pos1), (kind2, op, pos2), (kind3, value, pos3) = clause
        if kind1 != "word":
            raise QueryError(f"Invalid filter clause: syntax error at position {pos1} in '{text}'.")
        if kind2 != "word" or op.lower() != "eq":
            raise QueryError(
                f"Invalid filter clause: the operator '{op}' at position {pos2} is not supported "
                "here; use 'eq' clauses joined by 'and'."
            )
        prop = canonical.get(name.lower())
        if prop is None:
            raise QueryError(
                f"Invalid filter clause: filtering on '{name}' of '{type_name}' is not supported; "
                f"filterable properties: {', '.join(properties)}."
            )
        if kind3 != "string":
            raise QueryError(
                f"Invalid filter clause: expected a quoted string at position {pos3}, found "
                f"'{value}'."
            )
        literal = value[1:-1].replace("''", "'")
        members = properties[prop]
        if members is not None and literal.lower() not in {m.lower() for m in members}:
            raise QueryError(
                f"Invalid filter clause: the string '{literal}' is not a valid enumeration type "
                f"constant for '{prop}'."
            )
        clauses.append((prop, literal.lower()))
        at += 3
        if at == len(tokens):
            return tuple(clauses)
        kind, word, position = tokens[at]
        if kind != "word" or word.lower() != "and":
            raise QueryError(
                f"Invalid filter clause: '{word}' at position {position} is not supported here; "
                "clauses are joined by 'and'."
            )
        at += 1


@dataclasses.dataclass(frozen=True, slots=True)
class Select:
    """The properties a ``$select`` keeps (``id`` always), in the type's order."""

    names: tuple[str, ...]

    def apply(self, item: Mapping[str, object]) -> dict[str, object]:
        return {name: item[name] for name in self.names if name in item}

    def context_suffix(self) -> str:
        """``(id,deviceName)``: what Graph appends to ``@odata.context`` for a ``$select``."""
        return "(" + ",".join(self.names) + ")"


def parse_select(text: str, properties: Sequence[str], *, type_name: str) -> Select:
    """The ``$select`` of ``text`` over the type's ``properties``."""
    canonical = {name.lower(): name for name in properties}
    wanted: set[str] = {"id"}
    for raw in _split(text):
        name = canonical.get(raw.lower())
        if name is None:
            raise QueryError(f"Could not find a property named '{raw}' on type '{type_name}'.")
        wanted.add(name)
    return Select(tuple(name for name in properties if name in wanted))


def _split(text: str) -> Iterable[str]:
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise QueryError(f"Syntax error: character ',' is not valid in '$select={text}'.")
    return parts
