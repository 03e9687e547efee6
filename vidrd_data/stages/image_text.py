"""Image–text stages: load an image (and its caption), turn it into a pseudo-video."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps
from pydantic import Field

from vidrd_data import pseudo_motion as pm
from vidrd_data.item_guard import DEFAULT_MAX_IMAGE_FILE_BYTES, read_input_bytes
from vidrd_data.items import Item
from vidrd_data.stages.base import Stage, StageParams, register_stage

Image.MAX_IMAGE_PIXELS = None  # we enforce our own, configurable limit (and say so in the row)


def _read_member(tar: str, member: tuple[int, int, str]) -> bytes:
    offset, size, _ = member
    with open(tar, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"truncated member {member[2]} in {tar}")
    return data


def decode_caption(raw) -> str | None:
    """Captions must be UTF-8; the BOM is tolerated. A null cell (None, NaN, pd.NA) is no caption (None:
    caption_select filters it as empty_caption). Raise with a clear reason otherwise."""
    from vidrd_data.captions import is_null

    if is_null(raw):
        return None
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ValueError(f"caption is a {type(raw).__name__} ({str(raw)[:40]!r}), not text")
    raw = bytes(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"caption is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any mode (L, LA, P, CMYK, I;16, RGBA…) to RGB (`img` itself when it is RGB and upright), as displayed
    (EXIF orientation applied); transparency composited on `background`. 16-bit pictures are scaled by their
    bit depth (65535 -> 255), never stretched to their own min..max: a dark photo stays dark. Mode I (32-bit
    int) holds 16-bit data in practice (16-bit PNG/TIFF from other decoders): scaled the same, clipped."""
    if img.getexif().get(0x0112) not in (None, 1):  # else exif_transpose would only copy the picture
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
        arr = np.rint(arr * (255 / 65535)).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # convert() copies even an RGB picture


