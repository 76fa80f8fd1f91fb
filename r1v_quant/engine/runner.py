"""The forward engine: the whole model, one unit at a time, over a batch of samples.

Peak memory is one unit's weights plus the batch's activations: each unit is
read from the shards, moved to the device, applied to every sample (vision
tiles in chunks), and dropped before the next is read.  Used by calibration,
reference logits and validation alike.

Hooks:
* ``on_linear_input(name, x)`` sees the input of every linear layer;
* ``transform_unit(unit)`` may replace a unit's tensors before use (e.g. the
  dequantized weights of an artifact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from ..read.checkpoint import Checkpoint, Unit
from .linear import LinearHook, Linears
from .llm import decoder_layer, lm_head, rope_for
from .prompt import Prepared
from .vision import embed_patches, project, shuffle_tokens, vision_layer

VISION_PREFIX = "vision_model."
UnitTransform = Callable[[Unit], Unit]
ProgressFn = Callable[[str], None]
LogitsFn = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class EngineOptions:
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    vision_chunk: int = 8  # tiles per vision matmul batch
    logit_chunk: int = 256  # positions per LM-head matmul (a chunk is chunk x vocab floats)


class Engine:
    def __init__(self, ckpt: Checkpoint, options: EngineOptions | None = None,
                 on_linear_input: LinearHook | None = None, transform_unit: UnitTransform | None = None,
                 progress: ProgressFn | None = None):
        self.ckpt = ckpt
        self.cfg = ckpt.config
        self.opt = options or EngineOptions()
        self.hook = on_linear_input
        self.transform = transform_unit
        self.progress = progress or (lambda unit: None)

    # --- units -----------------------------------------------------------
    def load(self, unit_name: str, cast: bool = True) -> Linears:
        """A unit's tensors on the device; in the compute dtype unless ``cast`` is False."""
        unit = self.ckpt.load_unit(unit_name)
        if unit_name == "llm.head" and self.cfg.llm.tie_word_embeddings:
            unit.tensors.update(self.ckpt.load_unit("llm.embed").tensors)
        if self.transform is not None:
            unit = self.transform(unit)
        dtype = self.opt.dtype if cast else None
        tensors = {k: v.to(self.opt.device, dtype) for k, v in unit.tensors.items()}
        self.progress(unit_name)
        return Linears(tensors, self.hook)

    # --- image path ----------------------------------------------------------
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, tokens_per_tile, llm hidden]: tower, shuffle, projector."""
        chunks = list(pixels.split(self.opt.vision_chunk))
        w = self.load("vision.embeddings")
        xs = [embed_patches(self.cfg, w, c.to(self.opt.device), VISION_PREFIX) for c in chunks]
        del w
        for i in range(self.cfg.vision.num_layers):
            w = self.load(f"vision.layer.{i}")
            prefix = f"{VISION_PREFIX}encoder.layers.{i}."
            xs = [vision_layer(self.cfg, w, x, prefix) for x in xs]
            del w
        w = self.load("projector")
        out = torch.cat([project(self.cfg, w, shuffle_tokens(self.cfg, x)) for x in xs])
        return out

    # --- text path -------------------------------------------------------------
    def embed(self, samples: Sequence[Prepared]) -> list[torch.Tensor]:
        """Input embeddings [1, tokens, hidden] per sample, image slots filled with image tokens."""
        tiles = [s.pixels for s in samples if s.pixels is not None]
        image_tokens = self.encode_images(torch.cat(tiles)) if tiles else None
        w = self.load("llm.embed", cast=False)  # gather rows first: the full table in float32 is 3 GB
        table = w["language_model.model.embed_tokens.weight"]
        out, offset = [], 0
        for s in samples:
            x = table[s.input_ids.to(self.opt.device)].to(self.opt.dtype)
            n = int(s.image_mask.sum())
            if n:
                assert image_tokens is not None
                flat = image_tokens.reshape(-1, image_tokens.shape[-1])
                x[s.image_mask.to(self.opt.device)] = flat[offset: offset + n].to(x.dtype)
                offset += n
            out.append(x.unsqueeze(0))
        return out

    def decoder_layers(self, hidden: list[torch.Tensor], layers: Iterable[int] | None = None) -> list[torch.Tensor]:
        for i in layers if layers is not None else range(self.cfg.llm.num_layers):
            w = self.load(f"llm.layer.{i}")
            hidden = [decoder_layer(self.cfg, w, x, i, rope_for(self.cfg, x.shape[1], x.device, x.dtype))
                      for x in hidden]
            del w
        return hidden

    def logits(self, hidden: list[torch.Tensor], on_logits: LogitsFn,
               positions: Sequence[torch.Tensor] | None = None) -> None:
        """Call ``on_logits(i, pos, logits[len(pos), vocab])`` per sample and chunk of positions.

        Vocabulary-wide logits are big (152k floats a token), so only the requested positions
        (default: all) are computed, ``logit_chunk`` at a time."""
        w = self.load("llm.head")
        for i, x in enumerate(hidden):
            pos = positions[i] if positions is not None else torch.arange(x.shape[1])
            for chunk in pos.split(self.opt.logit_chunk):
                on_logits(i, chunk, lm_head(self.cfg, w, x[0, chunk.to(x.device)]))

    @torch.no_grad()
    def run(self, samples: Sequence[Prepared], on_logits: LogitsFn,
            positions: Sequence[torch.Tensor] | None = None) -> None:
        """The whole model over ``samples``."""
        self.logits(self.decoder_layers(self.embed(samples)), on_logits, positions)
