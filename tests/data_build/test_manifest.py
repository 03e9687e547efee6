"""Manifest validation happens before any work, and errors name file, field path, bad value, what is allowed."""

from pathlib import Path

import pytest
import yaml

from vidrd_data.manifest import ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path, doc) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _base(tmp_path):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    return {"name": "t", "output": str(tmp_path / "out"),
            "sources": [{"name": "photos", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                         "input": {"format": "folder", "root": str(tmp_path / "imgs")}}]}


def test_bundled_manifests_validate(monkeypatch):
    monkeypatch.chdir(REPO)
    for name in ("manifests/demo.yaml", "manifests/vidrd-paper.yaml"):
        resolved = load_manifest(REPO / name)
        assert resolved.sources, name
        assert len(resolved.config_hash()) == 16


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d.update(colour="red"), ["colour", "unknown field"]),
    (lambda d: d.update(clip={"fps": "fast"}), ["clip.fps", "fast"]),
    (lambda d: d.update(clip={"size": [255, 256]}), ["clip.size", "even"]),
    (lambda d: d["sources"][0].update(kind="audio"), ["sources[0].kind", "image_text"]),
    (lambda d: d["sources"][0].update(name="Bad Name"), ["sources[0].name", "Bad Name"]),
    (lambda d: d["sources"][0]["input"].update(format="zip"), ["sources[0]", "input.format", "zip", "folder"]),
    (lambda d: d["sources"][0]["input"].update(rooot="x"), ["sources[0].input.rooot", "unknown field"]),
    (lambda d: d["sources"][0].update(overrides={"nonexistent": {"a": 1}}), ["overrides", "nonexistent", "load_image"]),
    (lambda d: d["sources"][0].update(recipe="pipelines/nope.yaml"), ["recipe", "nope.yaml", "not found"]),
    (lambda d: d.update(clip={"frames": 16, "min_seconds": 2}), ["frames", "min_seconds"]),
    (lambda d: d.pop("output"), ["output", "Field required"]),
])
def test_bad_manifest_names_field_and_value(tmp_path, mutate, expect):
    doc = _base(tmp_path)
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert str(path) in msg
    for fragment in expect:
        assert fragment in msg, (fragment, msg)


def test_overrides_merge_into_recipe(tmp_path):
    doc = _base(tmp_path)
    doc["sources"][0]["overrides"] = {"pseudo_motion": {"upscale_limit": 1.25}}
    resolved = load_manifest(_write(tmp_path, doc))
    params = dict(resolved.sources[0].stage_params())["pseudo_motion"]
    assert params["upscale_limit"] == 1.25 and params["easing"] == "ease_in_out"


def test_missing_input_root_fails_before_any_work(tmp_path, ray_session):
    from vidrd_data.build import build

    doc = _base(tmp_path)
    doc["sources"][0]["input"]["root"] = str(tmp_path / "missing")
    with pytest.raises(ManifestError, match=r"sources\[0\] \(photos\)\.input: .*missing is not a directory"):
        build(_write(tmp_path, doc), progress=False, out=lambda s: None)
    assert not (tmp_path / "out" / "shards").exists() or not any((tmp_path / "out" / "shards").iterdir())


def test_misspelt_stage_parameter_fails_before_any_work(tmp_path, ray_session):
    from vidrd_data.build import build

    doc = _base(tmp_path)
    doc["sources"][0]["overrides"] = {"pseudo_motion": {"upscale_limt": 1.5}}
    with pytest.raises(ManifestError, match=r"stage pseudo_motion \(stages\[\d+\]\): invalid params\n"
                                            r"  upscale_limt: unknown parameter; allowed: .*upscale_limit"):
        build(_write(tmp_path, doc), progress=False, out=lambda s: None)
