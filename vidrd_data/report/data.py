"""What the report shows, read from a built output: status rows flattened, per-source outcomes, reason
classes, caption statistics, a sample of committed clips (poster, caption, scores) and the manifest."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PIL import Image

from vidrd_data.reasons import reason_rule
from vidrd_data.sample_json import SCORE_KEYS

STATUSES = ("success", "filtered", "failed")
_STOP = set("a an the of in on at with and to from by is are it its this that for as be or".split())


def flatten(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per status row with duration, caption and every score as columns (from the metadata json)."""
    recs = []
    for meta in rows.get("metadata", pd.Series(dtype=object)):
        m = json.loads(meta) if isinstance(meta, str) and meta else {}
        video = m.get("video") or {}
        caps = m.get("captions") or {}
        rec = {"duration": video.get("duration"), "caption": caps.get(m.get("caption_source") or "", None)}
        rec.update({f"score_{k}": (m.get("scores") or {}).get(k) for k in SCORE_KEYS})
        recs.append(rec)
    flat = pd.DataFrame(recs, index=rows.index)
    return pd.concat([rows.drop(columns=[c for c in flat.columns if c in rows.columns]), flat], axis=1)


@dataclass
class Sample:
    key: str
    caption: str
    poster: str  # data URI
    facts: str


@dataclass
class ReportData:
    output: str
    rows: pd.DataFrame
    info: dict[str, Any]
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: list[tuple[str, str, str, int]] = field(default_factory=list)  # status, stage, class, count
    top_words: list[tuple[str, int]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def _thumb_uri(jpg: bytes, side: int) -> str:
    img = Image.open(io.BytesIO(jpg)).convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _samples(output: str, rows: pd.DataFrame, n: int, side: int, seed: int) -> list[Sample]:
    """n committed samples picked at random (seeded) from the success rows; only their shards' tars are read."""
    from vidrd_format.shards import committed_shards

    ok = rows[rows["status"] == "success"] if len(rows) else rows
    picks = sorted(random.Random(seed).sample(list(zip(ok["shard"], ok["key"])), min(n, len(ok))))
    want: dict[str, set[str]] = {}
    for stem, key in picks:
        want.setdefault(stem, set()).add(key)
    out = []
    for sh in committed_shards(output):
        keys = want.get(sh.stem)
        if not keys:
            continue
        found: dict[str, dict[str, bytes]] = {}
        with sh.fs.open(sh.files.tar, "rb") as f, tarfile.open(fileobj=f) as tar:
            for m in tar:
                key, _, ext = m.name.partition(".")
                if key in keys and ext in ("jpg", "txt", "json"):
                    found.setdefault(key, {})[ext] = tar.extractfile(m).read()
        for key in sorted(found):
            s = found[key]
            meta = json.loads(s.get("json", b"{}"))
            v = meta.get("video") or {}
            scores = ", ".join(f"{k} {val:.3g}" for k, val in (meta.get("scores") or {}).items() if val is not None)
            facts = f"{meta.get('source', {}).get('dataset', '')} · {v.get('frames')} fr {v.get('width')}x{v.get('height')}"
            out.append(Sample(key, s.get("txt", b"").decode("utf-8", "replace"), _thumb_uri(s["jpg"], side),
                              facts + (f" · {scores}" if scores else "")))
    return out


def collect(output: str, n_samples: int = 24, thumb: int = 160, seed: int = 0) -> ReportData:
    from vidrd_data.sink import read_status

    import fsspec

    fs, root = fsspec.core.url_to_fs(output)
    info_path = f"{root.rstrip('/')}/dataset_info.json"
    info = json.loads(fs.cat_file(info_path)) if fs.exists(info_path) else {}
    rows = read_status(output)
    if rows.empty and not info:
        raise ValueError(f"{output}: no committed shards and no dataset_info.json: is this a build output?")
    rows = flatten(rows)
    data = ReportData(output, rows, info)
    for src, grp in rows.groupby("source") if len(rows) else []:
        data.outcomes[str(src)] = {s: int((grp["status"] == s).sum()) for s in STATUSES}
    bad = rows[rows["status"] != "success"] if len(rows) else rows
    counts = Counter((r.status, r.stage or "-", reason_rule(r.reason)) for r in bad.itertuples())
    data.reasons = [(s, st, c, n) for (s, st, c), n in counts.most_common()]
    words = Counter(w for cap in rows.loc[rows["status"] == "success", "caption"].dropna()
                    for w in re.findall(r"[a-z']+", str(cap).lower()) if w not in _STOP)
    data.top_words = words.most_common(20)
    data.samples = _samples(output, rows, n_samples, thumb, seed)
    return data
