"""Settling report lines: each row's final outcome is its last line, in bounded memory."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchsync._filters import line_key
from batchsync._settle import Settler, _LastOrdinal, report_line_problem
from batchsync.actions import DEFAULT_ACTION

T = "contoso.onmicrosoft.com"
C1 = "a2701597-be3f-59c6-9697-3e92078e447e"
C2 = "6b7c8c6a-4cfa-508e-85bc-afc81e49a02e"


def _line(line: int, status: str, connector: str | None = C1, **more: Any) -> dict[str, Any]:
    return {
        "line": line,
        "tenant": T,
        "connector": connector,
        "syncType": "fullSync",
        "status": status,
        **more,
    }


def _finals(docs: list[dict[str, Any]]) -> list[int]:
    settler = Settler(unnamed_action=DEFAULT_ACTION)
    for doc in docs:
        settler.add(doc)
    return list(settler.in_line_order())


def test_the_last_line_of_a_row_wins() -> None:
    """A row that failed and then succeeded (a resumed run) settles to its ok line."""
    assert _finals([_line(1, "failed"), _line(2, "ok", C2), _line(1, "ok")]) == [2, 1]


def test_rows_are_keyed_as_resume_keys_them() -> None:
    """Case and spacing of tenant and connector do not make another row (resume's key)."""
    again = _line(1, "ok", connector=" " + C1.upper(), tenant=T.upper())
    assert _finals([_line(1, "failed"), again]) == [1]
    assert line_key(again, unnamed_action=DEFAULT_ACTION) == line_key(
        _line(1, "failed"), unnamed_action=DEFAULT_ACTION
    )


def test_a_duplicate_line_never_replaces_the_row_it_repeats() -> None:
    """A `duplicate` line shares its row's key but stands for its own input line."""
    dup = _line(7, "skipped", error={"kind": "duplicate", "code": "duplicate", "message": "m"})
    docs = [_line(3, "failed"), dup, _line(3, "ok"), dict(dup)]
    assert _finals(docs) == [2, 3]  # line 3's ok, then line 7's last duplicate line


def test_an_invalid_line_is_superseded_by_a_later_row_on_its_line() -> None:
    """An invalid line (no complete row) gives way when its line later holds a real row."""
    invalid = _line(4, "invalid", connector=None)
    assert _finals([invalid, _line(4, "ok")]) == [1]
    assert _finals([invalid, dict(invalid)]) == [1]  # re-run, still invalid: once


def test_final_lines_come_in_line_order() -> None:
    """Shards concatenated out of order come back ordered by line, ties in report order."""
    docs = [_line(5, "ok", C2), _line(2, "ok"), {**_line(2, "ok"), "tenant": "b.example"}]
    assert _finals(docs) == [1, 2, 0]


def test_what_is_not_a_report_line() -> None:
    """A list, a line without a number or without a known status is not a report line."""
    assert report_line_problem([1]) == "not a JSON object"
    assert report_line_problem({"status": "ok"}) == "no line number"
    assert report_line_problem({"line": True, "status": "ok"}) == "no line number"
    assert report_line_problem({"line": 1, "status": "done"}) is not None
    assert report_line_problem(_line(1, "ok")) is None


def test_the_table_grows_and_keeps_every_key() -> None:
    """The open-addressing table keeps the last ordinal of every key across growth."""
    table = _LastOrdinal(2)
    for i in range(5000):
        table.put(i * 7919 - 2**62, i)
    for i in range(0, 5000, 2):
        table.put(i * 7919 - 2**62, 10_000 + i)
    assert sorted(table.ordinals()) == sorted(
        [10_000 + i for i in range(0, 5000, 2)] + list(range(1, 5000, 2))
    )


_docs = st.lists(
    st.tuples(
        st.integers(1, 6),
        st.sampled_from([C1, C2, None]),
        st.sampled_from(["ok", "failed", "invalid", "skipped"]),
    ),
    max_size=40,
)


@given(_docs)
def test_settling_matches_a_plain_model(items: list[tuple[int, str | None, str]]) -> None:
    """Whatever the lines, the finals are what a dict of last lines per identity gives."""
    docs = []
    for line, connector, status in items:
        doc = _line(line, status, connector)
        if status == "skipped":
            doc["error"] = {"kind": "duplicate"}
        docs.append(doc)
    model: dict[Any, int] = {}
    for i, doc in enumerate(docs):
        key = line_key(doc, unnamed_action=DEFAULT_ACTION)
        if key is None or doc.get("error"):
            model[("line", doc["line"])] = i
        else:
            model[key] = i
            if model.get(("line", doc["line"]), i) < i:
                del model[("line", doc["line"])]
    want = sorted(model.values(), key=lambda i: (docs[i]["line"], i))
    assert _finals(docs) == want
