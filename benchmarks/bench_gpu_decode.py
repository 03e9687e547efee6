"""Decoding with and without the GPU path: PyAV (CPU) vs torchcodec on the GPU (media.gpu_decode, gpu_scan).

  python benchmarks/bench_gpu_decode.py [--repeats 3] [--clips-per-video 6] [--device cuda|cpu] [--long-minutes 1]

The short-video bench's inputs and spans (the real offline videos, the recipe's planned 2-s clips at 256x256,
8 fps), cut the way the `cut` stage does: PyAV (`decoder: cpu`) vs `cut_spans(device=...)` (what `decoder:
auto` takes in a task Ray gave a GPU share), interleaved rounds in this one process, plus the same with
the clips encoded (libx264 veryfast crf 20). `--device` defaults to cuda where torch sees a GPU; on a CPU-only
machine it runs torchcodec's CPU decoder through the same code, for the record only (files the torchcodec path
hands to PyAV, e.g. AVI, count on both sides). Then the long-video scan (shot detection, embedding samples,
proxy: `scan_video` one pass vs `scan_on_device`) on the long-video bench's 640x360 source. Prints clips/s,
source seconds/s and `RATIO` lines (no target: a record).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import interleave, load_note, ratio_line  # noqa: E402
from bench_short_video import FPS, SIZE, offline_videos, plan  # noqa: E402


def cut_all(spans: dict, seconds: float, device: str | None, encode: bool) -> int:
    from vidrd_data.media.encode import EncodeSettings, encode_mp4
    from vidrd_data.media.gpu_decode import cut_spans

    n = 0
    for path, sp in spans.items():
        for res in cut_spans(path, sp, FPS, SIZE, frames=int(round(seconds * FPS)), device=device):
            if hasattr(res, "frames"):
                n += 1
                if encode:
                    encode_mp4(res.frames, FPS, EncodeSettings(preset="veryfast", crf=20))
    return n


def scan_long(video: Path, device: str | None) -> float:
    from vidrd_data.media.gpu_scan import scan_on_device
    from vidrd_data.media.scan import ScanConfig, scan_video

    cfg = ScanConfig(clip_fps=25.0, clip_size=(256, 256))
    res = scan_video(str(video), cfg) if device is None else scan_on_device(str(video), cfg, device)
    return res.duration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips-per-video", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--device", default=None, help="torch device of the torchcodec path (default: cuda if present)")
    ap.add_argument("--long-minutes", type=float, default=1.0, help="long-video scan source (0: skip)")
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"bench_gpu_decode: torchcodec path on {device}" + ("" if device.startswith("cuda") else
          " (no GPU: a record of the same code on the CPU, not a GPU figure)") + f"; {load_note()}")
    spans = plan(offline_videos(), args.seconds, args.clips_per_video)
    clips = sum(len(v) for v in spans.values())
    print(f"  {len(spans)} videos, {clips} clips of {args.seconds:g} s at {SIZE[0]}x{SIZE[1]}, {FPS:g} fps")
    cut_all(spans, args.seconds, device, False)  # warm-up: CUDA context, torch kernels, file cache
    runs = interleave({
        "pyav": lambda: cut_all(spans, args.seconds, None, False),
        f"torchcodec-{device}": lambda: cut_all(spans, args.seconds, device, False),
        "pyav+encode": lambda: cut_all(spans, args.seconds, None, True),
        f"torchcodec-{device}+encode": lambda: cut_all(spans, args.seconds, device, True),
    }, args.repeats)
    for name, t in runs.items():
        print(f"  {name}: {t.extra[-1] / t.median:.1f} clips/s (median {t.median:.2f} s)")
    print(ratio_line(f"clip decoding, torchcodec on {device} vs PyAV", runs[f"torchcodec-{device}"], runs["pyav"], None))
    print(ratio_line(f"clip decoding + encode, torchcodec on {device} vs PyAV", runs[f"torchcodec-{device}+encode"],
                     runs["pyav+encode"], None))
    if args.long_minutes:
        import tempfile

        from bench_long_video import make_input

        with tempfile.TemporaryDirectory() as tmp:
            video = make_input(Path(tmp), args.long_minutes)
            scan_long(video, device)  # warm-up
            runs = interleave({"scan pyav": lambda: scan_long(video, None),
                               f"scan torchcodec-{device}": lambda: scan_long(video, device)}, args.repeats)
        for name, t in runs.items():
            print(f"  {name}: {t.extra[-1] / t.median:.1f} source s/s (median {t.median:.2f} s)")
        print(ratio_line(f"long-video scan, torchcodec on {device} vs PyAV (one pass each)",
                         runs[f"scan torchcodec-{device}"], runs["scan pyav"], None))


if __name__ == "__main__":
    main()
