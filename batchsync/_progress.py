"""Live progress on stderr (tqdm), fed from the engine's ``RunStats`` a few times a second.

Kept off the hot path: the engine only bumps counters; this task reads them every
``interval_s``. Never writes to stdout, which carries the report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import IO

from ._summary import RunStats

__all__ = ["estimate_rows", "progress_postfix", "show_progress"]

_COUNT_LIMIT_BYTES = 256 * 1024 * 1024


def estimate_rows(path: str) -> int | None:
    """Data rows in a file, counted cheaply (non-blank, non-``#`` lines, minus a CSV header).

    None for stdin, non-files, very large files and unreadable ones: then the bar shows no
    total.
    """
    if path == "-" or not os.path.isfile(path) or os.path.getsize(path) > _COUNT_LIMIT_BYTES:
        return None
    rows = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                text = raw.strip().lstrip(b"\xef\xbb\xbf")
                if text and not text.startswith(b"#"):
                    rows += 1
    except OSError:
        return None  # no total then; the run's own read says what is wrong with the file
    if not path.lower().endswith((".jsonl", ".ndjson")):
        rows = max(0, rows - 1)  # the CSV header
    return rows


_BAR_KNOWN = (
    "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} rows, {rate_fmt}, ETA {remaining}{postfix}"
)
_BAR_UNKNOWN = "{n_fmt} rows, {rate_fmt}, {elapsed} elapsed{postfix}"


def progress_postfix(stats: RunStats) -> str:
    """The live counters after the bar: tenants paused right now, 429/503s seen, rows failed."""
    failed = stats.statuses.get("failed", 0) + stats.statuses.get("invalid", 0)
    paused = stats.paused_tenants
    return (
        f"{paused} tenant{'' if paused == 1 else 's'} paused, "
        f"{stats.throttled_answers} throttled, {failed} failed"
    )


async def show_progress(
    stats: RunStats, *, total: int | None, stream: IO[str] | None = None, interval_s: float = 0.25
) -> None:
    """Run until cancelled, drawing rows done/total, rows/s, ETA and paused tenants.

    Without a total (stdin, huge files) the bar shows the count, rate and elapsed time.
    The last state is drawn once more when cancelled, then the bar is cleared (the summary
    follows on stderr).
    """
    from tqdm import tqdm  # only when a bar is shown: not every run pays for the import

    bar = tqdm(
        total=total,
        unit=" rows",  # rate_fmt is "{rate}{unit}/s": "37.5 rows/s"
        file=stream or sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        leave=False,
        bar_format=_BAR_KNOWN if total is not None else _BAR_UNKNOWN,
    )
    shown = 0

    def draw() -> None:
        nonlocal shown
        done = stats.rows_done
        if done > shown:
            bar.update(done - shown)
            shown = done
        bar.set_postfix_str(progress_postfix(stats), refresh=False)
        bar.refresh()

    try:
        while True:
            draw()
            await asyncio.sleep(interval_s)
    finally:
        draw()
        bar.close()
