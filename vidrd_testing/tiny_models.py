"""Tiny RANDOM models saved to disk with the real classes, for tests and the offline demo: BLIP-2 (a
loadable folder) and MiniGPT-4's pieces in their *released* formats (converted by `vidrd-data models
convert-minigpt4`, exactly as real checkpoints are).

They are loaded through exactly the code path of a real checkpoint (`from_pretrained` on a directory), so a
build with them exercises everything but caption quality: their captions are random words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidrd_data.models.minigpt4 import prompt_for

# A small word-level vocabulary (built offline: no tokenizer download). OPT's special-token ids are kept:
# <s>=0, <pad>=1, </s>=2 (BOS and EOS), <unk>=3.
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_WORDS = """a an the of in on at with and to from by is are two three some
man woman person people boy girl child baby dog cat horse bird car bike ball guitar piano drum water
street road field room kitchen park beach snow tree trees grass table wall floor sky building city crowd
playing riding walking running jumping dancing swimming climbing throwing holding standing sitting
cooking eating looking moving driving skating skiing surfing rowing lifting cutting writing talking
red blue green white black yellow small large young old wooden outdoor indoor sunny busy
front side top close view near next over under through around group team game stage video""".split()


def tiny_vocab() -> list[str]:
    return _SPECIALS + _WORDS + ["<image>"]


def make_tiny_tokenizer():
    """A word-level tokenizer that behaves like OPT's for BLIP-2: prepends </s> (BOS), decodes with spaces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(tiny_vocab())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", vocab["</s>"])])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with single spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=["<s>"], padding_side="left",
                                   model_max_length=512)


def save_tiny_blip2(dest: str | Path, seed: int = 0, image_size: int = 64, num_query_tokens: int = 4) -> Path:
    """A random Blip2ForConditionalGeneration (ViT + Q-Former + OPT, hidden size 32) with its processor."""
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig,
                              Blip2VisionConfig, BlipImageProcessor, OPTConfig)

    dest = Path(dest)
    tokenizer = make_tiny_tokenizer()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=num_query_tokens)
    vocab_size = len(processor.tokenizer)
    config = Blip2Config(
        vision_config=Blip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=image_size, patch_size=16).to_dict(),
        qformer_config=Blip2QFormerConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=2, vocab_size=64, cross_attention_frequency=1,
                                          max_position_embeddings=64).to_dict(),
        text_config=OPTConfig(vocab_size=vocab_size, hidden_size=32, word_embed_proj_dim=32, ffn_dim=64,
                              num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=128,
                              bos_token_id=2, eos_token_id=2, pad_token_id=1).to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=processor.tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    model.generation_config.bos_token_id = model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 1
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    (dest / "README.md").write_text(
        "Tiny RANDOM BLIP-2 (vidrd_testing.tiny_models.save_tiny_blip2): for tests and the offline demo only.\n"
        "Its captions are random words. Point models.blip2.path at real weights (e.g. Salesforce/blip2-opt-2.7b).\n")
    return dest


# ------------------------------------------------------------------------------ tiny MiniGPT-4 pieces


_LLAMA_WORDS = ("a an the one two people person man woman child dog car cars bike bikes bus taxi street road square "
               "city night day restaurant table room window tree trees park crowd walks walking rides riding talks "
               "talking sits sitting stands looks drives driving smiles across past near in on at with and of "
               "red blue green dark bright old young small large busy quiet cartoon wooden glass light rain").split()


