"""CPU cost per clip of each curation signal, next to the cost of encoding the same clip (the unit of work
every recipe already pays), so the ratio carries over between machines.

    python benchmarks/bench_signals.py [--clips 24] [--frames 16] [--size 256] [--models tiny,ViT-B-32]

Clips: real-looking panned scenes (tests' generator), `--frames` frames at `--size`^2. One torch thread
(a Ray worker per core). CLIP models are built with random weights (same compute as real ones; nothing is
downloaded). Dedup cost is the claim into an index already holding `--index-size` clips.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def per_clip(fn, clips, repeats: int = 3) -> float:
    """Median over repeats of (seconds for all clips / clips), in milliseconds."""
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        for c in clips:
            fn(c)
        walls.append((time.perf_counter() - t) / len(clips))
    return 1000 * statistics.median(walls)


def random_clip_embedder(name: str, tmp: Path):
    """An OpenClipEmbedder of architecture `name` with random weights, loaded through the product's path."""
    import open_clip
    import torch

    from vidrd_data.models.clip_embedder import OpenClipEmbedder

    if name == "tiny":
        sys.path.insert(0, str(REPO))
        from vidrd_testing.demo_videos_long import prepare_tiny_clip

        return OpenClipEmbedder(prepare_tiny_clip(tmp), device="cpu")
    ckpt = tmp / f"{name}.bin"
    if not ckpt.exists():
        torch.save(open_clip.create_model(name, pretrained=None).state_dict(), ckpt)
    return OpenClipEmbedder({"name": name, "checkpoint": str(ckpt)}, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--index-size", type=int, default=100_000)
    ap.add_argument("--models", default="tiny,ViT-B-32", help="CLIP architectures for clip_align / aesthetic")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import tempfile

    import torch

    from tests.curation.cur_helpers import moving_frames
    from vidrd_data.curation.aesthetic import aesthetic_scores, build_mlp
    from vidrd_data.curation.clip_text import embed_texts
    from vidrd_data.curation.hashes import fingerprint
    from vidrd_data.curation.index import DedupIndex
    from vidrd_data.curation.motion import flow_motion
    from vidrd_data.media.encode import encode_mp4
    from vidrd_data.stages.curation_signals import _spread

    torch.set_num_threads(1)
    one, five, _ = os.getloadavg()
    print(f"{args.clips} clips of {args.frames} frames {args.size}x{args.size}; torch threads 1; "
          f"load average {one:.2f} {five:.2f} on {os.cpu_count()} cores")
    clips = [moving_frames(i, args.frames, size=(args.size, args.size), speed=3.0) for i in range(args.clips)]
    rows = [("encode (libx264 veryfast crf 20, reference)", per_clip(lambda c: encode_mp4(c, 8.0), clips, args.repeats))]
    rows.append(("fingerprint (sha256 + 3 keyframe pHash)", per_clip(fingerprint, clips, args.repeats)))
    rng = np.random.default_rng(0)
    idx = DedupIndex(5)
    for i in range(args.index_size):
        idx.add(f"k{i}", {"exact": f"{i:064x}", "informative": True,
                          "phash": [f"{int(h):016x}" for h in rng.integers(0, 2**63, 3)]})
    fps = [fingerprint(c) for c in clips]
    n = iter(range(10**9))
    rows.append((f"dedup claim (index of {args.index_size:,} clips, in process)",
                 per_clip(lambda fp: idx.claim(f"q{next(n)}", fp), fps, args.repeats)))
    rows.append(("motion (DIS ultrafast, 128 px wide, every frame pair)",
                 per_clip(lambda c: flow_motion(c, 8.0), clips, args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m for m in args.models.split(",") if m]:
            emb = random_clip_embedder(name, Path(tmp))
            picks = [c[_spread(len(c), 4)] for c in clips]
            rows.append((f"clip_align {name}: 4 frame + 1 text embeddings",
                         per_clip(lambda p: (emb.embed(p), embed_texts(emb, ["a caption of ten words or so for timing"])),
                                  picks, args.repeats)))
            dim = emb.embed(picks[0][:1]).shape[1]
            head = build_mlp([dim, 1024, 128, 64, 16, 1]).eval()
            embs = [emb.embed(p) for p in picks]
            rows.append((f"aesthetic head on {name} embeddings (LAION MLP, {dim}-d; CLIP shared with clip_align)",
                         per_clip(lambda e: aesthetic_scores(head, e), embs, args.repeats)))
    ref = rows[0][1]
    print(f"{'signal':<86} {'ms/clip':>9} {'x encode':>9}")
    for name, ms in rows:
        print(f"{name:<86} {ms:9.3f} {ms / ref:9.4f}")


if __name__ == "__main__":
    main()
