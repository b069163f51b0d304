"""The run over time: rows finished per tenant, throttled answers and pauses, in buckets.

Pure: fed each final outcome's tenant, times and throttled answers, it keeps 14 bytes a row
(tenant index, start and finish as float32 seconds from the first row, throttled count),
and lays them out in ``buckets`` time slots per lane only when asked, once the lanes (the
tenants worth a line of their own) are known. A report holds no pause events, so a pause
is drawn where it shows: the time a throttled row spent from its start to its finish,
waiting out Retry-After.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from array import array
from collections.abc import Sequence

__all__ = ["Lane", "Timeline", "parse_rfc3339"]

_cached: tuple[str, float] = ("", 0.0)


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of a report timestamp (``2026-11-25T20:06:56.232Z``), None if unreadable.

    Rows end many to a second, so the second's epoch is kept and only milliseconds added.
    """
    global _cached
    head = text[:19]
    prefix, base = _cached
    if head != prefix:
        try:
            base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            return None
        _cached = (head, base)
    tail = text[19:]
    if tail in ("Z", ""):
        return base
    if tail[:1] == "." and tail[-1:] == "Z" and tail[1:-1].isdigit():
        return base + float("0" + tail[:-1])  # ".232Z" -> 0.232
    try:  # another offset or precision: the slow, general way
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


@dataclasses.dataclass(frozen=True, slots=True)
class Lane:
    """One line of the picture: a tenant (or "N other tenants") in ``buckets`` slots."""

    label: str
    finished: Sequence[int]  # rows finished in each slot
    throttled: Sequence[int]  # throttled answers of the rows finished in each slot
    paused: Sequence[bool]  # a throttled row of this lane was waiting in that slot


class Timeline:
    """Feed ``add`` per final outcome; ``lanes`` lays them out."""

    __slots__ = ("_base", "_finish", "_index", "_names", "_start", "_tenant", "_throttled")

    def __init__(self) -> None:
        self._base: float | None = None
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._tenant = array("I")
        self._start = array("f")
        self._finish = array("f")
        self._throttled = array("H")

    def add(self, tenant: str, started: float, finished: float, throttled: int) -> None:
        if self._base is None:
            self._base = started
        index = self._index.get(tenant)
        if index is None:
            index = self._index[tenant] = len(self._names)
            self._names.append(tenant)
        self._tenant.append(index)
        self._start.append(started - self._base)
        self._finish.append(max(finished, started) - self._base)
        self._throttled.append(min(throttled, 65535))

    def __len__(self) -> int:
        return len(self._tenant)

    def span(self) -> tuple[float, float] | None:
        """(first start, last finish) in epoch seconds, None when empty."""
        if self._base is None:
            return None
        return self._base + min(self._start), self._base + max(self._finish)

    def lanes(self, tenants: Sequence[str], *, buckets: int) -> list[Lane]:
        """A lane per tenant of ``tenants`` (in that order), then one for all the others."""
        span = self.span()
        if span is None or buckets < 1:
            return []
        first = min(self._start)
        width = max((max(self._finish) - first) / buckets, 1e-9)
        labels = [t for t in dict.fromkeys(tenants) if t in self._index]
        lane_of = {self._index[t]: i for i, t in enumerate(labels)}
        others = len(lane_of)
        n = others + (1 if len(self._names) > len(lane_of) else 0)
        finished = [[0] * buckets for _ in range(n)]
        throttled = [[0] * buckets for _ in range(n)]
        paused = [[False] * buckets for _ in range(n)]
        last = buckets - 1
        for index, start, finish, answers in zip(
            self._tenant, self._start, self._finish, self._throttled, strict=True
        ):
            lane = lane_of.get(index, others)
            end = min(int((finish - first) / width), last)
            finished[lane][end] += 1
            if answers:
                throttled[lane][end] += answers
                row = paused[lane]
                for slot in range(min(int((start - first) / width), last), end + 1):
                    row[slot] = True
        if n > len(labels):
            rest = len(self._names) - len(labels)
            labels.append(f"{rest} other tenant{'' if rest == 1 else 's'}")
        return [Lane(label, finished[i], throttled[i], paused[i]) for i, label in enumerate(labels)]
