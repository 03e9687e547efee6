"""Issue 12, captions and images: the user's caption is delivered as given, null/long captions get a rule-named
row, reports group by rule, image_size is as displayed, 16-bit images keep their brightness.

Every input is made here (no copies of anyone's files).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.data_build.helpers import image_source, photo, write_manifest
from vidrd_data.captions import CaptionStyle, select_caption
from vidrd_data.items import Item
from vidrd_data.reasons import reason_rule
from vidrd_data.stages.base import StageContext, make_stage
from vidrd_data.stages.image_text import decode_caption, to_rgb

CTX = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})


def _select(caption, **params):
    item = Item(key="k", source="s", input_id="i", meta={"captions": {"original": caption}})
    [out] = make_stage("caption_select", {"priority": ["original"], **params}, CTX).process(item)
    return out


# ------------------------------------------------------------------------------------------- captions

@pytest.mark.parametrize("raw, delivered", [
    ("A Red Ball, on a Table.", "A Red Ball, on a Table."),
    ("  Two  dogs\tplaying.\r\n", "Two dogs playing."),
    ("Caf\u00e9 \x00au\x07 lait!", "Caf\u00e9 au lait!"),
    ("line one\nline two\u2028line three", "line one line two line three"),
    ('"Quoted," she said...', '"Quoted," she said...'),
    ("NASA", "NASA"),  # short: still the user's caption
    ("dog dog dog dog", "dog dog dog dog"),  # repeats: the degenerate rule is for model output only
    ("\ufeffBOM-led caption", "BOM-led caption"),
])
def test_a_given_caption_is_delivered_as_given(raw, delivered):
    out = _select(raw)
    assert out.alive and out.data["caption"] == delivered
    assert out.meta["captions"]["original"] == raw  # the raw candidate stays in json.captions


def test_case_and_period_normalisation_is_opt_in():
    assert _select("A dog.").data["caption"] == "A dog."
    assert _select("A dog.", lowercase_first=True, strip_final_period=True).data["caption"] == "a dog"
    assert _select("NASA launch.", lowercase_first=True).data["caption"] == "NASA launch."


@pytest.mark.parametrize("cell", [None, float("nan"), np.nan, np.float32("nan"), pd.NA,
                                  pd.Series(["x", None], dtype="string").iloc[1],
                                  pd.Series(["x", None], dtype="str").iloc[1]],
                         ids=["None", "nan", "np.nan", "float32-nan", "pd.NA", "string-dtype", "str-dtype"])
def test_a_null_cell_is_filtered_empty_caption(cell):
    assert decode_caption(cell) is None
    out = _select(decode_caption(cell))
    assert (out.status, out.stage) == ("filtered", "caption_select")
    assert out.reason == "empty_caption: original: null"
    # the same cell as it arrives without decoding (a reader that hands on the raw value)
    assert _select(cell).reason == "empty_caption: original: null"


def test_whitespace_only_caption_is_empty_and_non_text_cell_fails_clearly():
    assert _select(" \t\n").reason == "empty_caption: original: nothing but whitespace"
    with pytest.raises(ValueError, match="caption is a int .*not text"):
        decode_caption(5)


def test_a_long_caption_is_filtered_caption_too_long_at_a_configurable_length():
    text = "A long careful description of the scene. " * 40
    out = _select(text)
    assert out.status == "filtered" and out.reason.startswith("caption_too_long: original: 1639 chars > max_caption_chars 1000")
    assert _select(text, max_caption_chars=2000).data["caption"] == text.strip()


def test_model_captions_keep_the_degenerate_rule_and_reasons_lead_with_a_rule():
    caption, _, rejected = select_caption({"blip2": "a a a a", "label": None}, ["blip2", "label"])
    assert caption is None and rejected["blip2"].startswith("degenerate:")
    item = Item(key="k", source="s", input_id="i", meta={"captions": {"minigpt4": "an image of", "blip2": None}})
    [out] = make_stage("caption_select", {"priority": ["minigpt4", "blip2"]}, CTX).process(item)
    assert out.reason.startswith("empty_caption: minigpt4: nothing left after cleaning; blip2: empty_caption: null")
    assert select_caption({"original": "a"}, ["original"], style=CaptionStyle())[0] == "a"


def test_reasons_group_by_rule_never_by_their_numbers():
    reasons = ["caption_too_long: original: 1532 chars > max_caption_chars 1000",
               "caption_too_long: original: 2048 chars > max_caption_chars 1000",
               "too_short: video is 0.80 s, shorter than one 1.00 s clip",
               "too_short: 14 frames at 8 fps in its longest shot after trimming (shot 3, 1.75 s) < 16",
               "ValueError: caption is not valid UTF-8 (byte 0xe9 at offset 3)",
               "ValueError: caption is not valid UTF-8 (byte 0xff at offset 17)",
               "no caption file img3.txt beside img3.jpg", "no caption file b.txt beside b.jpg",
               "duplicate_of=photos_img3 (near, 2 bits)", "duplicate_of=photos_b (exact)",
               "list.txt line 2: outside_root: /x/a.mp4 resolves to /y/a.mp4", "v.csv row 9: outside_root: /z"]
    assert [reason_rule(r) for r in reasons] == ["caption_too_long"] * 2 + ["too_short"] * 2 + ["ValueError"] * 2 + \
        ["no caption file"] * 2 + ["duplicate_of"] * 2 + ["outside_root"] * 2


# --------------------------------------------------------------------------------------------- images

def _load(path):
    item = Item(key="k", source="s", input_id=path.name, data={"path": str(path), "caption": "a photo"})
    [out] = make_stage("load_image", {}, CTX).process(item)
    return out


@pytest.mark.parametrize("orientation, shown", [(1, (200, 100)), (3, (200, 100)), (6, (100, 200)), (8, (100, 200))])
def test_image_size_is_the_size_after_exif_orientation(tmp_path, orientation, shown):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    photo(1, (200, 100)).save(path, exif=exif)
    out = _load(path)
    assert out.meta["source"]["image_size"] == list(shown)
    assert out.data["image"].size == shown  # what the pseudo-video is made from
    assert out.meta["source"].get("exif_orientation", 1) == orientation


@pytest.mark.parametrize("orientation, loaded", [(1, (512, 256)), (6, (512, 1024))])
def test_a_jpeg_is_drafted_to_twice_the_clip_size_as_displayed(tmp_path, orientation, loaded):
    """Stored 1024x512; a clip of 256x128. Upright, DCT scaling to 512x256 keeps twice the clip size; turned a
    quarter (shown 512x1024), the same scaling would leave 256 px across for a 256-px-wide clip: not drafted."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"d{orientation}.jpg"
    photo(2, (1024, 512)).save(path, exif=exif, quality=95)
    item = Item(key="k", source="s", input_id=path.name, data={"path": str(path), "caption": "a photo"})
    ctx = StageContext(clip={"fps": 8, "size": [256, 128], "frames": 8})
    [out] = make_stage("load_image", {}, ctx).process(item)
    assert out.data["image"].size == loaded
    assert out.meta["source"]["image_size"] == ([1024, 512] if orientation == 1 else [512, 1024])  # the file's


