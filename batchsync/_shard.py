"""``--shard K/N``: split one input across N processes or machines by tenant.

The hash must be the same in every process and on every machine, so it is blake2b of the
canonical tenant, never Python's ``hash()`` (salted per process). All rows of one tenant land
in the same shard, so per-tenant pacing and tokens stay in one process. A tenant written once
as a GUID and once as a domain name is two different tenants here: nothing can tell they are
the same without asking Entra.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["in_shard", "parse_shard"]

_SHARD_RE = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"K/N"`` into ``(K, N)``; raise ``ValueError`` unless ``1 <= K <= N``."""
    m = _SHARD_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"shard must be K/N, such as 2/8; got {text[:40]!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, such as 2/8; got {k}/{n}")
    return k, n


def in_shard(tenant: str, k: int, n: int) -> bool:
    """True when ``tenant`` belongs to shard ``k`` of ``n`` (1-based), the same everywhere."""
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N; got {k}/{n}")
    canonical = tenant.strip().lower()
    if canonical[:1] == "{" and canonical[-1:] == "}":  # a braced GUID, as _input accepts it
        canonical = canonical[1:-1]
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n == k - 1
