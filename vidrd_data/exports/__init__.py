"""`vidrd-data export OUT --to FORMAT`: a built output in the forms other tools read.

  index     DEST/index.parquet: one row per committed clip (key, shard, tar, byte offset, caption, scores,
            source, duration, ...) that pandas / DuckDB / polars query directly
  opensora  DEST/opensora.csv (path, text, num_frames, height, width, aspect_ratio, fps, resolution) + DEST/clips/
  webvid    DEST/webvid.csv (videoid, contentUrl, duration, page_dir, name) + DEST/clips/
  hf        DEST/ : a Hugging Face `datasets` save_to_disk folder (key, caption, mp4 bytes, poster, scores, ...)

Exports read the committed shards only and never change them; DEST defaults to OUT/exports/FORMAT.
"""

from __future__ import annotations

from pathlib import Path

from vidrd_data.exports.formats import export_hf, export_index, export_opensora, export_webvid

EXPORTERS = {"index": export_index, "opensora": export_opensora, "webvid": export_webvid, "hf": export_hf}


def export(output: str, to: str, dest: str | Path | None = None) -> Path:
    if to not in EXPORTERS:
        raise ValueError(f"export --to must be one of {', '.join(EXPORTERS)}, got {to!r}")
    if dest is None:
        if "://" in str(output):
            raise ValueError(f"output {output} is remote: give --dest (a local folder) for the export")
        dest = Path(output) / "exports" / to
    return EXPORTERS[to](str(output), Path(dest))


__all__ = ["EXPORTERS", "export"]
