"""`vidrd-model eval`: FVD (I3D), IS (UCF-101 C3D) and CLIPSIM (open_clip) of generated videos.

    vidrd-model eval videos --videos DIR --real DIR ...     metrics of videos you already have
    vidrd-model eval ucf101 --ucf-root UCF-101 --model M ... the UCF-101 zero-shot protocol: generate, then measure

Network weights are never downloaded: --i3d and --c3d are TorchScript files, --clip-checkpoint an open_clip
weights file. Every setting that changes a number is written to the result json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from . import sample as sample_cmd


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="FVD / IS / CLIPSIM, and the UCF-101 zero-shot protocol",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="eval_command", required=True)

    v = sub.add_parser("videos", help="metrics of a folder of generated videos",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument("--videos", required=True, help="folder of generated .mp4 (searched recursively)")
    v.add_argument("--prompts", help="json {file name or relative path: prompt} (default: each mp4's metadata)")
    g = v.add_argument_group("real videos (for FVD): one of")
    g.add_argument("--real", help="folder of real videos (searched recursively)")
    g.add_argument("--real-stats", help="an .npz of real I3D statistics written by an earlier run")
    g.add_argument("--real-stride", type=int, default=1, help="take every n-th frame of the real videos")
    _add_metric_arguments(v)
    v.set_defaults(func=run)

    u = sub.add_parser("ucf101", help="zero-shot UCF-101: generate per the training-split distribution, measure",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = u.add_argument_group("UCF-101")
    d.add_argument("--ucf-root", required=True, help="the UCF-101 folder (one sub-folder per class)")
    d.add_argument("--splits-dir", help="ucfTrainTestlist/ (default: looked for beside/inside --ucf-root; "
                   "without it split 1 is derived from the file names)")
    d.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="UCF-101 train/test split number")
    d.add_argument("--num-videos", type=int, default=10000, help="generated videos in total")
    d.add_argument("--class-prompts", help="json of class prompts (default: the shipped ucf101_prompts.json)")
    d.add_argument("--num-real", type=int, help="real videos for the statistics (default: the whole split)")
    d.add_argument("--real-stride", type=int, default=1, help="take every n-th frame of the real videos")
    d.add_argument("--out-dir", required=True, help="generated videos go to OUT/videos/<Class>/, results to OUT")
    d.add_argument("--skip-generation", action="store_true", help="measure the videos already in OUT/videos")
    sample_cmd.add_model_arguments(u)
    u.add_argument("--negative-prompt", default="watermark", help="what guidance steers away from")
    sample_cmd.add_sampler_arguments(u, num_clips=2)
    dec = u.add_argument_group("decoding")
    sample_cmd.add_decode_arguments(dec)
    dec.add_argument("--fps", type=float, default=8.0, help="frame rate written to the generated mp4s")
    _add_metric_arguments(u)
    u.set_defaults(func=run)
    return p


def _add_metric_arguments(p) -> None:
    m = p.add_argument_group("metrics")
    m.add_argument("--metrics", nargs="+", default=["fvd", "is", "clipsim"], choices=["fvd", "is", "clipsim"],
                   help="which metrics to compute")
    m.add_argument("--i3d", help="TorchScript I3D for FVD (e.g. the StyleGAN-V i3d_torchscript.pt)")
    m.add_argument("--c3d", help="TorchScript C3D fine-tuned on UCF-101, for IS (101 logits)")
    m.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name, for CLIPSIM")
    m.add_argument("--clip-checkpoint", help="open_clip weights file for --clip-model")
    m.add_argument("--fvd-frames", type=int, default=16, help="frames per video fed to I3D")
    m.add_argument("--is-frames", type=int, default=16, help="frames per video fed to C3D")
    m.add_argument("--is-splits", type=int, default=1, help="IS over this many splits (mean ± std)")
    m.add_argument("--batch-size", type=int, default=8, help="videos per feature-model forward pass")
    m.add_argument("--output", help="result json (default: OUT/results.json or ./eval_results.json)")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    sample_cmd.add_runtime_arguments(p)


def _networks(args):
    import dataclasses

    from vidrd_model.evaluation.feature_models import C3D_PREPROCESS, I3D_PREPROCESS, load_c3d, load_i3d

    i3d = c3d = clip = None
    missing = []
    if "fvd" in args.metrics:
        if not args.i3d:
            missing.append("--i3d (FVD)")
        else:
            i3d = load_i3d(args.i3d, args.device, dataclasses.replace(I3D_PREPROCESS, num_frames=args.fvd_frames))
    if "is" in args.metrics:
        if not args.c3d:
            missing.append("--c3d (IS)")
        else:
            c3d = load_c3d(args.c3d, args.device, dataclasses.replace(C3D_PREPROCESS, num_frames=args.is_frames))
    if "clipsim" in args.metrics:
        if not args.clip_checkpoint:
            missing.append("--clip-checkpoint (CLIPSIM)")
        else:
            from vidrd_model.evaluation.clipsim import ClipSimilarity

            clip = ClipSimilarity(args.clip_model, args.clip_checkpoint, args.device)
    if missing:
        raise ValueError(f"missing network weights: {', '.join(missing)}; or leave those out of --metrics")
    return i3d, c3d, clip


def run(args) -> int:
    args.device = sample_cmd.resolve_device(args.device)
    sample_cmd.apply_precision(args)
    try:
        if args.eval_command == "videos":
            record, out = run_videos(args)
        else:
            record, out = run_ucf101(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"vidrd-model eval: {exc}", file=sys.stderr)
        return 2
    from vidrd_model.evaluation.runner import write_json

    write_json(out, record)
    print(json.dumps({"results": str(out), **record["metrics"]}))
    return 0


def run_videos(args):
    from vidrd_model.evaluation.feature_models import VIDEO_SUFFIXES
    from vidrd_model.evaluation.frechet import FeatureStatistics
    from vidrd_model.evaluation.runner import collect_generated, evaluate_videos, real_statistics, result_record

    prompts = json.loads(Path(args.prompts).read_text()) if args.prompts else None
    videos = collect_generated(Path(args.videos), prompts)
    i3d, c3d, clip = _networks(args)
    real_stats = real_settings = None
    if "fvd" in args.metrics:
        if args.real_stats:
            real_stats = FeatureStatistics.load(args.real_stats)
            real_settings = {"stats_file": args.real_stats}
        elif args.real:
            paths = sorted(p for p in Path(args.real).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
            if not paths:
                raise FileNotFoundError(f"no videos under --real {args.real}")
            real_stats, real_settings = real_statistics(i3d, paths, args.batch_size, args.real_stride,
                                                        progress=not args.no_progress)
            real_settings["folder"] = args.real
        else:
            raise ValueError("FVD needs real videos: --real DIR or --real-stats FILE.npz")
    evaluation = evaluate_videos(videos, args.metrics, i3d, c3d, clip, real_stats, real_settings,
                                 args.batch_size, args.is_splits, progress=not args.no_progress)
    record = result_record(evaluation, protocol="videos", generated_folder=args.videos)
    return record, Path(args.output or "eval_results.json")


def run_ucf101(args):
    from vidrd_model.evaluation import ucf101
    from vidrd_model.evaluation.runner import GeneratedVideo, evaluate_videos, real_statistics, result_record

    out_dir = Path(args.out_dir)
    prompts = ucf101.load_prompts(args.class_prompts)
    split = ucf101.training_split(args.ucf_root, args.split, args.splits_dir)
    split_dir = Path(args.splits_dir) if args.splits_dir else ucf101.find_split_dir(Path(args.ucf_root))
    class_ind = split_dir / "classInd.txt" if split_dir else None
    classes = ucf101.read_class_index(class_ind) if class_ind and class_ind.is_file() else list(prompts)
    counts = ucf101.allocate_counts(split.class_counts(), args.num_videos, classes)
    plan = ucf101.generation_plan(counts, prompts, base_seed=args.seed)
    settings = sample_cmd.settings_from_args(args)
    video_dir = out_dir / "videos"
    model_source = None
    if not args.skip_generation:
        model_source = generate_plan(args, plan, settings, video_dir)
    videos = [GeneratedVideo(video_dir / job.relative_path, job.prompt) for job in plan]
    absent = [str(v.path) for v in videos if not v.path.is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} planned videos are missing (first: {absent[0]}); run without "
                                "--skip-generation to make them")

    i3d, c3d, clip = _networks(args)
    real_stats = real_settings = None
    if "fvd" in args.metrics:
        real_paths = split.paths()
        if args.num_real and args.num_real < len(real_paths):
            real_paths = sorted(random.Random(args.seed).sample(real_paths, args.num_real))
        real_stats, real_settings = real_statistics(
            i3d, real_paths, args.batch_size, args.real_stride,
            cache=out_dir / f"real_stats_i3d_split{args.split}_n{len(real_paths)}.npz", progress=not args.no_progress,
        )
        real_settings.update(source=split.source, split=args.split, root=str(split.root))
    evaluation = evaluate_videos(videos, args.metrics, i3d, c3d, clip, real_stats, real_settings,
                                 args.batch_size, args.is_splits, progress=not args.no_progress)
    record = result_record(
        evaluation,
        protocol="ucf101-zero-shot",
        ucf101={"split": args.split, "split_source": split.source, "num_videos": args.num_videos,
                "counts_per_class": counts, "prompts": {c: prompts[c] for c in counts},
                "class_prompts_file": args.class_prompts or "vidrd_model/evaluation/data/ucf101_prompts.json"},
        generation={"sampler": settings.to_dict(), "scheduler": args.scheduler, "negative_prompt": args.negative_prompt,
                    "base_seed": args.seed, "decode": args.decode, "drop_overlap": args.drop_overlap,
                    "height": args.height, "width": args.width, "fps": args.fps, "dtype": args.dtype,
                    "device": args.device, "no_tf32": args.no_tf32,
                    "model": model_source, "skipped": args.skip_generation},
    )
    return record, Path(args.output or out_dir / "results.json")


def generate_plan(args, plan, settings, video_dir: Path) -> dict:
    """Generate every planned video not already on disk (resumable: a video appears only once complete)."""
    import torch
    from tqdm.auto import tqdm

    from vidrd_model.pipeline_vidrd import VidRDPipeline
    from vidrd_model.sampling.model_source import load_components
    from vidrd_model.sampling.schedulers import make_scheduler
    from vidrd_model.sampling.writer import VideoWriter

    todo = [job for job in plan if not (video_dir / job.relative_path).is_file()]
    components, source = load_components(
        model=args.model, released_checkpoint=args.released_checkpoint, sd_base=args.sd_base,
        vae_finetuned=args.vae_finetuned, base_model=args.base_model, use_ema=not args.no_ema,
        device=args.device, dtype=getattr(torch, args.dtype),
    )
    pipe = VidRDPipeline.from_components(components)
    pipe.scheduler = make_scheduler(args.scheduler, components.scheduler.config)
    for job in tqdm(todo, desc="generating", unit="video", disable=args.no_progress):
        final = video_dir / job.relative_path
        partial = final.with_name(final.stem + ".partial.mp4")
        generator = torch.Generator(device=args.device).manual_seed(job.seed)
        meta = {"prompt": job.prompt, "class": job.class_name, "seed": job.seed, "sampler": settings.to_dict(),
                "scheduler": args.scheduler, "decode": args.decode, "drop_overlap": args.drop_overlap}
        with VideoWriter(partial, fps=args.fps, metadata=meta, sidecar=False) as writer:
            pipe(job.prompt, settings=settings, negative_prompt=args.negative_prompt, height=args.height,
                 width=args.width, generator=generator, decode_mode=args.decode, drop_overlap=args.drop_overlap,
                 output_type=None, on_clip=writer.write_clip, progress=False)
        os.replace(partial, final)
    return source