@pytest.mark.parametrize("level", [0x0800, 0x4000, 0xC000])
def test_a_16_bit_image_keeps_its_brightness(tmp_path, level):
    rng = np.random.default_rng(level)
    arr = (level + rng.integers(-0x200, 0x200, (120, 160))).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(to_rgb(Image.open(path)), dtype=np.float64)
    assert rgb.mean() == pytest.approx(arr.mean() * 255 / 65535, abs=1.0)  # not stretched to 0..255
    assert rgb.max() - rgb.min() < 6
    out = _load(path)
    assert np.asarray(out.data["image"]).mean() == pytest.approx(arr.mean() * 255 / 65535, abs=1.0)


# ------------------------------------------------------------------------------------------ end to end

def test_build_delivers_given_captions_and_rule_rows(tmp_path, ray_session):
    from vidrd_data.build import build
    from vidrd_data.inspect_output import summarize
    from vidrd_data.sink import iter_samples, read_status

    root = tmp_path / "photos"
    root.mkdir()
    captions = {"cased": "A Red Ball, on a Table.", "spaced": "  Two  dogs\tplaying.\r\n",
                "long1": "word " * 300, "long2": "longer words " * 200, "blank": "\n \n"}
    for i, (name, text) in enumerate(captions.items()):
        photo(i, (160, 120)).save(root / f"{name}.jpg")
        (root / f"{name}.txt").write_text(text)
    deep = (0x3000 + np.zeros((120, 160))).astype(np.uint16)
    Image.fromarray(deep).save(root / "deep16.png")
    (root / "deep16.txt").write_text("A dark 16-bit frame.")
    table_dir = tmp_path / "tab"
    table_dir.mkdir()
    for i in range(3):
        photo(10 + i, (160, 120)).save(table_dir / f"t{i}.jpg")
    pd.DataFrame({"image": ["t0.jpg", "t1.jpg", "t2.jpg"],
                  "caption": pd.array(["Kept As Given.", None, pd.NA], dtype="string")}).to_parquet(table_dir / "pairs.parquet")
    recipe = image_source("p", root)["recipe"]
    sources = [image_source("p", root),
               {"name": "t", "kind": "image_text", "recipe": recipe,
                "input": {"format": "table", "path": str(table_dir / "pairs.parquet")}}]
    report = build(write_manifest(tmp_path / "m.yaml", tmp_path / "out", sources), progress=False, out=lambda s: None)
    # The build summary groups by rule too: two caption_too_long reasons of different lengths make one line.
    assert report.failures["filtered at caption_select: caption_too_long"] == 2, dict(report.failures)
    assert report.failures["filtered at caption_select: empty_caption"] == 3, dict(report.failures)

    rows = read_status(str(tmp_path / "out")).set_index("input_id")
    txt = {json.loads(s["json"])["source"]["source_id"]: s["txt"].decode("utf-8") for s in iter_samples(str(tmp_path / "out"))}
    assert txt["cased"] == "A Red Ball, on a Table." and txt["spaced"] == "Two dogs playing."
    assert txt["deep16"] == "A dark 16-bit frame." and txt["row000000"] == "Kept As Given."
    for name in ("long1", "long2"):
        assert rows.loc[name, "status"] == "filtered" and rows.loc[name, "reason"].startswith("caption_too_long: original:")
    for name in ("blank", "row000001", "row000002"):
        assert rows.loc[name, "status"] == "filtered" and rows.loc[name, "reason"].startswith("empty_caption: original:"), \
            rows.loc[name].to_dict()
    summary = summarize(str(tmp_path / "out"))
    lines = [ln for ln in summary.splitlines() if "caption_select" in ln]
    assert len(lines) == 2, summary  # two rules, one line each, whatever the numbers in the reasons
    assert any(ln.split()[0] == "2" and "caption_too_long" in ln for ln in lines), summary
    assert any(ln.split()[0] == "3" and "empty_caption" in ln for ln in lines), summary
