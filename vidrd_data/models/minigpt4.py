"""MiniGPT-4 as transformers classes: BLIP-2's vision encoder + Q-Former + one linear projection into a
LLaMA/Vicuna model, i.e. `Blip2ForConditionalGeneration` with a LLaMA text config.

What makes it MiniGPT-4 rather than BLIP-2 is the conversation prompt. The 32 projected query outputs of
each image replace an `<ImageHere>` placeholder inside Vicuna-v0's template, spliced in as embeddings
(as MiniGPT-4 does: no extra token in the vocabulary), and generation stops at the `###` separator:

    Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it
    to you. Please answer my questions.###Human: <Img><ImageHere></Img> Describe this image in one
    sentence.###Assistant:

Several keyframes of a clip become several `<Img><ImageHere></Img>` in the one question.
A loadable folder is made by `vidrd-data models convert-minigpt4` (see convert_minigpt4.py): config.json +
weights of the Blip2ForConditionalGeneration, the LLaMA tokenizer, a BLIP image processor and
`minigpt4.json` (the prompt format).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "minigpt4.json"
SYSTEM = ("Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it "
          "to you. Please answer my questions.")
SEP = "###"
IMAGE_SLOT = "<Img><ImageHere></Img>"
PLACEHOLDER = "<ImageHere>"
QUESTION_ONE = "Describe this image in one sentence."
QUESTION_MANY = "These are frames of one video clip, in order. Describe the clip in one sentence."
# MiniGPT-4's Blip2ImageEvalProcessor: 224x224 bicubic, CLIP mean/std
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def prompt_for(n_images: int, question: str | None = None, system: str = SYSTEM) -> str:
    q = question or (QUESTION_ONE if n_images == 1 else QUESTION_MANY)
    return f"{system}{SEP}Human: {IMAGE_SLOT * n_images} {q}{SEP}Assistant:"


def clean_output(text: str) -> str:
    """MiniGPT-4's answer: up to the next `###`, after any echoed `Assistant:`."""
    return text.split(SEP)[0].split("Assistant:")[-1].strip()


def check_minigpt4_folder(path: str | Path | None) -> Path:
    if not path:
        raise ValueError("models.minigpt4.path is required (a folder made by `vidrd-data models convert-minigpt4`)")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"MiniGPT-4 folder not found: {p} (models.minigpt4.path); build it from the released "
                                "checkpoints with `vidrd-data models convert-minigpt4 --help`")
    missing = [n for n in ("config.json", MARKER) if not (p / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{p} is not a converted MiniGPT-4 folder (missing {', '.join(missing)}); make one with "
                                "`vidrd-data models convert-minigpt4`")
    return p


def _dtype(name: str, device: str):
    import torch

    if name in (None, "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


class MiniGPT4Captioner:
    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 40,
                 num_beams: int = 1, question: str | None = None, repetition_penalty: float = 1.0,
                 min_new_tokens: int = 1, no_repeat_ngram_size: int = 0):
        import torch
        from transformers import AutoTokenizer, Blip2ForConditionalGeneration, BlipImageProcessor

        from vidrd_data.models.clip_embedder import resolve_device

        self.path = check_minigpt4_folder(path)
        self.info = json.loads((self.path / MARKER).read_text())
        self.device = resolve_device(device)
        self.model = Blip2ForConditionalGeneration.from_pretrained(
            self.path, dtype=_dtype(dtype, self.device)).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.processor = BlipImageProcessor.from_pretrained(self.path)
        self.gen = {"max_new_tokens": int(max_new_tokens), "num_beams": int(num_beams),
                    "repetition_penalty": float(repetition_penalty), "do_sample": False,
                    "min_new_tokens": int(min_new_tokens), "no_repeat_ngram_size": int(no_repeat_ngram_size)}
        self.question = question
        self.system = self.info.get("system", SYSTEM)
        self._torch = torch

    def _embed_text(self, text: str, bos: bool):
        ids = self.tokenizer(text, add_special_tokens=bos, return_tensors="pt").input_ids.to(self.device)
        return self.model.get_input_embeddings()(ids)[0]

    def caption(self, clips: list[np.ndarray]) -> list[str]:
        """clips: per clip, uint8 keyframes (n, H, W, 3) -> one caption per clip."""
        torch = self._torch
        if not clips:
            return []
        images = [im for clip in clips for im in clip]
        pixels = self.processor(images=images, return_tensors="pt").pixel_values.to(self.device, self.model.dtype)
        with torch.inference_mode():
            img = self.model.get_image_features(pixel_values=pixels).pooler_output  # (N, 32, hidden)
            seqs, off = [], 0
            for clip in clips:
                pieces = prompt_for(len(clip), self.question, self.system).split(PLACEHOLDER)
                parts = []
                for j, text in enumerate(pieces):  # BOS only before the first piece, as MiniGPT-4 does
                    parts.append(self._embed_text(text, bos=(j == 0)))
                    if j < len(pieces) - 1:
                        parts.append(img[off + j].to(parts[-1].dtype))
                off += len(clip)
                seqs.append(torch.cat(parts))
            width = max(s.shape[0] for s in seqs)
            hidden = seqs[0].shape[-1]
            embeds = torch.zeros(len(seqs), width, hidden, dtype=seqs[0].dtype, device=self.device)
            mask = torch.zeros(len(seqs), width, dtype=torch.long, device=self.device)
            for i, s in enumerate(seqs):  # left padding: generation continues from the right edge
                embeds[i, width - s.shape[0]:] = s
                mask[i, width - s.shape[0]:] = 1
            with warnings.catch_warnings():  # n-gram rules apply to the answer only: that is what we want
                warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*")
                out = self._generate(embeds, mask)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [clean_output(t) for t in texts]

    def _generate(self, embeds, mask):
        return self.model.language_model.generate(
            inputs_embeds=embeds, attention_mask=mask, stopping_criteria=[_StopAtSeparator(self.tokenizer)],
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id, **self.gen)


class _StopAtSeparator:
    """Stop once every sequence has written `###` (MiniGPT-4's turn separator). Decodes the tail only, so it
    works with any tokenizer (transformers' stop_strings needs a byte-level one)."""

    def __init__(self, tokenizer, tail: int = 6):
        self.tokenizer, self.tail = tokenizer, tail

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = [SEP in self.tokenizer.decode(row[-self.tail:]) for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# --------------------------------------------------------------------------- tiny stand-ins for tests/demo

_TINY_WORDS = ("a an the one two people person man woman child dog car cars bike bikes bus taxi street road square "
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
    corpus = [prompt_for(1), prompt_for(3), " ".join(_TINY_WORDS)]
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
