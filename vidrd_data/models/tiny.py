"""Tiny RANDOM models saved to disk with the real classes, for tests and the offline demo.

They are loaded through exactly the code path of a real checkpoint (`from_pretrained` on a directory), so a
build with them exercises everything but caption quality: their captions are random words.
"""

from __future__ import annotations

from pathlib import Path

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
        "Tiny RANDOM BLIP-2 (vidrd_data.models.tiny.save_tiny_blip2): for tests and the offline demo only.\n"
        "Its captions are random words. Point models.blip2.path at real weights (e.g. Salesforce/blip2-opt-2.7b).\n")
    return dest
