"""MiniGPT-4: LAVIS-style checkpoints convert into a transformers folder that loads and captions."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidrd_data.items import Item
from vidrd_data.models.convert_minigpt4 import ConversionError, add_parser, convert
from vidrd_data.models.minigpt4 import MiniGPT4Captioner, clean_output, prompt_for
from vidrd_data.stages.base import StageContext, get_stage, make_stage

GEN = {"max_new_tokens": 8, "min_new_tokens": 4, "no_repeat_ngram_size": 1}


def test_converted_folder_keeps_every_tensor_under_its_transformers_name(tiny_minigpt4, tiny_minigpt4_parts):
    lavis = torch.load(tiny_minigpt4_parts["blip2"], weights_only=True)["model"]
    proj = torch.load(tiny_minigpt4_parts["minigpt4"], weights_only=True)["model"]
    out = load_file(str(tiny_minigpt4 / "model.safetensors"))
    pairs = {"visual_encoder.blocks.1.attn.proj.weight": "vision_model.encoder.layers.1.self_attn.projection.weight",
             "visual_encoder.blocks.0.norm2.bias": "vision_model.encoder.layers.0.layer_norm2.bias",
             "ln_vision.weight": "vision_model.post_layernorm.weight",
             "visual_encoder.cls_token": "vision_model.embeddings.class_embedding",
             "Qformer.bert.embeddings.LayerNorm.bias": "qformer.layernorm.bias",
             "Qformer.bert.encoder.layer.0.crossattention.self.key.weight":
                 "qformer.encoder.layer.0.crossattention.attention.key.weight",
             "Qformer.bert.encoder.layer.1.output_query.LayerNorm.weight":
                 "qformer.encoder.layer.1.output_query.LayerNorm.weight",
             "query_tokens": "query_tokens"}
    for src, dst in pairs.items():
        assert torch.equal(lavis[src], out[dst]), src
    assert torch.equal(proj["llama_proj.weight"], out["language_projection.weight"])
    q, v = lavis["visual_encoder.blocks.0.attn.q_bias"], lavis["visual_encoder.blocks.0.attn.v_bias"]
    assert torch.equal(out["vision_model.encoder.layers.0.self_attn.qkv.bias"], torch.cat([q, torch.zeros_like(v), v]))
    assert not any(k.startswith("qformer.encoder.layer.0.intermediate.") for k in out)  # text path dropped
    cfg = json.loads((tiny_minigpt4 / "config.json").read_text())
    assert cfg["text_config"]["model_type"] == "llama" and cfg["num_query_tokens"] == 4
    assert cfg["qformer_config"]["cross_attention_frequency"] == 2


def test_converted_model_captions_one_or_several_keyframes(tiny_minigpt4):
    cap = MiniGPT4Captioner(tiny_minigpt4, **GEN)
    rng = np.random.default_rng(0)
    texts = cap.caption([rng.integers(0, 255, (1, 48, 64, 3), np.uint8), rng.integers(0, 255, (3, 48, 64, 3), np.uint8)])
    assert len(texts) == 2 and all(len(t.split()) >= 4 for t in texts)
    assert "###" not in "".join(texts)


def test_prompt_is_minigpt4s_conversation_format():
    p = prompt_for(2)
    assert p.startswith("Give the following image: <Img>ImageContent</Img>.")
    assert p.endswith("###Human: <Img><ImageHere></Img><Img><ImageHere></Img> These are frames of one video clip, "
                      "in order. Describe the clip in one sentence.###Assistant:")
    assert clean_output(" a dog runs.###Human: more") == "a dog runs."


def test_incomplete_checkpoint_names_the_missing_tensors(tiny_minigpt4_parts, tmp_path):
    lavis = torch.load(tiny_minigpt4_parts["blip2"], weights_only=True)["model"]
    broken = {k: v for k, v in lavis.items() if not k.startswith("Qformer.bert.encoder.layer.1.attention.")}
    torch.save({"model": broken}, tmp_path / "broken.pth")
    p = tiny_minigpt4_parts
    with pytest.raises(ConversionError, match=r"missing .*qformer\.encoder\.layer\.1\.attention\.attention\.query\.weight"):
        convert(p["minigpt4"], tmp_path / "broken.pth", p["llama"], tmp_path / "out")
    assert not (tmp_path / "out" / "config.json").exists()


def test_wrong_checkpoints_are_named(tiny_minigpt4_parts, tmp_path):
    p = tiny_minigpt4_parts
    with pytest.raises(ConversionError, match="no llama_proj.weight"):  # BLIP-2 file passed as --minigpt4
        convert(p["blip2"], p["blip2"], p["llama"], tmp_path / "a")
    torch.save({"model": {"llama_proj.weight": torch.zeros(32, 64), "llama_proj.bias": torch.zeros(32)}},
               tmp_path / "proj.pth")  # a projection for another LLaMA width
    with pytest.raises(ConversionError, match=r"language_projection\.weight \(32, 64\) != \(64, 64\)"):
        convert(tmp_path / "proj.pth", p["blip2"], p["llama"], tmp_path / "b")
    with pytest.raises(ConversionError, match="not found"):
        convert(tmp_path / "nope.pth", p["blip2"], p["llama"], tmp_path / "c")


def test_cli_subcommand_converts(tiny_minigpt4_parts, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    p = tiny_minigpt4_parts
    args = parser.parse_args(["convert-minigpt4", "--minigpt4", str(p["minigpt4"]), "--blip2", str(p["blip2"]),
                              "--llama", str(p["llama"]), "--out", str(tmp_path / "m"), "--dtype", "float32"])
    assert args.func(args) == 0 and (tmp_path / "m" / "minigpt4.json").is_file()
    args = parser.parse_args(["convert-minigpt4", "--minigpt4", str(p["blip2"]), "--blip2", str(p["blip2"]),
                              "--llama", str(p["llama"]), "--out", str(tmp_path / "n")])
    assert args.func(args) == 2 and "llama_proj" in capsys.readouterr().out


def test_caption_stage_selects_minigpt4_and_checks_the_model_up_front(tiny_minigpt4, tmp_path):
    ctx = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 4}, models={"minigpt4": {"path": str(tiny_minigpt4)}})
    cls = get_stage("caption")
    params = {"model": "minigpt4", "minigpt4": GEN}
    cls.check(params, ctx)
    stage = make_stage("caption", params, ctx)
    items = [Item(key=f"k{i}", source="s", input_id=str(i), data={"keyframes": np.full((1, 64, 64, 3), 40 * i, np.uint8)})
             for i in range(3)]
    out = stage.process_batch(items)
    assert all(len(it.meta["captions"]["minigpt4"].split()) >= 4 for it in out)
    bad = StageContext(clip=ctx.clip, models={"minigpt4": {"path": str(tmp_path / "missing")}})
    with pytest.raises(FileNotFoundError, match="convert-minigpt4"):
        cls.check(params, bad)
    with pytest.raises(ValueError, match="caption.model must be one of"):
        cls.check({"model": "gpt"}, ctx)


def test_caption_stage_selects_blip2_for_long_videos(tmp_path):
    from vidrd_testing.tiny_models import save_tiny_blip2

    path = save_tiny_blip2(tmp_path / "blip2")
    ctx = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 4}, models={"blip2": {"path": str(path)}})
    params = {"model": "blip2", "minigpt4": GEN, "blip2": {"max_new_tokens": 6}}  # an override flips `model` only
    cls = get_stage("caption")
    cls.check(params, ctx)
    stage = make_stage("caption", params, ctx)
    items = [Item(key="k", source="s", input_id="0", data={"keyframes": np.full((2, 64, 64, 3), 90, np.uint8)})]
    out = stage.process_batch(items)
    assert out[0].meta["captions"]["blip2"] and "minigpt4" not in out[0].meta["captions"]
