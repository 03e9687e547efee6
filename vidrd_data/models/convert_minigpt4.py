"""`vidrd-data models convert-minigpt4`: released MiniGPT-4 checkpoints -> one loadable transformers folder.

Inputs, as released:
  --minigpt4  MiniGPT-4's projection checkpoint (pretrained_minigpt4.pth: {"model": {llama_proj.weight, .bias}})
  --blip2     LAVIS BLIP-2 weights with the Q-Former (e.g. blip2_pretrained_flant5xxl.pth: Qformer.bert.*,
              query_tokens, ln_vision.*, and visual_encoder.* when the file holds it)
  --vit       EVA ViT-g weights when --blip2 lacks visual_encoder.* (eva_vit_g.pth; bare or prefixed names)
  --llama     a Hugging Face LLaMA / Vicuna folder (config.json, weights, tokenizer)
Output (--out): a Blip2ForConditionalGeneration (LLaMA text config) folder + tokenizer + image processor +
minigpt4.json, which `vidrd_data.models.minigpt4.MiniGPT4Captioner` loads.

LAVIS -> transformers names follow transformers' own BLIP-2 conversion: visual_encoder.blocks.N ->
vision_model.encoder.layers.N (attn.q_bias/v_bias become qkv.bias = [q, 0, v]), ln_vision ->
vision_model.post_layernorm, Qformer.bert -> qformer with attention.self -> attention.attention,
llama_proj -> language_projection, LLaMA's own names under language_model.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

# tensors in LAVIS files that MiniGPT-4 never uses (Q-Former text path, stage-1 heads, other LLM projections)
_DROP = re.compile(r"^(Qformer\.cls\.|Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings|position_ids)"
                   r"|Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\.|vision_proj\.|text_proj\.|itm_head\."
                   r"|temp$|t5_proj\.|opt_proj\.|t5_model\.|opt_model\.|llama_model\.)")
EVA_VIT_G_WIDTH, EVA_VIT_G_DEPTH = 1408, 40  # BLIP-2 / MiniGPT-4 use the output of its penultimate block


class ConversionError(ValueError):
    pass


def _load(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a state dict (or {{'model': state_dict}}), got {type(obj).__name__}")
    return obj


def _load_llama(folder: Path) -> tuple[Any, dict[str, Any]]:
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise ConversionError(f"--llama {folder}: no config.json; pass a Hugging Face LLaMA/Vicuna folder "
                              "(convert original LLaMA weights with transformers' convert_llama_weights_to_hf first)")
    config = AutoConfig.from_pretrained(folder)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ConversionError(f"--llama {folder}: no *.safetensors or pytorch_model*.bin weights")
    sd: dict[str, Any] = {}
    for f in files:
        sd.update(_load(f))
    return config, sd


def rename_lavis(sd: dict[str, Any], vision_layers: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """LAVIS/MiniGPT-4 names -> transformers Blip2ForConditionalGeneration names. Returns (renamed, ignored)."""
    import torch

    out: dict[str, Any] = {}
    ignored: list[str] = []
    q_bias: dict[int, Any] = {}
    v_bias: dict[int, Any] = {}
    for key, val in sd.items():
        if _DROP.match(key):
            ignored.append(key)
            continue
        k = key
        if k.startswith("visual_encoder."):
            k = k[len("visual_encoder."):]
            m = re.match(r"blocks\.(\d+)\.(.*)", k)
            if m:
                i, rest = int(m.group(1)), m.group(2)
                if vision_layers is not None and i >= vision_layers:
                    ignored.append(key)
                    continue
                if rest in ("attn.q_bias", "attn.v_bias"):
                    (q_bias if rest == "attn.q_bias" else v_bias)[i] = val
                    continue
                rest = (rest.replace("norm1.", "layer_norm1.").replace("norm2.", "layer_norm2.")
                        .replace("attn.qkv.", "self_attn.qkv.").replace("attn.proj.", "self_attn.projection."))
                k = f"vision_model.encoder.layers.{i}.{rest}"
            else:
                k = {"cls_token": "vision_model.embeddings.class_embedding",
                     "pos_embed": "vision_model.embeddings.position_embedding",
                     "patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
                     "patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias"}.get(k, "?" + key)
        elif k.startswith("ln_vision."):
            k = "vision_model.post_layernorm." + k[len("ln_vision."):]
        elif k.startswith("Qformer.bert."):
            k = "qformer." + k[len("Qformer.bert."):]
            k = k.replace("qformer.embeddings.LayerNorm.", "qformer.layernorm.")
            k = k.replace(".attention.self.", ".attention.attention.").replace(".crossattention.self.",
                                                                               ".crossattention.attention.")
        elif k.startswith("llama_proj."):
            k = "language_projection." + k[len("llama_proj."):]
        elif k != "query_tokens":
            k = "?" + key
        if k.startswith("?"):
            ignored.append(key)
            continue
        out[k] = val
    for i in sorted(set(q_bias) | set(v_bias)):
        if i in q_bias and i in v_bias:
            out[f"vision_model.encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat(
                [q_bias[i], torch.zeros_like(v_bias[i]), v_bias[i]])
    return out, ignored


def _count(prefix_re: str, keys) -> int:
    ids = {int(m.group(1)) for k in keys if (m := re.match(prefix_re, k))}
    return max(ids) + 1 if ids else 0


def infer_config(sd: dict[str, Any], llama_config, vision_heads: int | None = None,
                 qformer_heads: int | None = None):
    """A Blip2Config from the renamed tensors' shapes (heads are not in the shapes: default width // 64,
    16 for EVA ViT-g's 1408)."""
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig

    need = ["vision_model.embeddings.class_embedding", "vision_model.embeddings.patch_embedding.weight",
            "vision_model.embeddings.position_embedding", "vision_model.encoder.layers.0.mlp.fc1.weight",
            "query_tokens", "qformer.encoder.layer.0.intermediate_query.dense.weight",
            "qformer.encoder.layer.0.crossattention.attention.key.weight"]
    absent = [k for k in need if k not in sd]
    if absent:
        raise ConversionError("cannot read the model's shape, missing tensors (transformers names): "
                              + ", ".join(absent) + ". Is --blip2 a LAVIS BLIP-2 checkpoint, and --vit given "
                              "when it holds no visual_encoder.* weights?")
    width = sd["vision_model.embeddings.class_embedding"].shape[-1]
    patch = sd["vision_model.embeddings.patch_embedding.weight"].shape[-1]
    n_pos = sd["vision_model.embeddings.position_embedding"].shape[1] - 1
    side = int(round(n_pos ** 0.5))
    if side * side != n_pos:
        raise ConversionError(f"vision position embedding holds {n_pos} patches, not a square grid")
    hidden_q = sd["query_tokens"].shape[-1]
    n_q = _count(r"qformer\.encoder\.layer\.(\d+)\.", sd)
    cross = sorted({int(m.group(1)) for k in sd if (m := re.match(r"qformer\.encoder\.layer\.(\d+)\.crossattention", k))})
    vision = Blip2VisionConfig(
        hidden_size=width, intermediate_size=sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=_count(r"vision_model\.encoder\.layers\.(\d+)\.", sd),
        num_attention_heads=vision_heads or (16 if width == EVA_VIT_G_WIDTH else max(1, width // 64)),
        image_size=side * patch, patch_size=patch, qkv_bias=True, layer_norm_eps=1e-6)
    qformer = Blip2QFormerConfig(
        hidden_size=hidden_q, num_hidden_layers=n_q,
        num_attention_heads=qformer_heads or max(1, hidden_q // 64),
        intermediate_size=sd["qformer.encoder.layer.0.intermediate_query.dense.weight"].shape[0],
        cross_attention_frequency=(cross[1] - cross[0]) if len(cross) > 1 else max(1, n_q),
        encoder_hidden_size=sd["qformer.encoder.layer.0.crossattention.attention.key.weight"].shape[1],
        layer_norm_eps=1e-12)
    return Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                       text_config=llama_config.to_dict(), num_query_tokens=sd["query_tokens"].shape[1])


def _short(names: list[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f" ... (+{len(names) - n} more)" if len(names) > n else "")


def convert(minigpt4_ckpt: str | Path, blip2_ckpt: str | Path, llama: str | Path, out: str | Path,
            vit_ckpt: str | Path | None = None, vision_layers: int | None = None, dtype: str = "auto",
            vision_heads: int | None = None, qformer_heads: int | None = None) -> Path:
    import torch
    from transformers import AutoTokenizer, Blip2ForConditionalGeneration, BlipImageProcessor

    from vidrd_data.models.minigpt4 import CLIP_MEAN, CLIP_STD, MARKER, SYSTEM, prompt_for

    paths = {"--minigpt4": minigpt4_ckpt, "--blip2": blip2_ckpt, "--llama": llama, "--vit": vit_ckpt}
    for flag, p in paths.items():
        if p is not None and not Path(p).exists():
            raise ConversionError(f"{flag} {p}: not found")
    raw = dict(_load(Path(blip2_ckpt)))
    if vit_ckpt:
        vit = _load(Path(vit_ckpt))
        raw.update({(k if k.startswith("visual_encoder.") else "visual_encoder." + k): v for k, v in vit.items()})
    proj = _load(Path(minigpt4_ckpt))
    if "llama_proj.weight" not in proj:
        raise ConversionError(f"--minigpt4 {minigpt4_ckpt}: no llama_proj.weight (found {_short(sorted(proj), 5)}); "
                              "pass MiniGPT-4's pretrained_minigpt4*.pth")
    raw.update({k: v for k, v in proj.items() if k.startswith("llama_proj.")})

    if vision_layers is None:  # EVA ViT-g: 40 blocks released, BLIP-2 was trained on the first 39
        width = raw.get("visual_encoder.cls_token")
        depth = _count(r"visual_encoder\.blocks\.(\d+)\.", raw)
        if width is not None and width.shape[-1] == EVA_VIT_G_WIDTH and depth == EVA_VIT_G_DEPTH:
            vision_layers = EVA_VIT_G_DEPTH - 1
    sd, ignored = rename_lavis(raw, vision_layers)

    llama_config, llama_sd = _load_llama(Path(llama))
    config = infer_config(sd, llama_config, vision_heads, qformer_heads)
    sd.update({"language_model." + k: v for k, v in llama_sd.items()})

    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    tied = {"language_model.lm_head.weight"} if getattr(llama_config, "tie_word_embeddings", False) else set()
    missing = [k for k in missing if k not in tied]
    if missing:
        raise ConversionError(f"checkpoint incomplete: {len(missing)} tensor(s) missing (transformers names): "
                              f"{_short(missing)}")
    bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise ConversionError(f"wrong shapes (got != expected): {_short(bad)}; the projection must map the Q-Former "
                              f"width {config.qformer_config.hidden_size} to the LLaMA width "
                              f"{llama_config.hidden_size}")
    unused = [k for k in sd if k not in expected]
    target = {"auto": next(iter(llama_sd.values())).dtype, "float16": torch.float16, "bfloat16": torch.bfloat16,
              "float32": torch.float32}[dtype]
    state = {k: (sd[k].to(target) if sd[k].is_floating_point() else sd[k]) for k in expected if k in sd}
    model.load_state_dict(state, strict=not tied, assign=True)
    if tied:
        model.tie_weights()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(llama).save_pretrained(out)
    size = config.vision_config.image_size
    BlipImageProcessor(size={"height": size, "width": size}, image_mean=list(CLIP_MEAN),
                       image_std=list(CLIP_STD)).save_pretrained(out)
    (out / MARKER).write_text(json.dumps({
        "format": "minigpt4", "system": SYSTEM, "prompt_example": prompt_for(1),
        "sources": {k.lstrip("-"): str(v) for k, v in paths.items() if v is not None},
        "vision_layers": config.vision_config.num_hidden_layers, "ignored_tensors": len(ignored) + len(unused),
    }, indent=2))
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("convert-minigpt4", help="build a loadable MiniGPT-4 folder from the released checkpoints",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minigpt4", required=True, help="MiniGPT-4 projection checkpoint (pretrained_minigpt4.pth)")
    p.add_argument("--blip2", required=True, help="LAVIS BLIP-2 checkpoint with the Q-Former")
    p.add_argument("--vit", help="EVA ViT-g weights, when --blip2 has no visual_encoder.*")
    p.add_argument("--llama", required=True, help="Hugging Face LLaMA/Vicuna folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--vision-layers", type=int, help="vision blocks to keep (default: all; 39 for EVA ViT-g's 40)")
    p.add_argument("--vision-heads", type=int, help="vision attention heads (default: 16 for ViT-g, else width/64)")
    p.add_argument("--qformer-heads", type=int, help="Q-Former attention heads (default: width/64)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                   help="weights dtype (auto: the LLaMA folder's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        out = convert(args.minigpt4, args.blip2, args.llama, args.out, vit_ckpt=args.vit,
                      vision_layers=args.vision_layers, dtype=args.dtype, vision_heads=args.vision_heads,
                      qformer_heads=args.qformer_heads)
    except ConversionError as exc:
        print(f"convert-minigpt4: {exc}")
        return 2
    print(f"MiniGPT-4 folder written: {out}  (use it as models.minigpt4.path)")
    return 0
