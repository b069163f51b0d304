"""Summarise a py-spy speedscope profile: where the samples went, per thread and per function.

``python benchmarks/speedscope_top.py PROFILE.json [--top 25] [--match TEXT]``

Prints, for all threads together, the functions with the most sampled time *inclusive* (the
function or anything it called was on the stack) and *self* (the function itself was on
top), as a share of all samples; ``--match`` keeps only frames whose file or name contains
the text (e.g. ``batchsync/`` or ``msal``). Idle samples are absent unless py-spy was run
with ``--idle``, so shares are of CPU-busy time.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any

__all__ = ["Summary", "summarize"]


class Summary:
    """Sampled seconds per frame label, inclusive and self, and per thread."""

    def __init__(self, total: float, threads: dict[str, float]) -> None:
        self.total = total  # seconds of samples (py-spy weights each sample by its interval)
        self.threads = threads
        self.inclusive: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.self_: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.needles: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<Summary samples={self.total} threads={len(self.threads)}>"

    def share(self, weight: float) -> float:
        return weight / self.total if self.total else 0.0

    def top(self, which: str, count: int, match: str = "") -> list[tuple[str, float]]:
        """The ``count`` labels with the largest share (``which``: inclusive or self)."""
        table = self.inclusive if which == "inclusive" else self.self_
        ranked = sorted(table.items(), key=lambda kv: kv[1], reverse=True)
        return [(k, self.share(v)) for k, v in ranked if match in k][:count]

    def needle_share(self, needle: str) -> float:
        """Share of samples with a frame containing ``needle`` (given to ``summarize``)."""
        return self.share(self.needles.get(needle, 0.0))


def _label(frame: dict[str, Any]) -> str:
    file = str(frame.get("file", ""))
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{frame.get('name', '?')} ({file}:{frame.get('line', '?')})"


def summarize(path: Path, needles: tuple[str, ...] = ()) -> Summary:
    """Read a speedscope file written by ``py-spy record --format speedscope``."""
    doc = json.loads(path.read_text())
    frames = [_label(f) for f in doc["shared"]["frames"]]
    threads: dict[str, float] = {}
    total = 0.0
    per_stack: list[tuple[list[int], float]] = []
    for profile in doc["profiles"]:
        weights = profile.get("weights") or [1.0] * len(profile["samples"])
        busy = float(sum(weights))
        if busy:
            threads[str(profile.get("name", "?"))] = busy
        total += busy
        per_stack.extend(zip(profile["samples"], weights, strict=True))
    summary = Summary(total, threads)
    any_counts: dict[str, float] = dict.fromkeys(needles, 0.0)
    for stack, weight in per_stack:
        labels = [frames[i] for i in stack]
        for label in set(labels):
            summary.inclusive[label] += weight
        if labels:
            summary.self_[labels[-1]] += weight
        joined = "\n".join(labels)
        for needle in needles:
            if needle in joined:
                any_counts[needle] += weight
    summary.needles = any_counts
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    s = summarize(args.profile)
    busy = ", ".join(f"{k} {v:.1f} s" for k, v in s.threads.items())
    print(f"{s.total:.1f} s of busy samples; threads: {busy}")
    for which in ("inclusive", "self"):
        print(f"\n-- top {args.top} by {which} share --")
        for label, share in s.top(which, args.top, args.match):
            print(f"{100 * share:5.1f}%  {label}")


if __name__ == "__main__":
    main()
