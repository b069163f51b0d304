"""Tests for ``--shard K/N``: parsing and the stable tenant split."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from batchsync._filters import in_shard, parse_shard

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
