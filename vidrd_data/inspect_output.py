"""`vidrd-data inspect OUT`: counts by source and status, filter/failure reasons grouped by rule
(vidrd_data.reasons), and a contact sheet PNG."""

from __future__ import annotations

import io
import json
import random
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidrd_data.media.encode import decode_mp4_bytes
from vidrd_data.reasons import reason_rule
from vidrd_data.sink import iter_samples, read_status


def summarize(output: str) -> str:
    rows = read_status(output)
    if rows.empty:
        return f"{output}: no committed shards"
    lines = [f"{output}: {len(rows)} status rows in {rows['shard'].nunique()} shard(s)"]
    table = rows.pivot_table(index="source", columns="status", values="key", aggfunc="count", fill_value=0)
    lines.append(table.to_string())
    bad = rows[rows["status"] != "success"].copy()
    if len(bad):
        lines.append("reasons by rule (filtered / failed), with one example each:")
        bad["rule"] = bad["reason"].map(reason_rule)
        bad["stage"] = bad["stage"].fillna("-")
        groups = bad.groupby(["status", "stage", "rule"], sort=False)
        table = groups.agg(n=("key", "size"), example=("reason", "first")).sort_values("n", ascending=False)
        for (status, stage, rule), row in table.head(30).iterrows():
            lines.append(f"  {row.n:5d}  {status:8s} {stage:14s} {rule:22s} "
                         f"e.g. {textwrap.shorten(str(row.example), 90)}")
    return "\n".join(lines)


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def contact_sheet(output: str, path: str | Path, n: int = 12, seed: int = 0, thumb: int = 128) -> Path:
    """A grid: one row per sampled clip (first, middle, last frame) with its key and caption."""
    samples = list(iter_samples(output))
    if not samples:
        raise ValueError(f"{output}: no samples to draw")
    picked = sorted(random.Random(seed).sample(samples, min(n, len(samples))), key=lambda s: s["key"])
    font, small = _font(13), _font(11)
    text_w = 360
    row_h = thumb + 8
    sheet = Image.new("RGB", (3 * (thumb + 4) + text_w + 8, row_h * len(picked) + 4), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for r, s in enumerate(picked):
        frames, fps = decode_mp4_bytes(s["mp4"])
        meta = json.loads(s["json"])
        y = 4 + r * row_h
        for c, idx in enumerate((0, len(frames) // 2, len(frames) - 1)):
            img = Image.fromarray(frames[idx])
            img.thumbnail((thumb, thumb))
            sheet.paste(img, (4 + c * (thumb + 4), y))
        x = 4 + 3 * (thumb + 4) + 4
        draw.text((x, y), s["key"][:48], fill=(20, 20, 120), font=small)
        v = meta.get("video") or {}
        motion = (meta.get("pseudo_video") or {}).get("kind")
        span = meta["source"].get("span")
        where = f"motion {motion}" if motion else (f"span {span[0]:.2f}-{span[1]:.2f} s" if span else "")
        draw.text((x, y + 16), f"{len(frames)} fr @ {fps:g} fps {v.get('width')}x{v.get('height')}  {where}",
                  fill=(90, 90, 90), font=small)
        caption = s["txt"].decode("utf-8")
        for k, line in enumerate(textwrap.wrap(f"[{meta.get('caption_source')}] {caption}", 48)[:5]):
            draw.text((x, y + 34 + 16 * k), line, fill=(0, 0, 0), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
