"""The report's layout: sections in a fixed order, each marked by its own colour (a reader finds them; the
screenshot test checks each one rendered). Everything inline: CSS, SVG charts, data-URI posters."""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path

import yaml

from vidrd_data.report.data import ReportData, collect
from vidrd_data.report.svg import hbars, histogram, stacked_bars
from vidrd_data.sample_json import SCORE_KEYS

# id, title, marker colour (distinct from the charts' colours)
SECTIONS = (
    ("summary", "Summary", "#8e24aa"),
    ("outcomes", "Outcomes per source", "#00acc1"),
    ("reasons", "Why items were filtered or failed", "#c0ca33"),
    ("durations", "Clip durations", "#6d4c41"),
    ("scores", "Scores", "#e91e63"),
    ("captions", "Captions", "#3949ab"),
    ("samples", "Sample clips", "#00897b"),
    ("manifest", "Manifest and recipes", "#f4511e"),
)

CSS = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;background:#fff;max-width:1300px}
h1{font-size:24px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 10px;padding:4px 10px;border-left:14px solid}
.marker{display:inline-block;width:44px;height:14px;margin-right:10px;vertical-align:middle}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px} .card{width:176px;font-size:11px}
.card img{display:block;width:160px;height:auto;border:1px solid #ccc} .key{color:#555;word-break:break-all}
.facts{color:#777} pre{background:#f6f6f6;padding:10px;font-size:11px;max-height:none;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:16px}
"""


def _h2(sid: str) -> str:
    _, title, color = next(s for s in SECTIONS if s[0] == sid)
    return (f'<h2 id="{sid}" style="border-color:{color}"><span class="marker" style="background:{color}"></span>'
            f'{escape(title)}</h2>')


def _summary(d: ReportData) -> str:
    r = d.rows
    totals = {s: int((r["status"] == s).sum()) if len(r) else 0 for s in ("success", "filtered", "failed")}
    ok = r[r["status"] == "success"] if len(r) else r
    hours = float(ok["duration"].fillna(0).sum()) / 3600 if len(ok) else 0.0
    info = d.info
    facts = [("output", d.output), ("status rows", len(r)), ("samples (success)", totals["success"]),
             ("filtered", totals["filtered"]), ("failed", totals["failed"]), ("hours of video", f"{hours:.3f}"),
             ("shards", r["shard"].nunique() if len(r) else 0), ("package", info.get("package_version", "?")),
             ("config hash", info.get("config_hash", "?")), ("report made", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))]
    return "<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts) + "</table>"


def _reasons(d: ReportData) -> str:
    if not d.reasons:
        return "<p>Nothing was filtered or failed.</p>"
    bars = hbars([(f"{s} · {st} · {c}", n) for s, st, c, n in d.reasons[:25]])
    examples = d.rows[d.rows["status"] != "success"].groupby(["status", "stage"], dropna=False).head(2)
    table = "<table><tr><th>status</th><th>stage</th><th>example reason</th></tr>" + "".join(
        f"<tr><td>{escape(str(r.status))}</td><td>{escape(str(r.stage))}</td><td>{escape(str(r.reason)[:160])}</td></tr>"
        for r in examples.itertuples()) + "</table>"
    return bars + "<p>Examples:</p>" + table


def _scores(d: ReportData) -> str:
    r = d.rows
    charts = [histogram(r[f"score_{k}"].dropna().tolist(), k) for k in SCORE_KEYS if r[f"score_{k}"].notna().any()]
    if not charts:
        return "<p>No scores recorded (the curation stages did not run).</p>"
    return ('<p>All rows that recorded the score (success and filtered), so thresholds can be chosen here.</p>'
            f'<div class="charts">{"".join(charts)}</div>')


def _captions(d: ReportData) -> str:
    caps = d.rows.loc[d.rows["status"] == "success", "caption"].dropna().astype(str) if len(d.rows) else []
    lengths = [len(c) for c in caps]
    words = [len(c.split()) for c in caps]
    return (f'<div class="charts">{histogram(lengths, "caption length (characters)")}'
            f'{histogram(words, "words per caption", bins=min(20, max(words or [1])))}</div>'
            f"<p>Most frequent words (stop words left out):</p>{hbars(d.top_words)}")


def _samples(d: ReportData) -> str:
    if not d.samples:
        return "<p>No committed samples.</p>"
    return '<div class="grid">' + "".join(
        f'<div class="card"><img alt="{escape(s.key)}" src="{s.poster}"><div>{escape(s.caption[:200])}</div>'
        f'<div class="key">{escape(s.key)}</div><div class="facts">{escape(s.facts)}</div></div>' for s in d.samples) + "</div>"


def _manifest(d: ReportData) -> str:
    resolved = d.info.get("resolved")
    if not resolved:
        return "<p>dataset_info.json has no resolved manifest.</p>"
    text = yaml.safe_dump(json.loads(json.dumps(resolved, default=str)), sort_keys=False, allow_unicode=True)
    return f"<pre>{escape(text)}</pre>"


def render(d: ReportData) -> str:
    durations = d.rows.loc[d.rows["status"] == "success", "duration"].dropna().tolist() if len(d.rows) else []
    body = {
        "summary": _summary(d),
        "outcomes": stacked_bars(d.outcomes),
        "reasons": _reasons(d),
        "durations": histogram(durations, "duration (s) of committed clips", width=560),
        "scores": _scores(d),
        "captions": _captions(d),
        "samples": _samples(d),
        "manifest": _manifest(d),
    }
    nav = " · ".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in SECTIONS)
    name = d.info.get("resolved", {}).get("manifest", {}).get("name") or Path(d.output).name
    sections = "".join(f"<section>{_h2(sid)}{body[sid]}</section>" for sid, _, _ in SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vidrd dataset report: {escape(name)}</title>'
            f"<style>{CSS}</style></head><body><h1>Dataset report: {escape(name)}</h1><nav>{nav}</nav>{sections}</body></html>")


def write_report(output: str, dest: str | Path | None = None, n_samples: int = 24) -> Path:
    """Render the report of `output` to `dest` (default OUT/report.html) and return its path."""
    if dest is None and "://" in str(output):
        raise ValueError(f"output {output} is remote: give --dest (a local file) for the report")
    dest = Path(dest) if dest else Path(output) / "report.html"
    html = render(collect(output, n_samples=n_samples))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(html, encoding="utf-8")
    return dest
