"""Which items go on: --shard (a stable tenant split), duplicates, --resume keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from _input_support import G1, HEADER, parse

from batchsync._errors import ErrorKind
from batchsync._filters import _SeenKeys, drop_duplicates, in_shard, parse_shard, read_resume_keys
from batchsync._rows import (
    Item,
    Rejected,
    Row,
    SyncType,
)
from batchsync.actions import DEFAULT_ACTION

TENANTS = [f"tenant{i}.onmicrosoft.com" for i in range(500)] + [
    f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(500)
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", (1, 1)), ("3/8", (3, 8)), (" 2 / 4 ", (2, 4)), ("8/8", (8, 8))],
)
def test_parse_shard_accepts_k_of_n(text: str, expected: tuple[int, int]) -> None:
    """K/N with 1 <= K <= N parses to (K, N)."""
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "text", ["0/3", "4/3", "1/0", "-1/3", "a/b", "3", "", "1/3/5", "1.0/3", "\u0661/\u0663", "1/"]
)
def test_parse_shard_rejects_bad_text(text: str) -> None:
    """Anything but K/N with 1 <= K <= N is a ValueError that shows the expected form."""
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_every_tenant_lands_in_exactly_one_shard(n: int) -> None:
    """N shards cover every tenant once: none lost, none in two shards."""
    for tenant in TENANTS:
        assert sum(in_shard(tenant, k, n) for k in range(1, n + 1)) == 1


def test_shards_cover_all_rows_once_and_never_split_a_tenant() -> None:
    """Rows split by shard add up to the input, and one tenant's rows share one shard."""
    rows = [(t, c) for t in TENANTS[:200] for c in range(5)]
    n = 4
    shards = {k: [r for r in rows if in_shard(r[0], k, n)] for k in range(1, n + 1)}
    assert sorted(r for part in shards.values() for r in part) == sorted(rows)
    owner: dict[str, int] = {}
    for k, part in shards.items():
        for tenant, _ in part:
            assert owner.setdefault(tenant, k) == k


def test_shard_ignores_case_space_and_guid_braces() -> None:
    """The same tenant in another case, with spaces or a braced GUID stays in its shard."""
    for tenant in TENANTS:
        variants = (
            [f"  {tenant.upper()} ", "{" + tenant + "}"] if "-" in tenant else [tenant.upper()]
        )
        for k in range(1, 6):
            for variant in variants:
                assert in_shard(tenant, k, 5) == in_shard(variant, k, 5)


def test_shards_are_reasonably_balanced() -> None:
    """With 1,000 tenants and 4 shards, no shard is empty or takes most of them."""
    counts = Counter(next(k for k in range(1, 5) if in_shard(t, k, 4)) for t in TENANTS)
    assert set(counts) == {1, 2, 3, 4}
    assert max(counts.values()) < 400


def test_shard_is_the_same_in_another_process() -> None:
    """Processes with different hash seeds put every tenant in the same shard."""
    code = (
        "import sys\n"
        "from batchsync._filters import in_shard\n"
        "tenants = sys.stdin.read().split()\n"
        "print(''.join(str(next(k for k in range(1, 8) if in_shard(t, k, 7))) for t in tenants))\n"
    )
    here = "".join(str(next(k for k in range(1, 8) if in_shard(t, k, 7))) for t in TENANTS)
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input="\n".join(TENANTS),
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == here


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (1, 0)])
def test_in_shard_rejects_bad_k_n(k: int, n: int) -> None:
    """in_shard refuses a shard number outside 1..N."""
    with pytest.raises(ValueError, match="K/N"):
        in_shard("contoso.com", k, n)


def test_duplicates_are_skipped_naming_the_first_line() -> None:
    """A repeated (tenant, connector, syncType) becomes a duplicate of the first line."""
    data = (
        f"{HEADER}contoso.com,{G1},\nCONTOSO.COM,{G1.upper()},deltaSync\n"
        f"contoso.com,{G1},fullSync\nbad,,\ncontoso.com,{G1},\n"
    )
    found = list(drop_duplicates(parse(data)))
    assert [
        (i.line, type(i).__name__, i.kind if isinstance(i, Rejected) else None) for i in found
    ] == [
        (1, "Row", None),
        (2, "Rejected", ErrorKind.DUPLICATE),
        (3, "Row", None),
        (4, "Rejected", ErrorKind.INPUT),
        (5, "Rejected", ErrorKind.DUPLICATE),
    ]
    dup = found[1]
    assert isinstance(dup, Rejected)
    assert dup.code == "duplicate"
    assert "line 1" in dup.message
    assert (dup.tenant, dup.connector, dup.sync_type) == ("contoso.com", G1, "deltaSync")


def test_duplicates_keep_extra() -> None:
    """A duplicate keeps the row's extra columns for the report."""
    rows: list[Item] = [
        Row(1, "a.com", G1, SyncType.FULL),
        Row(2, "a.com", G1, SyncType.FULL, {"n": "x"}),
    ]
    found = list(drop_duplicates(rows))
    assert isinstance(found[1], Rejected)
    assert found[1].extra == {"n": "x"}


def _many_duplicates(n: int) -> Iterator[Item]:
    for line in range(1, n + 1):
        yield Row(line, "contoso.com", G1, SyncType.DELTA)


def test_many_duplicates_stay_cheap() -> None:
    """100,000 copies of one row keep a single key in memory and all name line 1."""
    dedup = drop_duplicates(_many_duplicates(100_000))
    assert isinstance(next(dedup), Row)
    skipped = 0
    for item in dedup:
        assert isinstance(item, Rejected)
        assert item.message.startswith("duplicate of line 1 ")
        skipped += 1
        if skipped == 99_998:
            # White-box: the table of seen keys, not the rows, is what stays in memory.
            frame = getattr(dedup, "gi_frame", None)
            assert frame is not None
            assert len(frame.f_locals["seen"]) == 1
    assert skipped == 99_999


def test_duplicate_detection_memory_is_small_per_key() -> None:
    """20,000 distinct keys cost well under 100 bytes each (1M rows stay under ~100 MB)."""
    rows = [Row(n, f"t{n}.com", G1, SyncType.DELTA) for n in range(1, 20_001)]
    tracemalloc.start()
    try:
        for _ in drop_duplicates(rows):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000 * 100


def test_seen_keys_grow_and_remember_first_lines() -> None:
    """The key table keeps every first line across many growths."""
    seen = _SeenKeys(log2_size=4)
    keys = [(f"t{i}.com", G1, "deltaSync") for i in range(20_000)]
    keys += [(G1, f"t{i}.com", "deltaSync") for i in range(100)]  # the same values, swapped
    for line, key in enumerate(keys, start=1):
        assert seen.first_line(key, line) is None
    assert len(seen) == len(keys)
    for line, key in enumerate(keys, start=1):
        assert seen.first_line(key, 10**6) == line
    assert len(seen) == len(keys)


def _outcome_line(status: str, **error: str) -> bytes:
    doc = {
        "line": 1,
        "tenant": "contoso.onmicrosoft.com",
        "connector": G1,
        "syncType": "fullSync",
        "status": status,
        "error": error or None,
    }
    return orjson.dumps(doc) + b"\n"


def test_resume_keys_only_ok_rows(tmp_path: Path) -> None:
    """Only rows that ended ok are skipped by --resume; failed ones run again."""
    path = tmp_path / "r.jsonl"
    failed = _outcome_line("failed", kind="http", message="x")
    path.write_bytes(failed + b"not json\n" + b"[1]\n")
    done, count = read_resume_keys(str(path), unnamed_action=DEFAULT_ACTION)
    assert done == set()
    assert count == 3
