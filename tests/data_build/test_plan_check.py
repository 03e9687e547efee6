"""The plan check: a recipe's stage chain and every stage parameter are validated before Ray starts, and
recipes are found by name (shipped as package data) as well as by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.data_build.helpers import write_folder_dataset
from vidrd_data.build import build, make_context
from vidrd_data.manifest import ManifestError, load_manifest
from vidrd_data.plan_check import PlanError, check_plan

REPO = Path(__file__).resolve().parents[2]


def _manifest(tmp_path: Path, recipe: str | dict, **source) -> Path:
    write_folder_dataset(tmp_path / "imgs", 2)
    if isinstance(recipe, dict):
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        recipe = str(tmp_path / "recipe.yaml")
    doc = {"name": "t", "output": str(tmp_path / "out"),
           "sources": [{"name": "photos", "kind": "image_text", "recipe": recipe,
                        "input": {"format": "folder", "root": str(tmp_path / "imgs")}, **source}]}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _recipe(*stages: str) -> dict:
    return {"kind": "image_text", "stages": [{"stage": s, "params": {}} for s in stages]}


def test_a_chain_missing_a_stage_fails_before_any_work_naming_the_stage_and_key(tmp_path):
    import ray

    started = ray.is_initialized()
    path = _manifest(tmp_path, _recipe("load_image", "caption_select", "encode"))  # no pseudo_motion
    with pytest.raises(PlanError) as err:
        build(path, progress=False, out=lambda s: None)
    msg = str(err.value)
    assert "stage encode (stages[2]) requires item key 'frames'" in msg, msg
    assert "pseudo_motion" in msg and str(path) in msg and "recipe.yaml" in msg  # who provides it, and where
    assert not (tmp_path / "out").exists()  # nothing was written
    assert ray.is_initialized() == started  # and Ray was not started for it


def test_the_shard_writer_keys_are_part_of_the_chain(tmp_path):
    path = _manifest(tmp_path, _recipe("load_image", "pseudo_motion", "encode"))  # no caption_select
    resolved = load_manifest(path)
    with pytest.raises(PlanError, match=r"the shard writer requires item key 'caption'.*caption_select"):
        check_plan(resolved, make_context(resolved))


def test_any_of_requirements_and_reader_keys(tmp_path):
    # load_image reads a file path (folder reader) or a tar member (webdataset reader); pseudo_motion first
    # has no image to read
    path = _manifest(tmp_path, _recipe("pseudo_motion", "load_image", "caption_select", "encode"))
    resolved = load_manifest(path)
    with pytest.raises(PlanError, match=r"stage pseudo_motion \(stages\[0\]\) requires item key 'image'.*"
                                        r"Available here: \['path'\]"):
        check_plan(resolved, make_context(resolved))


@pytest.mark.parametrize("override, expect", [
    ({"encode": {"crf": 99}}, ["stage encode", "crf", "less than or equal to 51", "99"]),
    ({"pseudo_motion": {"easing": "bouncy"}}, ["stage pseudo_motion", "easing", "bouncy", "ease_in_out"]),
    ({"load_image": {"max_pixel": 5}}, ["stage load_image", "max_pixel: unknown parameter", "max_pixels"]),
])
def test_bad_parameters_name_the_stage_field_and_value(tmp_path, override, expect):
    path = _manifest(tmp_path, "image_text", overrides=override)
    resolved = load_manifest(path)
    with pytest.raises(PlanError) as err:
        check_plan(resolved, make_context(resolved))
    for fragment in expect:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_unknown_stage_is_a_plan_error(tmp_path):
    path = _manifest(tmp_path, _recipe("load_image", "sharpen", "encode"))
    resolved = load_manifest(path)
    with pytest.raises(PlanError, match=r"stage sharpen \(stages\[1\]\): unknown stage 'sharpen'; known stages: .*encode"):
        check_plan(resolved, make_context(resolved))


def test_recipes_by_name_by_path_and_the_old_pipelines_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # away from the repo: `pipelines/...` is not found relative to anything
    by_name = load_manifest(_manifest(tmp_path, "image_text")).sources[0]
    old_path = load_manifest(_manifest(tmp_path, "pipelines/image_text.yaml")).sources[0]
    default = load_manifest(_manifest(tmp_path, None)).sources[0]  # the kind's shipped recipe
    shipped = Path(__file__).resolve().parents[2] / "vidrd_data" / "recipes" / "image_text.yaml"
    assert Path(by_name.recipe_path) == Path(old_path.recipe_path) == Path(default.recipe_path) == shipped.resolve()
    with pytest.raises(ManifestError, match=r"recipe 'imagetext' not found .*shipped recipes, usable by name: "
                                            r"image_text, long_video, short_video"):
        load_manifest(_manifest(tmp_path, "imagetext"))


def test_bundled_manifests_pass_the_plan_check(monkeypatch):
    monkeypatch.chdir(REPO)
    resolved = load_manifest(REPO / "manifests" / "demo.yaml")
    checked = check_plan(resolved, make_context(resolved))
    assert [c.name for c in checked] == ["photos", "actions", "longform"]
    assert all(c.stages[-1].name == "encode" for c in checked)


def test_output_override(tmp_path):
    path = _manifest(tmp_path, "image_text")
    assert load_manifest(path, output=str(tmp_path / "elsewhere")).manifest.output == str(tmp_path / "elsewhere")


def test_the_caption_stage_checks_its_captioners_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    doc = yaml.safe_load((REPO / "manifests" / "demo.yaml").read_text())
    doc["sources"] = [s for s in doc["sources"] if s["name"] == "longform"]
    doc["sources"][0]["overrides"]["caption"] = {"model": "minigpt4", "minigpt4": {"max_new_tokenz": 5}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    resolved = load_manifest(path)
    with pytest.raises(PlanError, match=r"stage caption \(stages\[\d+\]\): caption \(model minigpt4\): "
                                        r"max_new_tokenz: Extra inputs are not permitted; allowed: .*max_new_tokens"):
        check_plan(resolved, make_context(resolved))
