"""Samples -> token ids with image slots, as the chat model sees them.

The chat template renders the conversation; each ``<image>`` placeholder then
becomes ``<img>`` + ``<IMG_CONTEXT>`` x (tokens per tile x tiles) + ``</img>``.
Answer tokens (the last assistant message) are marked, so reference logits and
validation can score the answer separately from the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..read.config import ModelConfig
from ..read.tokenizer import load_tokenizer
from .image import load_image, preprocess

IMAGE_PLACEHOLDER = "<image>"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


@dataclass
class Prepared:
    """One sample ready for the forward pass."""

    id: str
    input_ids: torch.Tensor  # [tokens] int64
    image_mask: torch.Tensor  # [tokens] bool: positions filled by image tokens
    answer_mask: torch.Tensor  # [tokens] bool: tokens of the final assistant message
    pixels: torch.Tensor | None  # [tiles, 3, S, S] of all images, in order
    kind: str

    @property
    def has_image(self) -> bool:
        return self.pixels is not None

    def predicts_text(self) -> torch.Tensor:
        """[tokens] bool: the positions whose next token is text, and the last one (what comes after the
        prompt).  Only their logits are ever read: what a position predicts before an image slot is
        replaced by the image, so its logits mean nothing."""
        return torch.cat([~self.image_mask[1:], torch.ones(1, dtype=torch.bool)])


class PromptBuilder:
    """Tokenizer + image preprocessing of one checkpoint."""

    def __init__(self, model_dir: Path, cfg: ModelConfig, max_tiles: int | None = None):
        self.tok = load_tokenizer(model_dir)
        self.cfg = cfg
        self.max_tiles = max_tiles or cfg.max_dynamic_patch
        self.context_id = self.tok.convert_tokens_to_ids(IMG_CONTEXT)
        if self.context_id is None or self.context_id == self.tok.unk_token_id:
            raise InputError(f"{model_dir}: tokenizer has no {IMG_CONTEXT} token")

    def _render(self, messages: Sequence[dict]) -> tuple[str, int]:
        """Full conversation text and the character offset where the final answer starts."""
        msgs = [dict(m) for m in messages]
        if msgs[-1]["role"] == "assistant":
            prompt = self.tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
            full = self.tok.apply_chat_template(msgs, tokenize=False)
            answer = msgs[-1]["content"]
            start = full.rfind(answer)
            if start < 0:  # a template that rewrites the answer: score from the end of the prompt
                start = len(prompt)
            return full, start
        text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return text, len(text)

    def prepare(self, sample_id: str, messages: Sequence[dict], images: Sequence[Path], kind: str = "") -> Prepared:
        cfg = self.cfg
        pixels = [preprocess(load_image(p), cfg.image_size, cfg.min_dynamic_patch, self.max_tiles,
                             cfg.use_thumbnail, cfg.dynamic_image_size, cfg.image_mean, cfg.image_std) for p in images]
        text, answer_at = self._render(messages)
        pieces = text.split(IMAGE_PLACEHOLDER)
        if len(pieces) - 1 != len(pixels):
            raise InputError(f"sample {sample_id}: {len(pieces) - 1} <image> placeholders for {len(pixels)} images")
        # expand placeholders, keeping track of how far the answer offset moves
        out, shift = pieces[0], 0
        for piece, px in zip(pieces[1:], pixels):
            slot = IMG_START + IMG_CONTEXT * (cfg.tokens_per_tile * px.shape[0]) + IMG_END
            if len(out) < answer_at + shift:
                shift += len(slot) - len(IMAGE_PLACEHOLDER)
            out += slot + piece
        enc = self.tok(out, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor(enc["input_ids"], dtype=torch.int64)
        starts = torch.tensor([s for s, _ in enc["offset_mapping"]], dtype=torch.int64)
        image_mask = ids == self.context_id
        expected = sum(cfg.tokens_per_tile * p.shape[0] for p in pixels)
        if int(image_mask.sum()) != expected:
            raise InputError(f"sample {sample_id}: tokenizer split <IMG_CONTEXT> unexpectedly")
        return Prepared(sample_id, ids, image_mask, starts >= answer_at + shift,
                        torch.cat(pixels) if pixels else None, kind or ("image" if pixels else "text"))
