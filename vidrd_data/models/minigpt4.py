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

import numpy as np

from vidrd_data.models.service import pick_device, pick_dtype, resolve_model_dir

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


def check_minigpt4_folder(path: str | Path | None, base_dir: str | Path = ".") -> Path:
    """The converted folder (a local path, relative to `base_dir`, or a hub id in the local cache)."""
    if not path:
        raise ValueError("models.minigpt4.path is required (a folder made by `vidrd-data models convert-minigpt4`)")
    return resolve_model_dir(str(path), base_dir, label="MiniGPT-4", setting="models.minigpt4.path",
                             required=("config.json", MARKER),
                             how_to="make one from the released checkpoints with `vidrd-data models "
                                    "convert-minigpt4 --help`")


class MiniGPT4Captioner:
    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 40,
                 num_beams: int = 1, question: str | None = None, repetition_penalty: float = 1.0,
                 min_new_tokens: int = 1, no_repeat_ngram_size: int = 0):
        import torch
        from transformers import AutoTokenizer, Blip2ForConditionalGeneration, BlipImageProcessor

        self.path = check_minigpt4_folder(path)
        self.info = json.loads((self.path / MARKER).read_text())
        self.device = pick_device(device)
        self.model = Blip2ForConditionalGeneration.from_pretrained(
            self.path, dtype=pick_dtype(dtype, self.device)).to(self.device).eval()
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
