"""The nightly report drawn: its document (the dict ``report.json`` holds) as one self-contained
HTML page with its pictures embedded (``data:`` URIs) and as one PNG of every panel.

Pure: the document in, bytes out, no Spark. matplotlib draws through its Agg canvas on
``Figure`` objects of its own (no pyplot, no global backend), so it runs on a headless driver.
Each panel is one function drawing on an Axes; the page shows each panel as its own picture,
the PNG lays them all out on one figure.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image

DECISION_COLORS = {"ALLOW": "#4c9a5b", "REVIEW": "#e0a526", "BLOCK": "#c0392b", "quarantined": "#7f8c8d"}
BAND_COLORS = {
    "stable": "#4c9a5b",
    "moderate": "#e0a526",
    "significant": "#c0392b",
    "no reference": "#bdc3c7",
    "no data": "#bdc3c7",
}
THRESHOLD_COLORS = ("#c0392b", "#8e44ad", "#2c3e50", "#d35400")
PAGE_DPI = 80
PAD = 6  # pixels around a panel cut out of the page


# --- panels: each draws one part of the document on an Axes ---


def _bars(
    ax: Axes, labels: Sequence[str], values: Sequence[float], colors: Sequence[str] | str, horizontal: bool
) -> None:
    if horizontal:
        bars = ax.barh(
            list(labels)[::-1], list(values)[::-1], color=list(colors)[::-1] if not isinstance(colors, str) else colors
        )
    else:
        bars = ax.bar(list(labels), list(values), color=colors)
    ax.bar_label(
        bars, labels=[f"{int(v):,}" for v in (list(values)[::-1] if horizontal else values)], fontsize=8, padding=2
    )
    ax.margins(x=0.15) if horizontal else ax.margins(y=0.15)


def draw_decisions(ax: Axes, doc: Mapping[str, Any]) -> None:
    decisions = dict(doc["decisions"])
    labels = [*decisions, "quarantined"]
    values = [*decisions.values(), doc["counts"].get("sessions_quarantined", 0)]
    _bars(ax, labels, values, [DECISION_COLORS.get(k, "#34495e") for k in labels], horizontal=False)
    ax.set_title(f"Decisions ({doc['counts'].get('sessions_read', 0):,} sessions read)")
    ax.set_ylabel("sessions")


def draw_dq_flags(ax: Axes, doc: Mapping[str, Any]) -> None:
    flags = dict(doc["dq_flags"])
    labels = [*flags, "(no flag)"]
    _bars(ax, labels, [*flags.values(), doc["sessions_without_dq_flags"]], "#5d6d7e", horizontal=True)
    ax.set_title("Data-quality flags (scored sessions)")
    ax.set_xlabel("sessions")


def draw_queue(ax: Axes, doc: Mapping[str, Any]) -> None:
    q = doc["queue"]
    cases, overflow, capacity = q["cases"], q["overflow_cases"], q["capacity"]
    used = f"{cases / capacity:.0%} of capacity" if capacity else "no capacity"
    ax.barh(["flagged cases"], [cases], color=DECISION_COLORS["REVIEW"], label=f"in the queue: {cases:,} ({used})")
    ax.barh(
        ["flagged cases"],
        [overflow],
        left=[cases],
        color=DECISION_COLORS["BLOCK"],
        label=f"over capacity: {overflow:,}",
    )
    ax.axvline(capacity, color="#2c3e50", linestyle="--", linewidth=2, label=f"review.capacity: {capacity:,}")
    ax.set_xlim(0, max(capacity, cases + overflow, 1) * 1.2)
    ax.set_xlabel("cases (one per user)")
    ax.set_title(f"Review queue: {cases:,} cases ({q['sessions']:,} sessions) + {q['audit_sessions']:,} audit sessions")
    ax.legend(fontsize=8, loc="upper right")


def draw_distribution(ax: Axes, doc: Mapping[str, Any], column: str) -> None:
    dist = doc["distributions"][column]
    edges, counts = dist["edges"], dist["counts"]
    lefts = edges[:-1]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(lefts, counts, width=widths, align="edge", color="#5d8aa8", edgecolor="#3b5b73", linewidth=0.3)
    if dist.get("scale") == "log":
        ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="clip")
    for i, line in enumerate(dist["thresholds"]):
        ax.axvline(
            line["value"],
            color=THRESHOLD_COLORS[i % len(THRESHOLD_COLORS)],
            linestyle="--",
            linewidth=1.2,
            label=f"{line['label']} = {line['value']:.4g}",
        )
    ax.set_title(f"{column} ({sum(counts):,} sessions)")
    ax.set_ylabel("sessions (log)")
    if dist["thresholds"]:
        ax.legend(fontsize=7, loc="upper right")


def draw_reasons(ax: Axes, doc: Mapping[str, Any]) -> None:
    reasons = doc["top_reasons"]
    if not reasons:
        ax.text(0.5, 0.5, "no REVIEW or BLOCK session", ha="center", va="center", transform=ax.transAxes)
    rows = list(range(len(reasons)))[::-1]
    ax.barh(rows, [r["sessions"] for r in reasons], color="#d7bde2")
    for row, reason in zip(rows, reasons, strict=True):  # the codes inside the plot: they are long
        ax.text(0, row, f" {reason['code']}  ({reason['sessions']:,})", va="center", ha="left", fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("sessions")
    ax.set_title("Top reason codes (REVIEW and BLOCK sessions)")


def draw_trend(ax: Axes, doc: Mapping[str, Any]) -> None:
    trend = doc["trend"]
    dates = [t["date"][5:] for t in trend]
    scored = [t["sessions_scored"] for t in trend]
    ax.plot(dates, scored, marker="o", color="#34495e", label="scored")
    ax.set_ylabel("sessions scored")
    ax.set_ylim(bottom=0, top=max(scored + [1]) * 1.2)
    right = ax.twinx()
    for key, color in (("REVIEW", DECISION_COLORS["REVIEW"]), ("BLOCK", DECISION_COLORS["BLOCK"])):
        right.plot(dates, [t["decisions"].get(key, 0) for t in trend], marker="s", color=color, label=key)
    right.plot(
        dates,
        [t["sessions_quarantined"] for t in trend],
        marker="^",
        color=DECISION_COLORS["quarantined"],
        label="quarantined",
    )
    right.set_ylabel("flagged / quarantined")
    right.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [str(h.get_label()) for h in lines], fontsize=7, loc="upper left", ncol=4)
    ax.set_title(f"Last {len(trend)} scored date{'s' if len(trend) != 1 else ''} (each date's latest run)")


def draw_drift(ax: Axes, doc: Mapping[str, Any]) -> None:
    columns = doc["drift"]["columns"]
    names = [c["column"] for c in columns]
    floor = 1e-3  # a log axis: the bands and the small values stay visible beside a large one
    values = [max(c["psi"], floor) if c["psi"] is not None else floor for c in columns]
    watch, warn = doc["drift"]["bands"]["watch"], doc["drift"]["bands"]["warn"]
    top = max([*values, warn]) * 3
    ax.set_yscale("log")
    ax.axhspan(floor, watch, color=BAND_COLORS["stable"], alpha=0.12)
    ax.axhspan(watch, warn, color=BAND_COLORS["moderate"], alpha=0.25)
    ax.axhspan(warn, top, color=BAND_COLORS["significant"], alpha=0.12)
    bars = ax.bar(names, values, color=[BAND_COLORS[c["band"]] for c in columns])
    labels = [("n/a" if c["psi"] is None else f"{c['psi']:.3f}") for c in columns]
    ax.bar_label(bars, labels=labels, fontsize=7, rotation=90, padding=2)
    ax.set_ylim(floor, top)
    ax.set_ylabel("PSI (log)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    notes = textwrap.fill(_reference_line(doc), 230)
    ax.set_title(
        f"Drift of every input feature and both model scores (PSI; below {watch} stable, above {warn} a warning)\n"
        f"{notes}",
        fontsize=10,
    )


def _reference_line(doc: Mapping[str, Any]) -> str:
    return "; ".join(r["note"] for r in doc["drift"]["references"].values())


PANELS: list[tuple[str, Callable[[Axes, Mapping[str, Any]], None]]] = [
    ("decisions", draw_decisions),
    ("dq_flags", draw_dq_flags),
    ("queue", draw_queue),
    ("ae_error", lambda ax, doc: draw_distribution(ax, doc, "ae_error")),
    ("seq_risk_max", lambda ax, doc: draw_distribution(ax, doc, "seq_risk_max")),
    ("risk_score", lambda ax, doc: draw_distribution(ax, doc, "risk_score")),
    ("reasons", draw_reasons),
    ("trend", draw_trend),
    ("drift", draw_drift),
]


def title_lines(doc: Mapping[str, Any]) -> list[str]:
    models = doc["models"]
    return [
        f"Raksha nightly report {doc['date']}  (run {doc['run_id']})",
        "models: " + ", ".join(f"{name} {m['version']}" for name, m in models.items()),
    ]


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def render(doc: Mapping[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """The page as one picture (every panel on one figure, titled, the warnings under the title) and
    each panel cut out of it: drawn once, for ``report.png`` and the pictures of ``report.html``."""
    figure = Figure(figsize=(18.0, 20.0), dpi=PAGE_DPI)
    warnings = doc["warnings"]
    listed = (
        textwrap.fill(f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}: {'; '.join(warnings)}", 200)
        if warnings
        else "no warnings"
    )
    head = "\n".join([*title_lines(doc), listed])
    figure.suptitle(head, fontsize=12, color="#c0392b" if warnings else "#2c3e50")
    grid = figure.add_gridspec(
        4,
        3,
        height_ratios=[1.0, 1.0, 1.0, 1.25],
        left=0.09,
        right=0.96,
        top=0.92,
        bottom=0.08,
        wspace=0.42,
        hspace=0.35,
    )
    slots = {
        "decisions": grid[0, 0], "dq_flags": grid[0, 1], "queue": grid[0, 2],
        "ae_error": grid[1, 0], "seq_risk_max": grid[1, 1], "risk_score": grid[1, 2],
        "reasons": grid[2, 0], "trend": grid[2, 1:], "drift": grid[3, :],
    }  # fmt: skip
    panel_axes = {}
    for name, draw in PANELS:
        before = len(figure.axes)
        draw(figure.add_subplot(slots[name]), doc)
        panel_axes[name] = figure.axes[before:]  # a panel may add axes (a twin)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    width, height = canvas.get_width_height()
    page = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
    renderer = canvas.get_renderer()
    panels = {}
    for name, axes in panel_axes.items():
        boxes = [b for b in (ax.get_tightbbox(renderer) for ax in axes) if b is not None]
        box = Bbox.union(boxes)  # pixels from the bottom left
        left, right = max(0, int(box.x0) - PAD), min(width, int(box.x1) + PAD)
        top, bottom = max(0, height - int(box.y1) - PAD), min(height, height - int(box.y0) + PAD)
        panels[name] = _encode(page.crop((left, top, right, bottom)))
    return _encode(page), panels


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], row_class: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


STYLE = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#2c3e50;max-width:1300px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.warn{color:#c0392b;font-weight:bold} img{max-width:100%;margin:6px 0}
tr.significant td{background:#f6d5d1} tr.moderate td{background:#fbeecd} tr.stable td{background:#e3f1e5}
"""