def tiny_llama_tokenizer():
    """A small word-level tokenizer with LLaMA's special tokens, built offline (no download). Word-level so
    that even a random tiny model writes words (its captions are noise, but they survive caption hygiene)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [prompt_for(1), prompt_for(3), " ".join(_LLAMA_WORDS)]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>")


TINY = {"vision": 128, "vision_layers": 2, "vision_mlp": 256, "patch": 14, "image": 28,
        "qformer": 64, "qformer_layers": 2, "qformer_mlp": 128, "queries": 4, "llama": 64}


def save_tiny_lavis_parts(dest: str | Path, seed: int = 0) -> dict[str, Path]:
    """Random tiny MiniGPT-4 pieces in the *released* formats: a LAVIS BLIP-2 checkpoint (visual_encoder.*,
    ln_vision.*, Qformer.bert.*, query_tokens, plus tensors MiniGPT-4 drops), the MiniGPT-4 projection
    checkpoint ({"model": {llama_proj.*}}) and a LLaMA folder (config, safetensors, tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    t = TINY

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    D, H, L = t["vision"], t["qformer"], t["llama"]
    n_patch = (t["image"] // t["patch"]) ** 2
    sd: dict[str, Any] = {"visual_encoder.cls_token": r(1, 1, D), "visual_encoder.pos_embed": r(1, n_patch + 1, D),
                          "visual_encoder.patch_embed.proj.weight": r(D, 3, t["patch"], t["patch"]),
                          "visual_encoder.patch_embed.proj.bias": r(D),
                          "ln_vision.weight": 1 + r(D), "ln_vision.bias": r(D), "query_tokens": r(1, t["queries"], H)}
    for i in range(t["vision_layers"]):
        p = f"visual_encoder.blocks.{i}."
        sd |= {p + "norm1.weight": 1 + r(D), p + "norm1.bias": r(D), p + "attn.qkv.weight": r(3 * D, D),
               p + "attn.q_bias": r(D), p + "attn.v_bias": r(D), p + "attn.proj.weight": r(D, D),
               p + "attn.proj.bias": r(D), p + "norm2.weight": 1 + r(D), p + "norm2.bias": r(D),
               p + "mlp.fc1.weight": r(t["vision_mlp"], D), p + "mlp.fc1.bias": r(t["vision_mlp"]),
               p + "mlp.fc2.weight": r(D, t["vision_mlp"]), p + "mlp.fc2.bias": r(D)}
    q = "Qformer.bert."
    sd |= {q + "embeddings.LayerNorm.weight": 1 + r(H), q + "embeddings.LayerNorm.bias": r(H),
           q + "embeddings.word_embeddings.weight": r(30, H), q + "embeddings.position_embeddings.weight": r(8, H),
           q + "embeddings.position_ids": torch.arange(8)[None],
           "Qformer.cls.predictions.bias": r(30)}  # text-side tensors: present in LAVIS files, unused by MiniGPT-4
    for i in range(t["qformer_layers"]):
        p = f"{q}encoder.layer.{i}."
        blocks = ["attention"] + (["crossattention"] if i % 2 == 0 else [])
        for blk in blocks:
            kv_in = D if blk == "crossattention" else H
            sd |= {f"{p}{blk}.self.query.weight": r(H, H), f"{p}{blk}.self.query.bias": r(H),
                   f"{p}{blk}.self.key.weight": r(H, kv_in), f"{p}{blk}.self.key.bias": r(H),
                   f"{p}{blk}.self.value.weight": r(H, kv_in), f"{p}{blk}.self.value.bias": r(H),
                   f"{p}{blk}.output.dense.weight": r(H, H), f"{p}{blk}.output.dense.bias": r(H),
                   f"{p}{blk}.output.LayerNorm.weight": 1 + r(H), f"{p}{blk}.output.LayerNorm.bias": r(H)}
        for kind in ("", "_query"):
            sd |= {f"{p}intermediate{kind}.dense.weight": r(t["qformer_mlp"], H),
                   f"{p}intermediate{kind}.dense.bias": r(t["qformer_mlp"]),
                   f"{p}output{kind}.dense.weight": r(H, t["qformer_mlp"]), f"{p}output{kind}.dense.bias": r(H),
                   f"{p}output{kind}.LayerNorm.weight": 1 + r(H), f"{p}output{kind}.LayerNorm.bias": r(H)}
    torch.save({"model": sd}, dest / "blip2_pretrained_tiny.pth")
    torch.save({"model": {"llama_proj.weight": r(L, H), "llama_proj.bias": r(L)}}, dest / "pretrained_minigpt4_tiny.pth")

    tok = tiny_llama_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=L, intermediate_size=2 * L, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    llama = dest / "llama"
    LlamaForCausalLM(cfg).save_pretrained(llama, safe_serialization=True)
    tok.save_pretrained(llama)
    return {"blip2": dest / "blip2_pretrained_tiny.pth", "minigpt4": dest / "pretrained_minigpt4_tiny.pth",
            "llama": llama}
