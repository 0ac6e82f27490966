"""Server-rendered SVG charts of an `Activity`: no script, no charting library, styled by console.css classes.

Each chart is one `<svg role="img">` with a `<title>` and a `<desc>` that states its numbers in words, and a
`<title>` on every bar and point (the browser shows it on hover). Every element that carries a number also
carries it as `data-*` attributes, so tests read the numbers back from the SVG. All text is escaped here:
the result is Markup, put in the page as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from markupsafe import Markup, escape

from headrace.models import Activity

WIDTH, HEIGHT = 960, 180  # the viewBox of a full-width chart; `width` makes a narrower one at the same scale
LEFT, RIGHT, TOP, BOTTOM = 56, 20, 12, 24
PLOT_H = HEIGHT - TOP - BOTTOM
# Stacking order, bottom up, and the words for each status.
OUTCOMES = ("delivered", "job_failed", "failed", "pending", "cancelled", "unrouted")


def _count(n: int, one: str, many: str | None = None) -> str:
    """`1 event`, `2 events`: the noun agrees with the number."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def _span(activity: Activity, bucket: int) -> str:
    start = activity.since + bucket * activity.step
    return f"{_hhmm(start)} to {_hhmm(start + activity.step)} UTC"


def _per(activity: Activity) -> str:
    minutes = activity.step / 60
    return "per minute" if minutes == 1 else f"per {minutes:g} minutes"


def _window(activity: Activity) -> str:
    day = datetime.fromtimestamp(activity.since, UTC).strftime("%Y-%m-%d")
    return f"{day} {_hhmm(activity.since)} to {_hhmm(activity.until)} UTC"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-9:
            return step * power
    return 10 * power


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _x(activity: Activity, bucket: int, width: int) -> float:
    return LEFT + (width - LEFT - RIGHT) * bucket / activity.buckets


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H * (1 - value / top)


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(activity: Activity, top: float, width: int, fmt: Callable[[float], str] = _n) -> list[str]:
    """Gridlines with their values (0, half, top) and time ticks along the bottom."""
    parts = []
    for value in (0.0, top / 2, top):
        if fmt is _n and value != int(value):
            continue  # counts: no gridline at 2.5 events
        y = _y(value, top)
        text = fmt(value)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{_n(y)}" y2="{_n(y)}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">{escape(text)}</text>')
    every = max(1, round(activity.buckets / (6 if width >= WIDTH else 3)))
    for bucket in range(0, activity.buckets + 1, every):
        x = _x(activity, bucket, width)
        stamp = _hhmm(activity.since + bucket * activity.step)
        parts.append(f'<line class="tick" x1="{_n(x)}" x2="{_n(x)}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H + 4}"/>')
        anchor = "end" if bucket == activity.buckets else "start" if bucket == 0 else "middle"
        parts.append(f'<text class="axis" x="{_n(x)}" y="{HEIGHT - 6}" text-anchor="{anchor}">{stamp}</text>')
    return parts


def _svg(kind: str, ident: str, width: int, title: str, desc: str, body: Iterable[str], empty: str | None) -> Markup:
    t, d = f"{ident}-title", f"{ident}-desc"
    parts = [
        f'<svg class="chart chart-{kind}" id="{escape(ident)}" role="img" aria-labelledby="{escape(t)} {escape(d)}" '
        f'viewBox="0 0 {width} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(t)}">{escape(title)}</title>',
        f'<desc id="{escape(d)}">{escape(desc)}</desc>',
        *body,
    ]
    if empty is not None:
        parts.append(
            f'<text class="chart-empty" x="{(LEFT + width - RIGHT) / 2:.0f}" y="{TOP + PLOT_H / 2:.0f}" '
            f'text-anchor="middle">{escape(empty)}</text>'
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))  # noqa: S704  every interpolated text above went through escape()


