"""Image-text inputs decode only as large as the pseudo-video needs: the motion drawn for a picture (zoom kept,
shrunk or filtered) and its windows in the picture's pixels are those of a full decode, the frames all but the
same; the decoded picture is smaller (the cost: JPEG DCT scaling, an integer box reduction for other formats)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vidrd_data.items import Item
from vidrd_data.stages.base import StageContext, make_stage
from vidrd_data.stages.image_text import LoadImage

REPO = Path(__file__).resolve().parents[2]
FULL = {"decode_min_scale": 1000.0}  # never reduced: what decoding the whole picture gives


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A real photo (scikit-image's), cropped and resized to `size`: natural detail at every scale."""
    from skimage import data

    src = [data.astronaut, data.coffee, data.chelsea, data.rocket][seed % 4]()
    img = Image.fromarray(src).convert("RGB")
    rng = np.random.default_rng(seed)
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.LANCZOS)


def _pseudo_video(path: Path, clip: dict, load: dict, motion: dict, key: str) -> Item:
    ctx = StageContext(clip=clip)
    item = Item(key=key, source="s", input_id=path.name, data={"path": str(path), "caption": "a photo"})
    [item] = make_stage("load_image", load, ctx).process(item)
    decoded = item.data["image"].size
    [item] = make_stage("pseudo_motion", motion, ctx).process(item)
    item.data["decoded"] = decoded
    return item


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


CASES = list(itertools.product(
    [(1024, 768), (768, 1024), (1600, 900), (640, 640), (1400, 300)],  # landscape, portrait, wide, near the need, a strip
    ["jpg", "png"],
    [((256, 256), {}), ((320, 192), {}), ((256, 256), {"zoom_range": [1.2, 3.0], "upscale_limit": 1.0})],
))


@pytest.mark.parametrize("size, fmt, spec", CASES, ids=[f"{s[0]}x{s[1]}-{f}-{c[0][0]}x{c[0][1]}-{'zoom3' if c[1] else 'default'}"
                                                         for s, f, c in CASES])
def test_reduced_decode_keeps_the_full_decodes_motion_and_frames(tmp_path, size, fmt, spec):
    clip_size, motion = spec
    clip = {"fps": 8, "size": list(clip_size), "frames": 12}
    scale = LoadImage.derived_params({}, {"load_image": {}, "pseudo_motion": motion}, clip)["decode_min_scale"]
    for seed in range(3):
        path = tmp_path / f"p{seed}.{fmt}"
        _photo(size, seed).save(path, **({"quality": 92} if fmt == "jpg" else {}))
        key = f"k{seed}{size}"
        full = _pseudo_video(path, clip, FULL, motion, key)
        ours = _pseudo_video(path, clip, {"decode_min_scale": scale}, motion, key)
        assert full.data["decoded"] == size
        assert ours.status == full.status, (ours.reason, full.reason)  # the same picture kept or filtered
        if not full.alive:
            assert ours.reason.split(":")[0] == full.reason.split(":")[0]
            continue
        dw, dh = ours.data["decoded"]
        assert dw >= scale * clip_size[0] - 1e-6 and dh >= scale * clip_size[1] - 1e-6 or (dw, dh) == size
        if min(size[0] / clip_size[0], size[1] / clip_size[1]) >= 2 * scale:  # room to halve: it was reduced
            assert dw * dh <= size[0] * size[1] / 4 + 1
        pv, pv_full = ours.meta["pseudo_video"], full.meta["pseudo_video"]
        for k in ("kind", "zoom_start", "zoom_end", "pan", "pan_fraction", "seed"):
            assert pv[k] == pv_full[k], k  # the motion fit_motion settles on is the full decode's
        tol = 0.01 * max(size)  # windows in the picture's pixels (not the decoded copy's)
        np.testing.assert_allclose(pv["first_window"], pv_full["first_window"], atol=tol)
        np.testing.assert_allclose(pv["last_window"], pv_full["last_window"], atol=tol)
        assert pv["upscale"] == pytest.approx(pv_full["upscale"], rel=0.02)
        psnr = _psnr(ours.data["frames"], full.data["frames"])
        assert psnr > 30.0, f"{path.name} {size}: {psnr:.1f} dB"


