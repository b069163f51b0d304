"""``batchsync report --format html``: one self-contained page to hand to a customer.

No script and nothing fetched: inline CSS, inline SVG, text escaped. Sections: the totals,
a picture of the run over time (rows finished per tenant, throttled answers, pauses), the
failures grouped by error with what to do (and the first failed rows), the per-tenant
table. Print styles keep the colours and avoid breaking a table row across pages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import Final

from ._render import NO_TENANT, Digest, counts_phrase, error_label
from ._tally import ErrorKey, TenantTally, next_step
from ._timeline import Lane

__all__ = ["FailedRow", "render_html"]

LANES: Final = 12  # tenants drawn on a line of their own; the rest share one
BUCKETS: Final = 80
_PLOT_X, _PLOT_W, _LANE_H, _LANE_GAP, _TOP = 230, 700, 18, 5, 26

_CSS: Final = """
:root { --ok:#2e7d32; --failed:#c62828; --invalid:#ef6c00; --skipped:#757575;
  --planned:#1565c0; --throttled:#d81b60; --paused:#ffe082; --line:#ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1a1a1a; margin: 2rem auto; max-width: 1000px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; }
.sub { color: #555; margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; margin-top: 1.2rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem;
  min-width: 7.5rem; }
.card b { display: block; font-size: 1.5rem; }
.card.ok b { color: var(--ok); } .card.failed b { color: var(--failed); }
.card.invalid b { color: var(--invalid); } .card.throttled b { color: var(--throttled); }
.verdict { margin-top: 1rem; padding: .6rem .9rem; border-radius: 6px; font-weight: 600; }
.verdict.good { background: #e8f5e9; } .verdict.bad { background: #ffebee; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; } td.n, th.n { text-align: right; }
td.bad { color: var(--failed); font-weight: 600; } .muted { color: #666; }
code { font-size: .9em; overflow-wrap: anywhere; }
svg { width: 100%; height: auto; } .legend span { margin-right: 1.2rem; white-space: nowrap; }
.sw { display: inline-block; width: .9rem; height: .9rem; vertical-align: -.1rem;
  margin-right: .3rem; border-radius: 2px; }
footer { margin-top: 2.5rem; color: #777; font-size: .85rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  tr, .card, svg { break-inside: avoid; } h2 { break-after: avoid; }
}
"""


@dataclasses.dataclass(frozen=True, slots=True)
class FailedRow:
    """A failed or invalid row as the page lists it."""

    line: int
    tenant: str
    target: str  # the connector (or the action's object id)
    status: str
    kind: str
    code: str
    message: str
    request_id: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _cards(t: TenantTally, tenants: int) -> str:
    cards = [("rows", t.rows, ""), ("tenants", tenants, "")]
    for status in ("ok", "failed", "invalid", "skipped", "planned"):
        n = getattr(t, status)
        if n or status in ("ok", "failed"):
            cards.append((status, n, status))
    cards.append(("throttled answers", t.throttled, "throttled"))
    return "".join(
        f'<div class="card {cls}"><b>{n:,}</b>{escape(label)}</div>' for label, n, cls in cards
    )


def _timeline_svg(lanes: Sequence[Lane], span: tuple[float, float]) -> str:
    """Lanes of bars (rows finished per time slot, height on a square-root scale), red
    marks for throttled answers, amber bands where a throttled row was waiting."""
    if not lanes:
        return '<p class="muted">No row has timestamps to draw.</p>'
    buckets = len(lanes[0].finished)
    slot_w = _PLOT_W / buckets
    peak = max(max(lane.finished) for lane in lanes) or 1
    height = _TOP + len(lanes) * (_LANE_H + _LANE_GAP) + 6
    start, end = span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_PLOT_X + _PLOT_W + 10} '
        f'{height}" role="img" aria-label="rows finished per tenant over time">',
    ]
    for i in range(5):  # time axis: five ticks
        x = _PLOT_X + _PLOT_W * i / 4
        label = _utc(start + (end - start) * i / 4)[11:19]
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP - 6}" x2="{x:.1f}" y2="{height - 4}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{_TOP - 10}" font-size="11" fill="#555" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    for row, lane in enumerate(lanes):
        y = _TOP + row * (_LANE_H + _LANE_GAP)
        label = lane.label if len(lane.label) <= 32 else lane.label[:31] + "…"
        parts.append(
            f'<text x="{_PLOT_X - 8}" y="{y + _LANE_H - 5}" font-size="12" text-anchor="end">'
            f"<title>{escape(lane.label)}</title>{escape(label)}</text>"
            f'<rect x="{_PLOT_X}" y="{y}" width="{_PLOT_W}" height="{_LANE_H}" fill="#fafafa"/>'
        )
        for slot, waiting in enumerate(lane.paused):
            if waiting:
                parts.append(
                    f'<rect x="{_PLOT_X + slot * slot_w:.1f}" y="{y}" width="{slot_w:.1f}" '
                    f'height="{_LANE_H}" fill="#ffe082"/>'
                )
        for slot, count in enumerate(lane.finished):
            if count:
                h = max(2.0, (_LANE_H - 2) * math.sqrt(count / peak))
                parts.append(
                    f'<rect x="{_PLOT_X + slot * slot_w + 0.5:.1f}" y="{y + _LANE_H - h:.1f}" '
                    f'width="{max(slot_w - 1, 0.5):.1f}" height="{h:.1f}" fill="#2e7d32">'
                    f"<title>{_plural(count, 'row')} finished</title></rect>"
                )
        for slot, answers in enumerate(lane.throttled):
            if answers:
                cx = _PLOT_X + (slot + 0.5) * slot_w
                parts.append(
                    f'<circle cx="{cx:.1f}" cy="{y + 4}" r="3" fill="#d81b60">'
                    f"<title>{_plural(answers, 'throttled answer')}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def _error_groups(d: Digest) -> str:
    total = d.tally.total
    if not total.errors:
        return "<p>No row failed and no row is invalid.</p>"
    tenants_with: Counter[ErrorKey] = Counter()
    for t in d.tally.tenants.values():
        if t.errors:
            tenants_with.update(t.errors.keys())
    messages = total.messages or {}
    rows = []
    for key, count in total.errors.most_common():
        code = f" <code>{escape(key.code)}</code>" if key.code else ""
        rows.append(
            f"<tr><td>{escape(key.status)}: {escape(key.kind)}{code}</td>"
            f'<td class="n">{count:,}</td><td class="n">{tenants_with[key]:,}</td>'
            f"<td>{escape(messages.get(key, ''))}</td>"
            f"<td>{escape(next_step(key.kind, key.code))}</td></tr>"
        )
    return (
        '<table><thead><tr><th>error</th><th class="n">rows</th><th class="n">tenants</th>'
        "<th>message (the first one)</th><th>what to do</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _failed_rows(rows: Sequence[FailedRow], total: int) -> str:
    if not rows:
        return ""
    body = "".join(
        f'<tr><td class="n">{r.line}</td><td>{escape(r.tenant or NO_TENANT)}</td>'
        f"<td><code>{escape(r.target)}</code></td><td>{escape(r.status)}</td>"
        f"<td>{escape(r.kind)} {escape(r.code)}</td><td>{escape(r.message)}</td>"
        f"<td><code>{escape(r.request_id)}</code></td></tr>"
        for r in sorted(rows, key=lambda r: r.line)
    )
    more = (
        f'<p class="muted">The first {len(rows):,} of {total:,} rows; '
        "<code>batchsync report --format csv</code> lists them all.</p>"
        if total > len(rows)
        else ""
    )
    return (
        '<h3>The rows</h3><table><thead><tr><th class="n">line</th><th>tenant</th>'
        "<th>object</th><th>status</th><th>error</th><th>message</th><th>request id</th>"
        f"</tr></thead><tbody>{body}</tbody></table>{more}"
    )


def _tenant_table(tenants: Sequence[TenantTally], planned: bool) -> str:
    columns = ["rows", "ok", "failed", "invalid", "skipped"] + (["planned"] if planned else [])
    columns.append("throttled")
    head = "".join(f'<th class="n">{c}</th>' for c in columns)
    body = []
    for t in tenants:
        cells = "".join(
            f'<td class="n{" bad" if c in ("failed", "invalid") and getattr(t, c) else ""}">'
            f"{getattr(t, c):,}</td>"
            for c in columns
        )
        top = t.top_error()
        error = step = ""
        if top is not None:
            key, _, message = top
            error = f'{escape(error_label(t))}<br><span class="muted">{escape(message)}</span>'
            step = escape(next_step(key.kind, key.code))
        body.append(
            f"<tr><td>{escape(t.tenant or NO_TENANT)}</td>{cells}<td>{error}</td>"
            f"<td>{step}</td></tr>"
        )
    return (
        f"<table><thead><tr><th>tenant</th>{head}<th>most common error</th>"
        f"<th>what to do</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render_html(
    d: Digest,
    *,
    failed_rows: Sequence[FailedRow] = (),
    failed_only: bool = False,
    version: str = "",
) -> str:
    """The whole page as one string (its size grows with tenants, not with rows)."""
    total = d.tally.total
    tenants = d.tally.worst_first()
    listed = [t for t in tenants if t.problems] if failed_only else tenants
    span = d.timeline.span() if d.timeline is not None else None
    when = ""
    if span is not None:
        when = f"{_utc(span[0])} to {_utc(span[1])[11:]} ({_duration(span[1] - span[0])}). "
    sources = ", ".join(d.sources) if len(d.sources) <= 4 else _plural(len(d.sources), "report")
    superseded = ""
    if d.superseded:
        superseded = f", {_plural(d.superseded, 'earlier line')} superseded by a later one"
    skipped = f", {_plural(d.lines_skipped, 'unreadable line')} left out" if d.lines_skipped else ""
    if total.problems:
        verdict = (
            f'<div class="verdict bad">{_plural(total.problems, "row")} did not succeed '
            f"({counts_phrase(total)}).</div>"
        )
    else:
        verdict = f'<div class="verdict good">Every row ended well ({counts_phrase(total)}).</div>'
    lanes: list[Lane] = []
    if d.timeline is not None and span is not None:
        busiest = sorted(tenants, key=lambda t: (-t.problems, -t.throttled, -t.rows, t.tenant))
        lanes = d.timeline.lanes([t.tenant for t in busiest[:LANES]], buckets=BUCKETS)
    picture = (
        _timeline_svg(lanes, span)
        + '<p class="legend"><span><i class="sw" style="background:#2e7d32"></i>rows finished'
        '</span><span><i class="sw" style="background:#d81b60;border-radius:50%"></i>'
        'throttled answers (429/503)</span><span><i class="sw" style="background:#ffe082">'
        "</i>a throttled row waiting out Retry-After (the tenant paused)</span></p>"
        if span is not None
        else '<p class="muted">No row has timestamps to draw.</p>'
    )
    title = f"batchsync report: {_plural(total.rows, 'row')} in {_plural(len(tenants), 'tenant')}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="sub">{escape(when)}From {escape(sources)}: '
        f"{_plural(d.lines_read, 'line')}{escape(superseded)}{escape(skipped)}.</p></header>\n"
        f'<section><div class="cards">{_cards(total, len(tenants))}</div>{verdict}</section>\n'
        f"<section><h2>The run over time</h2>{picture}</section>\n"
        f"<section><h2>Failures and what to do</h2>{_error_groups(d)}"
        f"{_failed_rows(failed_rows, total.problems)}</section>\n"
        f"<section><h2>Tenants</h2>"
        + (
            _tenant_table(listed, bool(total.planned))
            if listed
            else "<p>No tenant has a failed or invalid row.</p>"
        )
        + "</section>\n"
        f"<footer>Made by batchsync {escape(version)} from the report lines; each row counted "
        "once, by its last line.</footer>\n</body>\n</html>\n"
    )