def outcomes(activity: Activity, ident: str, subject: str = "", width: int = WIDTH) -> Markup:
    """Stacked bars: events received per bucket, by status."""
    totals = {b: sum(c.values()) for b, c in activity.outcomes.items()}
    top = nice_ceiling(max(totals.values(), default=0))
    bar = (width - LEFT - RIGHT) / activity.buckets
    body = _frame(activity, top, width)
    for bucket in sorted(activity.outcomes):
        counts = activity.outcomes[bucket]
        base = 0
        for status in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))):
            n = counts.get(status, 0)
            if not n:
                continue
            y0, y1 = _y(base, top), _y(base + n, top)
            body.append(
                f'<rect class="bar bar-{escape(status)}" x="{_n(_x(activity, bucket, width) + 0.5)}" y="{_n(y1)}" '
                f'width="{_n(max(bar - 1, 1))}" height="{_n(y0 - y1)}" data-bucket="{bucket}" '
                f'data-status="{escape(status)}" data-value="{n}">'
                f"<title>{escape(_span(activity, bucket))} · {escape(status)}: "
                f"{n} of {_count(totals[bucket], 'event')}</title>"
                "</rect>"
            )
            base += n
    summed: dict[str, int] = {}
    for counts in activity.outcomes.values():
        for status, n in counts.items():
            summed[status] = summed.get(status, 0) + n
    words = ", ".join(f"{summed[s]} {s}" for s in (*OUTCOMES, *sorted(set(summed) - set(OUTCOMES))) if s in summed)
    title = f"Events received {_per(activity)}, by outcome{subject}"
    total = sum(summed.values())
    desc = f"{_window(activity)}: {_count(total, 'event')} ({words})." if total else f"{_window(activity)}: no events."
    empty = None if total else f"No events in this window{subject}."
    return _svg("outcomes", ident, width, title, desc, body, empty)


def latency(activity: Activity, ident: str, subject: str = "", width: int = WIDTH) -> Markup:
    """Two lines, p50 and p99 of the time from received (or replayed) to delivered, per bucket."""
    top = nice_ceiling(max((p99 for _, p99, _ in activity.latency.values()), default=0.0))
    body = _frame(activity, top, width, duration)
    half = (width - LEFT - RIGHT) / activity.buckets / 2
    for index, name in ((0, "p50"), (1, "p99")):
        run: list[str] = []
        for bucket in range(activity.buckets + 1):
            if bucket in activity.latency:
                run.append(f"{_n(_x(activity, bucket, width) + half)},{_n(_y(activity.latency[bucket][index], top))}")
            elif run:
                body.append(f'<polyline class="line line-{name}" points="{" ".join(run)}"/>')
                run = []
    for bucket in sorted(activity.latency):
        p50, p99, n = activity.latency[bucket]
        x = _n(_x(activity, bucket, width) + half)
        body.append(
            f'<g class="point" data-bucket="{bucket}" data-p50-ms="{p50 * 1000:.1f}" data-p99-ms="{p99 * 1000:.1f}" '
            f'data-value="{n}"><title>{escape(_span(activity, bucket))} · p50 {duration(p50)} · p99 {duration(p99)} '
            f"· {_count(n, 'delivery', 'deliveries')}</title>"
            f'<circle class="dot-p50" cx="{x}" cy="{_n(_y(p50, top))}" r="2.5"/>'
            f'<circle class="dot-p99" cx="{x}" cy="{_n(_y(p99, top))}" r="2.5"/></g>'
        )
    n_all = sum(n for _, _, n in activity.latency.values())
    title = f"Delivery latency, p50 and p99 {_per(activity)}{subject}"
    if n_all:
        worst = max(p99 for _, p99, _ in activity.latency.values())
        desc = f"{_window(activity)}: {_count(n_all, 'delivery', 'deliveries')}; the highest p99 was {duration(worst)}."
    else:
        desc = f"{_window(activity)}: no delivered deliveries."
    empty = None if n_all else f"No deliveries in this window{subject}."
    return _svg("latency", ident, width, title, desc, body, empty)


def job_failures(activity: Activity, ident: str, subject: str = "", width: int = WIDTH) -> Markup:
    """Bars: Windmill jobs that finished failed, per bucket."""
    top = nice_ceiling(max(activity.job_failures.values(), default=0))
    bar = (width - LEFT - RIGHT) / activity.buckets
    body = _frame(activity, top, width)
    for bucket in sorted(activity.job_failures):
        n = activity.job_failures[bucket]
        y = _y(n, top)
        body.append(
            f'<rect class="bar bar-job_failed" x="{_n(_x(activity, bucket, width) + 0.5)}" y="{_n(y)}" '
            f'width="{_n(max(bar - 1, 1))}" height="{_n(TOP + PLOT_H - y)}" data-bucket="{bucket}" '
            f'data-value="{n}"><title>{escape(_span(activity, bucket))} · {_count(n, "failed job")}</title></rect>'
        )
    total = sum(activity.job_failures.values())
    title = f"Failed Windmill jobs {_per(activity)}{subject}"
    desc = f"{_window(activity)}: {_count(total, 'failed job')}." if total else f"{_window(activity)}: no failed jobs."
    empty = None if total else f"No failed jobs in this window{subject}."
    return _svg("jobs", ident, width, title, desc, body, empty)
