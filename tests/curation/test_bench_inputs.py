"""The pseudo-video benchmark's inputs: distinct enough that the recipe's dedup keeps every one, or the build
would encode fewer clips than its anchor and the bench (rightly) refuses to compare."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_bench_views_are_apart_by_phash(tmp_path, demo_data):
    from bench_pseudo_video import make_inputs

    from vidrd_data.curation.hashes import hamming, phash

    paths = make_inputs(tmp_path, 240, "jpg")  # 15 views of each of the 16 demo photos
    assert len(paths) == 240 and len({p.name for p in paths}) == 240
    hashes = []
    for p in paths:
        img = Image.open(p)
        img.draft("RGB", (512, 512))  # as the recipe's load_image decodes it
        hashes.append(phash(np.asarray(img.convert("RGB"))))
        assert p.with_suffix(".txt").read_text().strip()  # its caption travels with it
    closest = min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    assert closest > 5, f"two bench inputs within the recipe's max_distance 5: {closest} bits"
