"""Caption hygiene: boilerplate, degenerate model captions, selection and merging rules, label captions."""

import pytest

from vidrd_data.captions import clean_caption, label_to_caption, merge_captions, select_caption


@pytest.mark.parametrize("raw, expected", [
    ("The video shows a man riding a horse.", "a man riding a horse"),
    ("an image of a picture of a dog running on grass", "a dog running on grass"),
    ("  there is a man in a red shirt ", "a man in a red shirt"),
    ('"A dog on the beach."', "a dog on the beach"),
    ("Question: what happens? Answer: this video shows people dancing in a hall", "people dancing in a hall"),
])
def test_clean_strips_boilerplate(raw, expected):
    assert clean_caption(raw) == (expected, None)


@pytest.mark.parametrize("raw, reason", [
    (None, "empty_caption: null"), ("", "empty_caption"), ("   ", "empty_caption"), ("...", "empty_caption"),
    ("cat", "caption_too_short"), ("the video shows", "empty_caption"), ("a a a a dog", "degenerate: 'a' repeated"),
    ("a man a man a man a man a man a man", "degenerate: only 2 distinct"), ("123 456 789", "degenerate: no letters"),
])
def test_clean_rejects_degenerate_model_captions(raw, reason):
    cleaned, why = clean_caption(raw)
    assert cleaned is None and why.startswith(reason)


def test_select_first_surviving_in_priority_with_reasons():
    cands = {"original": None, "blip2": "an image of", "minigpt4": None, "label": "a person playing guitar"}
    assert select_caption(cands, ["original", "blip2", "label"]) == (
        "a person playing guitar", "label",
        {"original": "empty_caption: null", "blip2": "empty_caption: nothing left after cleaning"})
    assert select_caption({"blip2": "a cat"}, ["blip2"])[:2] == (None, None)


def test_merge_rules():
    caps = ["a man riding a horse", "dog", "a man riding a brown horse", "a cat sitting on a table"]
    merged, reasons = merge_captions(caps, "consensus")
    assert merged in ("a man riding a horse", "a man riding a brown horse") and "caption_too_short" in reasons[1]
    assert merge_captions(caps, "first")[0] == "a man riding a horse"
    assert merge_captions(caps, "longest")[0] == "a man riding a brown horse"
    assert merge_captions(["", None], "first")[0] is None
    with pytest.raises(ValueError, match="allowed"):
        merge_captions(caps, "vote")


@pytest.mark.parametrize("label, caption", [
    ("ApplyEyeMakeup", "a person applying eye makeup"), ("PlayingGuitar", "a person playing guitar"),
    ("playing guitar", "a person playing guitar"), ("BabyCrawling", "a baby crawling"),
    ("Archery", "a person doing archery"), ("PullUps", "a person doing pull ups"),
    ("JumpRope", "a person jumping rope"), ("arm_wrestling", "a person arm wrestling"),
])
def test_label_to_caption(label, caption):
    assert label_to_caption(label) == caption
    assert clean_caption(caption) == (caption, None)  # label captions always survive hygiene


def test_label_templates_override():
    assert label_to_caption("BlowDryHair", {"BlowDryHair": "a person blow drying hair"}) == "a person blow drying hair"