@register_stage("load_image")
class LoadImage(Stage):
    """Read image bytes + caption; reject empty, corrupt, truncated or oversized images with the reason."""

    class Params(StageParams):
        max_pixels: int = Field(80_000_000, gt=0)  # larger images are filtered (too_large), never decoded
        min_side: int = Field(64, ge=1)  # shorter side below this: filtered (too_small)
        max_file_bytes: int = Field(DEFAULT_MAX_IMAGE_FILE_BYTES, ge=1)  # larger files: filtered, never read
        # Decode large images down to (never below) this multiple of the clip size on both sides, as displayed:
        # JPEG by DCT scaling while decoding, then any format by an integer box reduction. Derived from the
        # recipe's pseudo_motion (see derived_params); 2.0 where there is none.
        decode_min_scale: float = Field(2.0, ge=1.0)

    requires = (("path", "member", "image_bytes"),)  # a file (folder, table readers) or a tar sample's bytes (webdataset)
    provides = ("image", "meta.captions")

    @classmethod
    def derived_params(cls, params, recipe, clip) -> dict[str, Any]:
        """What pseudo_motion needs of the decoded picture: render() shrinks it until the widest window is at most
        1.25x the clip anyway, and fit_motion() must take the same decision (zoom kept, shrunk or filtered) as on
        the full picture: its tightest window (1/zoom of the widest) within upscale_limit."""
        if "pseudo_motion" not in recipe:
            return {}
        pm_params = recipe["pseudo_motion"] or {}
        try:
            zoom_max = max(float(z) for z in pm_params.get("zoom_range", PseudoMotion.Params.model_fields["zoom_range"].default))
            limit = float(pm_params.get("upscale_limit", PseudoMotion.Params.model_fields["upscale_limit"].default))
        except (TypeError, ValueError):  # pseudo_motion's own validation reports it
            return {}
        if limit <= 0:
            return {}
        return {"decode_min_scale": round(max(pm.RENDER_MAX_SHRUNK_SCALE, zoom_max / limit), 4)}

    def process(self, item: Item) -> list[Item]:
        max_pixels = int(self.params.get("max_pixels", 80_000_000))
        min_side = int(self.params.get("min_side", 64))
        d = item.data
        if "image_bytes" in d:  # a tar sample, read by the worker that owns the tar (webdataset reader)
            raw = d.pop("image_bytes")
            where = d.get("where", item.input_id)
            caption = decode_caption(d.pop("caption_bytes", None))
        elif "member" in d:
            raw = _read_member(d["tar"], d["member"])
            where = f"{d['member'][2]} in {Path(d['tar']).name}"
            caption = decode_caption(_read_member(d["tar"], d["caption_member"])) if "caption_member" in d else None
        else:
            raw = read_input_bytes(d["path"], self.params.get("max_file_bytes"))  # regular files only
            where = Path(d["path"]).name
            if "caption_path" in d:
                caption = decode_caption(read_input_bytes(d["caption_path"], self.params.get("max_file_bytes")))
            else:
                caption = decode_caption(d.get("caption"))
        if not raw:
            raise ValueError(f"empty file (0 bytes): {where}")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            w, h = img.size
            if w * h > max_pixels:
                return [item.filter(self.name, f"too_large: {w}x{h} = {w * h / 1e6:.0f} MP > max_pixels {max_pixels / 1e6:.0f} MP")]
            if min(w, h) < min_side:
                return [item.filter(self.name, f"too_small: {w}x{h}, shorter side < min_side {min_side}")]
            # Decode at reduced scale where the codec allows it (JPEG DCT scaling): cheap and alias-free. Never
            # below decode_min_scale x the clip as displayed: a quarter-turn EXIF orientation swaps the stored sides.
            scale = float(self.params.get("decode_min_scale", 2.0))
            need_w, need_h = (math.ceil(scale * int(v)) for v in self.ctx.clip["size"])
            turned = img.format == "JPEG" and img.getexif().get(0x0112) in (5, 6, 7, 8)  # JPEG: EXIF precedes pixels
            img.draft("RGB", (need_h, need_w) if turned else (need_w, need_h))
            try:
                img.load()
            except OSError as exc:
                raise ValueError(f"corrupt or truncated image {where}: {exc}") from None
        # read once loaded: some formats (PNG) decode the whole image to find their EXIF block
        orientation = int(img.getexif().get(0x0112, 1) or 1)
        if orientation in (5, 6, 7, 8):  # a quarter turn: displayed (and used) as h x w
            w, h = h, w
        rgb = to_rgb(img)
        # What DCT scaling could not take (other formats; a JPEG's remaining factor is < 2): a k x k box average.
        k = min(rgb.width // need_w, rgb.height // need_h)
        d["image"] = rgb.reduce(k) if k >= 2 else rgb
        d["image_mode"] = img.mode
        item.meta["captions"] = {**item.meta.get("captions", {}), "original": caption}
        item.meta.setdefault("source", {})["image_size"] = [w, h]  # as displayed (after EXIF orientation)
        if orientation != 1:
            item.meta["source"]["exif_orientation"] = orientation
        return [item]


@register_stage("pseudo_motion")
class PseudoMotion(Stage):
    """Image -> `clip.frames` frames of seeded synthetic camera motion at `clip.size`."""

    class Params(StageParams):
        seed: int = 0  # with the sample key, fixes the motion
        kinds: list[str] = Field(default_factory=lambda: list(pm.KINDS), min_length=1)
        zoom_range: tuple[float, float] = (1.15, 1.5)
        pan_range: tuple[float, float] = (0.5, 1.0)
        easing: Literal["linear", "ease_in_out"] = "ease_in_out"
        upscale_limit: float = Field(2.0, gt=0)

    requires = ("image",)
    provides = ("frames", "path_motion")

    @classmethod
    def check(cls, params, ctx) -> None:
        kinds = params.get("kinds", list(pm.KINDS))
        bad = [k for k in kinds if k not in pm.KINDS]
        if bad:
            raise ValueError(f"pseudo_motion.kinds: unknown {bad}; allowed: {list(pm.KINDS)}")
        if ctx.clip.get("frames") is None:
            raise ValueError("pseudo_motion needs clip.frames (an exact length); min_seconds/max_seconds suit videos")

    def process(self, item: Item) -> list[Item]:
        clip = self.ctx.clip
        target = (int(clip["size"][0]), int(clip["size"][1]))
        seed = pm.item_seed(int(self.params.get("seed", 0)), item.key)
        motion = pm.draw_motion(seed, tuple(self.params.get("kinds", pm.KINDS)),
                                tuple(self.params.get("zoom_range", (1.15, 1.5))),
                                tuple(self.params.get("pan_range", (0.5, 1.0))),
                                self.params.get("easing", "ease_in_out"))
        image = item.data.pop("image")
        try:
            motion, windows = pm.fit_motion(image.size, target, motion, int(clip["frames"]),
                                            float(self.params.get("upscale_limit", 2.0)))
        except pm.ImageTooSmall as exc:
            return [item.filter(self.name, f"upscale_limit: {exc}")]
        item.data["frames"] = pm.render(image, windows, target)
        item.data["path_motion"] = pm.path_motion(windows, target, float(clip["fps"]))  # the `motion` stage's
        # The json speaks of the picture as displayed (load_image may have decoded it smaller): windows in its
        # pixels, the upscale against its pixels.
        shown = item.meta.get("source", {}).get("image_size") or image.size
        in_shown = windows * np.array([shown[0] / image.width, shown[1] / image.height] * 2)
        item.meta["pseudo_video"] = {**motion.as_meta(), "upscale": round(pm.max_upscale(in_shown, target), 4),
                                     "first_window": [round(float(v), 2) for v in in_shown[0]],
                                     "last_window": [round(float(v), 2) for v in in_shown[-1]]}
        item.meta.setdefault("source", {})["span"] = None
        return [item]
