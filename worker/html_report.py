"""The job report as one self-contained HTML file (`summary REPORT --html FILE`): the counts, the
error table, and two plots drawn here as plain inline SVG: rows finished per second with 429s,
retries and the rate limit, and the latency distribution.

No script, font, style sheet or image from anywhere else: it opens the same from a mail
attachment, a CI artefact or a machine with no network. The plots draw the summary's buckets
(at most 120 points and 30 bars), so the file stays a few tens of kB whatever the job's size.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from .jobs_file import JobsOutput
from .quota import rate_text
from .results import Outcome
from .summary import JobSummary

WIDTH, HEIGHT = 1000, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 40  # plot margins, for the axes' labels
COLOURS = {
    str(Outcome.APPLIED): "#2e7d32", str(Outcome.UNCHANGED): "#81c784", str(Outcome.REJECTED): "#8e24aa",
    str(Outcome.FAILED): "#c62828", str(Outcome.INTERRUPTED): "#ef6c00", str(Outcome.DRY_RUN): "#1565c0",
    str(Outcome.NOT_ATTEMPTED): "#9e9e9e",
}
SHOWN_PROJECTS = 50
# Time axis ticks fall on whole seconds, minutes or hours.
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #212121; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #616161; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f5f5f5; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
code { background: #f5f5f5; padding: 2px 4px; font-size: 13px; }
svg text { font-size: 11px; fill: #424242; font-family: system-ui, sans-serif; }
"""


def write_html(summary: JobSummary, path: str) -> None:
    """Written whole or not at all (a temporary file renamed over `path`)."""
    text = render_html(summary)
    out = JobsOutput(path)
    try:
        out.stream.write(text)
    except BaseException:
        out.abandon()
        raise
    out.commit()


def render_html(summary: JobSummary) -> str:
    data = summary.as_dict()
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>snaprelabel job report: {escape(summary.report)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>snaprelabel job report</h1><p class=\"meta\">{escape(summary.report)} ({summary.fmt}), "
        f"job {escape(summary.status)}: {summary.lines} input lines answered, {summary.rows} rows"
        f"{_times(summary.manifest)}</p>",
        "<h2>Outcomes</h2>", _outcomes(data["outcomes"]),
        "<h2>Errors</h2>", _errors(data["errors"]),
        "<h2>Rows and requests per second</h2>", _rate_text(summary, data), _rate_svg(summary, data),
        "<h2>Latency</h2>", _latency_text(data), _latency_svg(data),
        "<h2>Projects</h2>", _groups(data["projects"], "project"),
    ]
    if data.get("regions"):
        parts += ["<h2>Regions</h2>", _groups(data["regions"], "region")]
    if data["next"]:
        parts.append("<h2>What next</h2><ul>" + "".join(
            f"<li><code>{escape(step)}</code></li>" if step.startswith("snaprelabel ") else f"<li>{escape(step)}</li>"
            for step in data["next"]) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _times(manifest: dict[str, Any] | None) -> str:
    manifest = manifest or {}
    started, finished = manifest.get("started_at"), manifest.get("finished_at")
    text = f"; started {escape(str(started))}" if started else ""
    return text + (f", finished {escape(str(finished))}" if finished else "")


def _outcomes(outcomes: dict[str, int]) -> str:
    total = sum(outcomes.values()) or 1
    rows, bar, x = [], [], 0.0
    for outcome, count in outcomes.items():
        if not count:
            continue
        colour = COLOURS.get(outcome, "#607d8b")
        rows.append(f"<tr><td><span class=\"swatch\" style=\"background:{colour}\"></span>{escape(outcome)}</td>"
                    f"<td class=\"n\">{count}</td><td class=\"n\">{100 * count / total:.1f}%</td></tr>")
        width = WIDTH * count / total
        bar.append(f"<rect x=\"{x:.1f}\" y=\"0\" width=\"{width:.1f}\" height=\"24\" fill=\"{colour}\">"
                   f"<title>{escape(outcome)}: {count}</title></rect>")
        x += width
    svg = (f"<svg class=\"outcomes\" width=\"{WIDTH}\" height=\"24\" viewBox=\"0 0 {WIDTH} 24\" "
           f"role=\"img\" aria-label=\"outcomes\">{''.join(bar)}</svg>")
    return (svg + "<table><tr><th>outcome</th><th>rows</th><th>share</th></tr>" + "".join(rows)
            + "</table>") if rows else "<p>No rows yet.</p>"


def _errors(errors: dict[str, dict[str, Any]]) -> str:
    if not errors:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><td>{escape(code)}</td><td class=\"n\">{g['count']}</td><td class=\"n\">{g['http_status'] or ''}</td>"
        f"<td>{', '.join(map(str, g['first_lines']))}{', …' if g['count'] > len(g['first_lines']) else ''}</td>"
        f"<td>{escape(g['example'])}</td></tr>"
        for code, g in errors.items())
    return ("<table><tr><th>error code</th><th>rows</th><th>HTTP</th><th>first input lines</th>"
            f"<th>example message</th></tr>{rows}</table>")


