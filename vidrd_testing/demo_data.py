"""Set-up step for the offline demo: real media that ships in installed packages, arranged as datasets.

  data/demo/photos/       real photos from scikit-image (skimage.data) with captions written for them
  data/demo/ucf_like/...  real clips arranged as an action-recognition class-folder dataset (short_video)
  data/demo/long/...      real long videos and a concatenation with known scene changes (long_video)
  data/demo/models/...    tiny RANDOM captioner / CLIP models (the demo's captions are noise: point the
                          manifest at real weights for real captions)

Run: python -m vidrd_testing.demo_data data/demo   (idempotent; `make demo` and `make test` call it)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# skimage.data image -> a caption a person would write for it (the demo's "original" captions).
PHOTOS = {
    "astronaut": "portrait of astronaut Eileen Collins in an orange flight suit in front of an American flag",
    "coffee": "a cup of coffee with latte art on a saucer with a spoon on a wooden table",
    "chelsea": "a tabby cat with green eyes resting and looking to the side",
    "rocket": "a rocket standing on the launch pad against a clear blue sky",
    "hubble_deep_field": "a deep field of distant galaxies scattered across black space",
    "immunohistochemistry": "a stained tissue sample under a microscope with brown and blue cells",
    "retina": "a photograph of the back of a human eye showing the retina and its blood vessels",
    "colorwheel": "a colour wheel with smooth rainbow hues around a white centre",
    "camera": "a black and white photo of a man with a camera on a tripod in a field",
    "coins": "old coins lying on a dark surface, seen from above, black and white",
    "moon": "the surface of the moon with craters in black and white",
    "brick": "a close-up of a brick wall with mortar lines",
    "grass": "a close-up texture of green grass blades in black and white",
    "logo": "the scikit-image logo, a stylised snake drawn over a grid",
    "clock": "a motion-blurred black and white photo of a wall clock",
    "page": "a scanned page of printed text",
}


def prepare_photos(dest: Path) -> int:
    import skimage.data as skd

    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, caption in PHOTOS.items():
        img_path = dest / f"{name}.png"
        if not img_path.exists():
            arr = getattr(skd, name)()
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            # Kept in their own modes (L, RGB, RGBA): the loader must handle all of them.
            Image.fromarray(arr).save(img_path)
        (dest / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
        n += 1
    return n


def prepare(dest: Path) -> None:
    dest = Path(dest)
    n = prepare_photos(dest / "photos")
    print(f"[demo data] {n} photos with captions in {dest / 'photos'}")
    steps = [("vidrd_testing.demo_videos", "prepare_short_videos", dest),
             ("vidrd_testing.demo_videos", "prepare_tiny_blip2", dest / "models" / "tiny-blip2"),
             ("vidrd_testing.demo_videos_long", "prepare_long_videos", dest),
             ("vidrd_testing.demo_videos_long", "prepare_tiny_clip", dest),  # -> dest/models/tiny-clip
             ("vidrd_testing.demo_videos_long", "prepare_tiny_minigpt4", dest)]  # -> dest/models/tiny-minigpt4
    for module, func, arg in steps:
        getattr(importlib.import_module(module), func)(arg)
        print(f"[demo data] {func} -> {arg}")


if __name__ == "__main__":
    prepare(Path(sys.argv[1] if len(sys.argv) > 1 else "data/demo"))