def render_html(doc: Mapping[str, Any], panels: Mapping[str, bytes]) -> str:
    """The page: summary tables and every panel (``render``'s pictures, embedded), nothing fetched when opened."""

    title, models = title_lines(doc)
    counts = doc["counts"]
    warnings = doc["warnings"]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(models)}</p>",
        "<h2>Warnings</h2>",
        "<ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warnings) + "</ul>"
        if warnings
        else "<p>none</p>",
        "<h2>Counts</h2>",
        _table(["count", "value"], [(k, f"{v:,}") for k, v in counts.items()]),
        _img(panels["decisions"], "decisions"),
        _img(panels["dq_flags"], "data-quality flags"),
        "<h2>Scores and thresholds</h2>",
        *[_img(panels[c], f"{c} distribution") for c in ("ae_error", "seq_risk_max", "risk_score")],
        "<h2>Why sessions were flagged</h2>",
        _img(panels["reasons"], "top reason codes"),
        _table(["reason code", "sessions"], [(r["code"], f"{r['sessions']:,}") for r in doc["top_reasons"]]),
        "<h2>Review queue</h2>",
        _img(panels["queue"], "review queue against its capacity"),
        "<h2>Trend</h2>",
        _img(panels["trend"], "trend of the last runs"),
        _table(
            ["date", "run", "read", "scored", "quarantined", "ALLOW", "REVIEW", "BLOCK"],
            [
                (
                    t["date"],
                    t["run_id"],
                    t["sessions_read"],
                    t["sessions_scored"],
                    t["sessions_quarantined"],
                    *(t["decisions"].get(d, 0) for d in ("ALLOW", "REVIEW", "BLOCK")),
                )
                for t in doc["trend"]
            ],
        ),  # fmt: skip
        "<h2>Drift</h2>",
        "<ul>" + "".join(f"<li>{html.escape(r['note'])}</li>" for r in doc["drift"]["references"].values()) + "</ul>",
        _img(panels["drift"], "drift (PSI) of every feature and score"),
        _table(
            ["column", "kind", "PSI", "band", "compared with"],
            [
                (
                    c["column"],
                    c["kind"],
                    "n/a" if c["psi"] is None else f"{c['psi']:.4f}",
                    c["band"],
                    c["compared_with"],
                )
                for c in doc["drift"]["columns"]
            ],
            [c["band"].replace(" ", "-") for c in doc["drift"]["columns"]],
        ),
        f"<p>Generated {html.escape(str(doc['generated_at']))} ({html.escape(doc['built_by'])}).</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