def _groups(groups: dict[str, dict[str, int]], kind: str) -> str:
    shown = sorted(groups.items(), key=lambda kv: -sum(kv[1].values()))[:SHOWN_PROJECTS]
    outcomes = [str(o) for o in Outcome if any(counts.get(str(o)) for _, counts in shown)]
    head = "".join(f"<th>{o}</th>" for o in outcomes)
    rows = "".join(f"<tr><td>{escape(name)}</td>" + "".join(f"<td class=\"n\">{counts.get(o, 0)}</td>"
                                                            for o in outcomes) + "</tr>"
                   for name, counts in shown)
    more = (f"<p class=\"meta\">… and {len(groups) - len(shown)} more {kind}s (summary --format json lists "
            "them all)</p>") if len(groups) > len(shown) else ""
    return f"<table><tr><th>{kind}</th>{head}</tr>{rows}</table>{more}"


def _rate_text(summary: JobSummary, data: dict[str, Any]) -> str:
    retries = data["retries"]
    limit = f"; rate limit {rate_text(summary.rate_limit)}" if summary.rate_limit else ""
    run = data["last_run"]
    manifest = (f" The last run's manifest counts {run['requests']} requests, {run['retries']} retries and "
                f"{run['throttled']} throttled answers (429): a row retried past a 429 ends with its "
                "last answer, so the report itself shows only the rows that ended throttled.") if run else ""
    return (f"<p>{retries['rows_retried']} rows took more than one attempt ({retries['extra_attempts']} "
            f"extra attempts); {data['throttled_rows']} rows ended throttled (HTTP 429){limit}. "
            f"Buckets of {data['rate']['bucket_s']} s from {escape(str(data['rate']['start']))}.{manifest}</p>")


def _scale(top: float) -> tuple[float, float]:
    """(axis maximum, tick step): round ticks, 3 to 5 of them above 0, the axis just above `top`."""
    step = _nice(max(top, 1e-9) / 4)
    return step * max(1, math.ceil(top / step)), step


def _frame(y_max: float, y_step: float, y_label: str, x_labels: list[tuple[float, str]]) -> list[str]:
    """Axes, horizontal grid lines and labels of a plot whose y runs from 0 to y_max."""
    inner_h = HEIGHT - TOP - BOTTOM
    out = [f"<line x1=\"{LEFT}\" y1=\"{HEIGHT - BOTTOM}\" x2=\"{WIDTH - RIGHT}\" y2=\"{HEIGHT - BOTTOM}\" "
           "stroke=\"#9e9e9e\"/>"]
    for i in range(round(y_max / y_step) + 1):
        value = y_step * i
        y = HEIGHT - BOTTOM - inner_h * value / y_max
        out.append(f"<line x1=\"{LEFT}\" y1=\"{y:.1f}\" x2=\"{WIDTH - RIGHT}\" y2=\"{y:.1f}\" stroke=\"#eeeeee\"/>"
                   f"<text x=\"{LEFT - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{_num(value)}</text>")
    out.append(f"<text x=\"12\" y=\"{TOP + inner_h / 2:.0f}\" transform=\"rotate(-90 12 {TOP + inner_h / 2:.0f})\" "
               f"text-anchor=\"middle\">{escape(y_label)}</text>")
    out.extend(f"<text x=\"{x:.1f}\" y=\"{HEIGHT - BOTTOM + 16}\" text-anchor=\"middle\">{escape(label)}</text>"
               for x, label in x_labels)
    return out


def _svg(name: str, body: list[str]) -> str:
    return (f"<svg class=\"{name}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" "
            f"role=\"img\" aria-label=\"{name}\">{''.join(body)}</svg>")


