"""The UCF-101 zero-shot protocol.

- One descriptive prompt per class (`data/ucf101_prompts.json`, classInd.txt order).
- Generation counts per class follow the class distribution of the training split (split 1 by default), scaled
  to `total` videos (10,000 by default) with largest-remainder rounding, so the counts sum exactly to `total`.
- Real-video statistics come from the user's UCF-101 folder (`UCF-101/<Class>/v_<Class>_gGG_cCC.avi`), restricted
  to the same training split. With the official lists (`ucfTrainTestlist/trainlist0{1,2,3}.txt`) the split is
  read from them; without them, split 1 is derived from the file names (groups 8–25 train, 1–7 test).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

from .feature_models import VIDEO_SUFFIXES

PROMPTS_RESOURCE = "data/ucf101_prompts.json"
_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def load_prompts(path: str | Path | None = None) -> dict[str, str]:
    """{class name: prompt} in classInd order (the shipped prompts unless `path` is given)."""
    if path is None:
        text = resources.files("vidrd_model.evaluation").joinpath(PROMPTS_RESOURCE).read_text()
    else:
        text = Path(path).read_text()
    data = json.loads(text)
    entries = data["classes"] if isinstance(data, dict) and "classes" in data else data
    if isinstance(entries, dict):
        return dict(entries)
    return {e["name"]: e["prompt"] for e in entries}


def read_class_index(path: str | Path) -> list[str]:
    """classInd.txt ("1 ApplyEyeMakeup" per line) -> class names in index order."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            idx, name = line.split()
            rows.append((int(idx), name))
    return [name for _, name in sorted(rows)]


def find_split_dir(root: Path) -> Optional[Path]:
    for cand in (root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist", root / "splits"):
        if (cand / "trainlist01.txt").is_file():
            return cand
    return None


@dataclass
class UCF101Split:
    """The training videos of one split: relative paths ("Class/v_Class_g08_c01.avi") and where they live."""

    root: Path
    split: int
    videos: list[str]
    source: str  # "trainlist0{split}.txt" or "file names (groups 8-25)"

    def class_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.videos:
            cls = v.split("/")[0]
            counts[cls] = counts.get(cls, 0) + 1
        return counts

    def paths(self) -> list[Path]:
        return [self.root / v for v in self.videos]


def training_split(root: str | Path, split: int = 1, split_dir: str | Path | None = None) -> UCF101Split:
    """The training videos of `split` in the UCF-101 folder `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"UCF-101 folder not found: {root}. Give the folder holding one sub-folder per class "
            "(UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi ...)."
        )
    sdir = Path(split_dir) if split_dir else find_split_dir(root)
    if sdir is not None:
        lst = sdir / f"trainlist0{split}.txt"
        if not lst.is_file():
            raise FileNotFoundError(f"no {lst.name} in {sdir} (UCF-101 has splits 1, 2, 3)")
        videos = [line.split()[0] for line in lst.read_text().splitlines() if line.strip()]
        missing = [v for v in videos if not (root / v).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} videos of {lst.name} are missing under {root} (first: {missing[0]})"
            )
        return UCF101Split(root, split, videos, lst.name)
    if split != 1:
        raise FileNotFoundError(
            f"split {split} needs ucfTrainTestlist/trainlist0{split}.txt (pass split_dir); only split 1 can be "
            "derived from file names"
        )
    videos = []
    for p in sorted(root.glob("*/*")):
        m = _GROUP.search(p.name)
        if p.suffix.lower() in VIDEO_SUFFIXES and m and int(m.group(1)) >= 8:
            videos.append(f"{p.parent.name}/{p.name}")
    if not videos:
        raise FileNotFoundError(f"no UCF-101 training videos (v_<Class>_gGG_cCC.avi, groups 8-25) under {root}")
    return UCF101Split(root, split, videos, "file names (groups 8-25)")


def allocate_counts(class_counts: dict[str, int], total: int, classes: Optional[list[str]] = None) -> dict[str, int]:
    """Split `total` generations over classes proportionally to `class_counts` (largest remainder; ties go to
    the earlier class in `classes` order). The result sums exactly to `total`."""
    classes = list(classes if classes is not None else class_counts)
    n = sum(class_counts.get(c, 0) for c in classes)
    if n <= 0 or total < 0:
        raise ValueError("allocate_counts needs positive class counts and a non-negative total")
    exact = {c: total * class_counts.get(c, 0) / n for c in classes}
    out = {c: int(exact[c]) for c in classes}
    left = total - sum(out.values())
    order = sorted(classes, key=lambda c: (-(exact[c] - out[c]), classes.index(c)))
    for c in order[:left]:
        out[c] += 1
    return out


@dataclass(frozen=True)
class GenerationJob:
    class_name: str
    prompt: str
    index: int  # within the class
    seed: int

    @property
    def relative_path(self) -> str:
        return f"{self.class_name}/{self.class_name}_{self.index:05d}.mp4"


def generation_plan(counts: dict[str, int], prompts: dict[str, str], base_seed: int = 0) -> list[GenerationJob]:
    """Every video to generate, in class order; seed = base_seed + running number (stable, resumable)."""
    missing = [c for c in counts if c not in prompts]
    if missing:
        raise KeyError(f"no prompt for classes {missing[:5]}; the prompts file must name every class of classInd.txt")
    jobs, n = [], 0
    for cls, k in counts.items():
        for i in range(k):
            jobs.append(GenerationJob(cls, prompts[cls], i, base_seed + n))
            n += 1
    return jobs
