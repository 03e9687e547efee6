"""Small charts as inline SVG strings (no JavaScript, no plotting library): horizontal (stacked) bars and
histograms. Pure functions of their numbers; every label is escaped."""

from __future__ import annotations

from html import escape

import numpy as np

COLORS = {"success": "#2ca02c", "filtered": "#ff7f0e", "failed": "#d62728"}
BAR = "#4477aa"
_FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="12"'


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def stacked_bars(rows: dict[str, dict[str, int]], keys=("success", "filtered", "failed"), width: int = 560) -> str:
    """One horizontal bar per row label, segments per key (counts written inside when wide enough)."""
    if not rows:
        return "<p>(nothing)</p>"
    label_w, bar_h, gap = 140, 22, 8
    total_max = max(sum(r.get(k, 0) for k in keys) for r in rows.values()) or 1
    scale = (width - label_w - 60) / total_max
    h = len(rows) * (bar_h + gap) + 30
    parts = [f'<svg width="{width}" height="{h}" {_FONT}>']
    for i, (label, r) in enumerate(rows.items()):
        y = i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label[:22])}</text>')
        x = label_w
        for k in keys:
            w = r.get(k, 0) * scale
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS.get(k, BAR)}"/>')
                if w > 24:
                    parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" fill="white">{r[k]}</text>')
                x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{sum(r.get(k, 0) for k in keys)}</text>')
    ly = len(rows) * (bar_h + gap) + 12
    for j, k in enumerate(keys):
        parts.append(f'<rect x="{label_w + j * 90}" y="{ly}" width="12" height="12" fill="{COLORS.get(k, BAR)}"/>'
                     f'<text x="{label_w + j * 90 + 16}" y="{ly + 11}">{escape(k)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: list[tuple[str, float]], width: int = 560, color: str = BAR) -> str:
    """Horizontal bars, one per (label, value), longest label first as given."""
    if not items:
        return "<p>(nothing)</p>"
    label_w, bar_h, gap = 230, 16, 5
    vmax = max(v for _, v in items) or 1
    scale = (width - label_w - 50) / vmax
    h = len(items) * (bar_h + gap) + 4
    parts = [f'<svg width="{width}" height="{h}" {_FONT}>']
    for i, (label, v) in enumerate(items):
        y = i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(str(label)[:36])}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{max(v * scale, 1):.1f}" height="{bar_h}" fill="{color}"/>'
                     f'<text x="{label_w + v * scale + 4:.1f}" y="{y + 12}">{_fmt(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values, title: str, bins: int = 20, width: int = 360, height: int = 170, color: str = BAR) -> str:
    """A histogram with its title, n, and the range on the x axis."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    head = f'<text x="4" y="14" font-weight="bold">{escape(title)}</text>'
    if v.size == 0:
        return (f'<svg width="{width}" height="40" {_FONT}>{head}'
                f'<text x="4" y="32" fill="#888">no values</text></svg>')
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    top, bottom, left = 24, 22, 8
    plot_h, plot_w = height - top - bottom, width - 2 * left
    bw = plot_w / bins
    cmax = counts.max() or 1
    parts = [f'<svg width="{width}" height="{height}" {_FONT}>', head,
             f'<text x="{width - 4}" y="14" text-anchor="end" fill="#555">n={v.size} mean={_fmt(float(v.mean()))}</text>']
    for i, c in enumerate(counts):
        bh = c / cmax * plot_h
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{top + plot_h - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{bh:.1f}" fill="{color}"/>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - left}" y2="{top + plot_h}" stroke="#333"/>'
                 f'<text x="{left}" y="{height - 6}">{_fmt(edges[0])}</text>'
                 f'<text x="{width - left}" y="{height - 6}" text-anchor="end">{_fmt(edges[-1])}</text></svg>')
    return "".join(parts)
