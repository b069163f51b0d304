"""Live progress on stderr (tqdm), fed from the engine's ``RunStats`` a few times a second.

Kept off the hot path: the engine only bumps counters; this task reads them every
``interval_s``. Never writes to stdout, which carries the report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import IO

from tqdm import tqdm

from ._engine import RunStats

__all__ = ["estimate_rows", "show_progress"]

_COUNT_LIMIT_BYTES = 256 * 1024 * 1024


def estimate_rows(path: str) -> int | None:
    """Data rows in a file, counted cheaply (non-blank, non-``#`` lines, minus a CSV header).

    None for stdin, non-files and very large files: then the bar shows no total.
    """
    if path == "-" or not os.path.isfile(path) or os.path.getsize(path) > _COUNT_LIMIT_BYTES:
        return None
    rows = 0
    with open(path, "rb") as fh:
        for raw in fh:
            text = raw.strip().lstrip(b"\xef\xbb\xbf")
            if text and not text.startswith(b"#"):
                rows += 1
    if not path.lower().endswith((".jsonl", ".ndjson")):
        rows = max(0, rows - 1)  # the CSV header
    return rows


async def show_progress(
    stats: RunStats, *, total: int | None, stream: IO[str] | None = None, interval_s: float = 0.25
) -> None:
    """Run until cancelled, drawing rows done/total, rate, ETA and paused tenants."""
    bar = tqdm(
        total=total,
        unit="row",
        file=stream or sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        leave=False,
    )
    shown = 0
    try:
        while True:
            done = stats.rows_done
            if done > shown:
                bar.update(done - shown)
                shown = done
            failed = stats.statuses.get("failed", 0) + stats.statuses.get("invalid", 0)
            bar.set_postfix(
                failed=failed,
                throttled=stats.throttled_answers,
                paused=stats.paused_tenants,
                refresh=False,
            )
            bar.refresh()
            await asyncio.sleep(interval_s)
    finally:
        bar.close()
