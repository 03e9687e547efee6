"""Where the time goes: each pipeline's CPU stages in this process under cProfile (no Ray, no model stages).

  python benchmarks/profile_pipelines.py [image_text|short_video|long_video ...] [--top 15] [--full]

Each runs its recipe's stages as shipped (pipelines/*.yaml), except the model stages (captioners, CLIP
scores: actors in a build, their cost depends on real weights; an `original` caption stands in):
image_text   on 64 (--full 256) JPEGs (1024 px) of the demo photos, 16 frames 256x256 @ 8 fps
short_video  on the real offline videos, plan_clips multi (6 per video), 16 frames 256x256 @ 8 fps
long_video   on a 1-minute (--full: 3) 640x360 25-fps concatenation, colour-histogram shot embeddings,
             segmentation filters off, whole shots 256x256 @ 25 fps (bench_long_video's like-for-like spec)
Prints wall seconds per stage and the top functions by own time (tottime) and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, load_note, run_stages  # noqa: E402


def _items(kind: str, paths: list[Path]):
    from vidrd_data.items import Item, make_key

    return [Item(key=make_key("prof", p.name), source="prof", input_id=p.name, data={"path": str(p)},
                 meta={"source": {"kind": kind}, "captions": {"original": "a caption"}}) for p in paths]


def recipe_cpu_stages(recipe: str, overrides: dict[str, dict], clip: dict) -> tuple[list[tuple[str, dict]], list[str]]:
    """The recipe's stages as shipped (params + overrides, plus what each derives from the others and the clip
    spec, as the manifest resolves them), minus its model stages (actors in a build; the captioners' cost depends
    on real weights). The skipped captioners' place is taken by an `original` caption on each item, so
    caption_select keeps every clip."""
    import yaml

    from vidrd_data.manifest import StageSpec, _with_derived_params
    from vidrd_data.stages.base import get_stage

    doc = yaml.safe_load((REPO / "pipelines" / recipe).read_text())
    resolved = _with_derived_params([StageSpec(stage=st["stage"], params={**(st.get("params") or {}),
                                                                          **overrides.get(st["stage"], {})})
                                     for st in doc["stages"]], clip)
    specs, skipped = [], []
    for st in resolved:
        if get_stage(st.stage).uses_model:
            skipped.append(st.stage)
            continue
        params = dict(st.params)
        if st.stage == "caption_select":
            params["priority"] = ["original"]
        specs.append((st.stage, params))
    return specs, skipped


def image_text(work: Path, full: bool):
    from bench_pseudo_video import make_inputs

    paths = make_inputs(work / "img", 256 if full else 64, "jpg")
    items = _items("image", paths)
    for it, p in zip(items, paths):  # the caption sidecar, as the folder source hands it on
        it.data["caption_path"] = str(p.with_suffix(".txt"))
    clip = {"fps": 8, "size": [256, 256], "frames": 16}
    specs, skipped = recipe_cpu_stages("image_text.yaml", {}, clip)
    return specs, skipped, clip, items


def short_video(work: Path, full: bool):
    from bench_short_video import offline_videos

    clip = {"fps": 8, "size": [256, 256], "frames": 16}
    specs, skipped = recipe_cpu_stages("short_video.yaml", {"plan_clips": {"policy": "multi", "max_clips": 6}}, clip)
    return specs, skipped, clip, _items("video", offline_videos())


def long_video_specs() -> tuple[list[tuple[str, dict]], list[str]]:
    """The long_video recipe's CPU stages, bench_long_video's like-for-like overrides, histogram embedder."""
    from bench_long_video import CLIP, FILTERS_OFF

    specs, skipped = recipe_cpu_stages("long_video.yaml", {"segment_shots": FILTERS_OFF}, CLIP)
    skipped.remove("embed_shots")  # the colour-histogram embedder is model-free: it runs here
    at = [n for n, _ in specs].index("segment_shots")
    specs.insert(at, ("embed_shots", {"model": "color_histogram"}))
    return specs, skipped


def video_items(paths: list[Path]):
    return _items("video", paths)


def long_video(work: Path, full: bool):
    from bench_long_video import CLIP, make_input

    specs, skipped = long_video_specs()
    return specs, skipped, CLIP, video_items([make_input(work, 3.0 if full else 1.0)])


PIPELINES = {"image_text": image_text, "short_video": short_video, "long_video": long_video}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipelines", nargs="*", help=f"any of {', '.join(PIPELINES)} (default: all)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    unknown = set(args.pipelines) - set(PIPELINES)
    if unknown:
        ap.error(f"unknown pipelines {sorted(unknown)}; choose from {', '.join(PIPELINES)}")
    for name in args.pipelines or list(PIPELINES):
        with tempfile.TemporaryDirectory(prefix="prof_") as d:
            specs, skipped, clip, items = PIPELINES[name](Path(d), args.full)
            run_stages(specs, clip, items[:1])  # imports, scaler caches: not profiled
            specs, skipped, clip, items = PIPELINES[name](Path(d), args.full)
            timings: dict[str, float] = {}
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            out = run_stages(specs, clip, items, timings)
            prof.disable()
            wall = time.perf_counter() - t
        kept = sum(1 for it in out if it.alive)
        print(f"\n=== {name}: {len(items)} inputs -> {kept} clips in {wall:.2f} s, one process; {load_note()}")
        print(f"  model stages not run here: {', '.join(skipped) or 'none'}")
        print("  stage wall s: " + ", ".join(f"{k} {v:.2f} ({v / wall:.0%})" for k, v in timings.items()))
        for key in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(args.top)
            lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
            start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
            print(f"  top {args.top} by {key}:")
            print("\n".join("    " + ln for ln in lines[start:start + args.top + 1]))


if __name__ == "__main__":
    main()