def _rate_svg(summary: JobSummary, data: dict[str, Any]) -> str:
    rate = data["rate"]
    buckets: list[dict[str, Any]] = rate["buckets"]
    if not buckets:
        return "<p>No rows yet.</p>"
    width_s = rate["bucket_s"]
    span = float(buckets[-1]["t"] + width_s)
    limit = summary.rate_limit
    y_max, y_step = _scale(max([b["requests_per_s"] for b in buckets] + [limit or 0]) * 1.15)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + inner_w * t / span

    def y(v: float) -> float:
        return HEIGHT - BOTTOM - inner_h * min(v, y_max) / y_max

    t_step = next((step for step in _TIME_STEPS if span / step <= 7), _nice(span / 6))
    ticks = [(x(t_step * i), _duration(t_step * i)) for i in range(int(span / t_step) + 1)]
    body = _frame(y_max, y_step, "per second", ticks)
    bar_w = max(inner_w * width_s / span - 1, 1)
    for b in buckets:  # rows per second, one bar a bucket; 429s and retries stacked over its foot
        left = x(b["t"])
        body.append(f"<rect x=\"{left:.1f}\" y=\"{y(b['per_s']):.1f}\" width=\"{bar_w:.1f}\" "
                    f"height=\"{HEIGHT - BOTTOM - y(b['per_s']):.1f}\" fill=\"#90caf9\">"
                    f"<title>+{_duration(b['t'])}: {b['per_s']:g} rows/s, {b['throttled']} throttled, "
                    f"{b['retried']} retried</title></rect>")
        # Drawn over each other from the axis, not stacked: a row that ended throttled was
        # usually retried first, so it is counted in both.
        for count, colour in ((b["retried"], "#ef6c00"), (b["throttled"], "#c62828")):
            if count:
                height = max(HEIGHT - BOTTOM - y(count / width_s), 2.0)
                body.append(f"<rect class=\"mark\" x=\"{left:.1f}\" y=\"{HEIGHT - BOTTOM - height:.1f}\" "
                            f"width=\"{bar_w:.1f}\" height=\"{height:.1f}\" fill=\"{colour}\"/>")
    points = " ".join(f"{x(b['t'] + width_s / 2):.1f},{y(b['requests_per_s']):.1f}" for b in buckets)
    body.append(f"<polyline class=\"requests\" points=\"{points}\" fill=\"none\" stroke=\"#1565c0\" "
                "stroke-width=\"2\"/>")
    if limit:
        body.append(f"<line class=\"limit\" x1=\"{LEFT}\" y1=\"{y(limit):.1f}\" x2=\"{WIDTH - RIGHT}\" "
                    f"y2=\"{y(limit):.1f}\" stroke=\"#212121\" stroke-dasharray=\"6 4\"/>"
                    f"<text x=\"{WIDTH - RIGHT}\" y=\"{y(limit) - 4:.1f}\" text-anchor=\"end\">"
                    f"rate limit {limit:g}/s</text>")
    body.append(_legend([("#90caf9", "rows finished"), ("#1565c0", "requests (attempts of those rows)"),
                         ("#ef6c00", "rows retried"),
                         ("#c62828", "rows that ended throttled (429)")]))
    return _svg("rate", body)


def _latency_text(data: dict[str, Any]) -> str:
    lat = data["latency_ms"]
    if not lat:
        return "<p>No row was sent.</p>"
    return (f"<p>p50 {lat['p50']:g} ms, p90 {lat['p90']:g} ms, p99 {lat['p99']:g} ms, "
            f"max {lat['max']:g} ms (the last bar holds everything above the p99).</p>")


def _latency_svg(data: dict[str, Any]) -> str:
    bins: list[dict[str, Any]] = data["latency_histogram"]
    lat = data["latency_ms"]
    if not bins or not lat:
        return ""
    top_ms = bins[-1]["to_ms"] or 1.0
    y_max, y_step = _scale(max(b["count"] for b in bins) * 1.1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ms: float) -> float:
        return LEFT + inner_w * min(ms, top_ms) / top_ms

    ms_step = _nice(top_ms / 6)
    ticks = [(x(ms_step * i), f"{_num(ms_step * i)} ms") for i in range(int(top_ms / ms_step) + 1)]
    body = _frame(y_max, y_step, "rows", ticks)
    for b in bins:
        height = inner_h * b["count"] / y_max
        body.append(f"<rect x=\"{x(b['from_ms']):.1f}\" y=\"{HEIGHT - BOTTOM - height:.1f}\" "
                    f"width=\"{max(x(b['to_ms']) - x(b['from_ms']) - 1, 1):.1f}\" height=\"{height:.1f}\" "
                    f"fill=\"#7e57c2\"><title>{b['from_ms']:g}–{b['to_ms']:g} ms: {b['count']}</title></rect>")
    for name in ("p50", "p90", "p99"):
        at = x(lat[name])
        body.append(f"<line x1=\"{at:.1f}\" y1=\"{TOP}\" x2=\"{at:.1f}\" y2=\"{HEIGHT - BOTTOM}\" stroke=\"#212121\" "
                    f"stroke-dasharray=\"3 3\"/>" + (  # the label on the side with room for it
                        f"<text x=\"{at + 3:.1f}\" y=\"{TOP + 10}\">{name}</text>" if at < WIDTH - RIGHT - 40
                        else f"<text x=\"{at - 3:.1f}\" y=\"{TOP + 10}\" text-anchor=\"end\">{name}</text>"))
    return _svg("latency", body)


def _legend(items: list[tuple[str, str]]) -> str:
    out, x = [], LEFT + 10
    for colour, label in items:
        out.append(f"<rect x=\"{x}\" y=\"{TOP}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>"
                   f"<text x=\"{x + 14}\" y=\"{TOP + 9}\">{escape(label)}</text>")
        x += 30 + 7 * len(label)
    return "".join(out)


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 × a power of ten that is at least `value`."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    return next(m * step for m in (1, 2, 5, 10) if m * step >= value)


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:.2g}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
