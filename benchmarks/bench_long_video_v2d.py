"""video2dataset 1.3 as a long-video anchor: its cut detection, exact clipping and 256 resize, in its own venv.

Set up with `bash benchmarks/anchors/setup_video2dataset.sh` (pinned versions, gitignored venv).
The harness runs inside that venv. Only the subsamplers are imported (the package __init__ imports main ->
torch, whisper, ...): cut detection -> clipping (exact) -> resolution (256, scale+crop), in SubsetWorker's
order, one video per call, as `video2dataset --input_format webdataset` (subset mode) with cuts_are_clips
would. Calling them directly also steps around two ways the shipped CLI fails on this job:
incremental_mode=overwrite deletes the input shards when reading and writing the same folder (here input
and output never meet), and SubsetWorker reads `encode_formats` from ResolutionSubsampler, which only has
`encode_format` (here it is passed as such).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HARNESS = r"""
import importlib, sys, time, types, json, os
import numpy as np
site = [p for p in sys.path if p.endswith("site-packages")][0]
for name in ("video2dataset", "video2dataset.subsamplers"):
    mod = types.ModuleType(name)
    mod.__path__ = [os.path.join(site, *name.split("."))]
    sys.modules[name] = mod
cut = importlib.import_module("video2dataset.subsamplers.cut_detection_subsampler")
clip = importlib.import_module("video2dataset.subsamplers.clipping_subsampler")
res = importlib.import_module("video2dataset.subsamplers.resolution_subsampler")
video, out = sys.argv[1], sys.argv[2]
streams = {"video": [open(video, "rb").read()]}
detector = cut.CutDetectionSubsampler(cut_detection_mode="all", threshold=27, min_scene_len=15)
streams, cuts, err = detector(streams)
assert err is None, err
meta = {"key": "0", "clips": (np.array(cuts["cuts_original_fps"]) / cuts["original_fps"]).tolist()}
clipper = clip.ClippingSubsampler(5, {"video": "mp4"}, precision="exact")
clips, metas, err = clipper(streams, meta)
assert err is None, err
resize = res.ResolutionSubsampler(resize_mode=["scale", "crop"], video_size=256, encode_format="mp4")
os.makedirs(out, exist_ok=True)
for i, b in enumerate(clips["video"]):
    s, _, err = resize({"video": [b]})
    assert err is None, err
    open(os.path.join(out, f"{i:04d}.mp4"), "wb").write(s["video"][0])
print(json.dumps({"clips": len(clips["video"])}))
"""


def run_v2d(python: str, video: Path, out: Path) -> int:
    """Clips video2dataset wrote (the caller times the call)."""
    out.mkdir(parents=True, exist_ok=True)
    script = out.parent / "v2d_harness.py"
    script.write_text(HARNESS)
    res = subprocess.run([python, str(script), str(video), str(out)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"video2dataset harness failed on {video.name}: {res.stderr.strip()[-800:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["clips"]