@pytest.mark.parametrize("motion, expect", [
    ({}, 1.25),  # the recipe's zoom 1.5 within upscale_limit 2: render's own 1.25x margin decides
    ({"zoom_range": [1.2, 3.0]}, 1.5),  # 3x zoom, limit 2: the tightest window needs 1.5x the clip
    ({"upscale_limit": 1.0}, 1.5),  # no upscaling at all: the tightest window (1/1.5) at 1:1
    ({"upscale_limit": 0.5, "zoom_range": [1.0, 1.2]}, 2.4),  # supersampled output asks for more
    ({"decode_min_scale": 3.0}, 3.0),  # a value the recipe or manifest sets wins (given to load_image)
])
def test_decode_scale_is_derived_from_the_recipes_pseudo_motion(tmp_path, motion, expect):
    from vidrd_data.manifest import load_manifest

    (tmp_path / "imgs").mkdir()
    load = {"decode_min_scale": motion.pop("decode_min_scale")} if "decode_min_scale" in motion else {}
    doc = {"name": "t", "output": str(tmp_path / "out"), "clip": {"fps": 8, "size": [256, 256], "frames": 16},
           "sources": [{"name": "img", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                        "input": {"format": "folder", "root": str(tmp_path / "imgs")},
                        "overrides": {"pseudo_motion": motion, "load_image": load}}]}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    resolved = load_manifest(tmp_path / "m.yaml")
    params = {s.stage: s.params for s in resolved.sources[0].recipe.stages}["load_image"]
    assert params["decode_min_scale"] == pytest.approx(expect)


def test_a_png_is_box_reduced_by_a_whole_factor_never_below_the_need(tmp_path):
    path = tmp_path / "big.png"
    _photo((1030, 700), 1).save(path)
    ctx = StageContext(clip={"fps": 8, "size": [160, 100], "frames": 8})
    item = Item(key="k", source="s", input_id=path.name, data={"path": str(path), "caption": "a photo"})
    [out] = make_stage("load_image", {"decode_min_scale": 2.0}, ctx).process(item)
    # need 320 x 200: 1030 // 320 = 3, 700 // 200 = 3 -> a 3x3 box average
    assert out.data["image"].size == (344, 234)  # PIL keeps the partial last block
    ref = np.asarray(Image.open(path).convert("RGB").reduce(3))
    assert np.array_equal(np.asarray(out.data["image"]), ref)
    assert out.meta["source"]["image_size"] == [1030, 700]  # the file's, as displayed


def test_pseudo_video_windows_speak_of_the_displayed_picture(tmp_path):
    """A JPEG turned a quarter by EXIF and decoded at half size: windows in the displayed picture's pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    _photo((1200, 800), 2).save(buf, format="JPEG", exif=exif, quality=92)
    path = tmp_path / "turned.jpg"
    path.write_bytes(buf.getvalue())
    item = _pseudo_video(path, {"fps": 8, "size": [128, 128], "frames": 8}, {"decode_min_scale": 1.25}, {}, "k")
    assert item.meta["source"]["image_size"] == [800, 1200]
    assert item.data["decoded"] == (200, 300)  # DCT-scaled by 4, displayed upright
    for w in (item.meta["pseudo_video"]["first_window"], item.meta["pseudo_video"]["last_window"]):
        assert 0 <= w[0] < w[2] <= 800 + 0.01 and 0 <= w[1] < w[3] <= 1200 + 0.01
        assert w[2] - w[0] > 0.5 * 800 / 1.5  # a window of the displayed picture, not of the decoded copy
