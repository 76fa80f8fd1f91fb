"""The forward engine: the whole model, one unit at a time, over a batch of samples.

Peak memory is one unit's weights plus the batch's activations: each unit is read from its
source, moved to the device, applied to every sample (vision tiles in chunks), and dropped
before the next is read.  Used by calibration, reference logits and validation alike.

Both transformer stacks go through the one layer walk, :meth:`Engine.walk`: the vision tower
over chunks of tiles, the language model over samples.  Its :class:`LayerHooks` see each layer
before it runs (its weights and inputs; ``before`` may hand back other weights to run it with)
and after (its outputs).  AWQ calibration quantizes each layer in ``before``, ``validate
--per-layer`` compares an artifact's layer with the source's there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..read.layout import LLM, VISION
from ..read.sources import UnitSource
from .linear import LinearHook, Linears
from .llm import decoder_layer, lm_head, rope_for
from .prompt import Prepared
from .vision import embed_patches, project, shuffle_tokens, vision_layer

VISION_PREFIX = "vision_model."
ProgressFn = Callable[[str], None]
LogitsFn = Callable[[int, torch.Tensor, torch.Tensor], None]
# --dtype choices of every command that runs the engine
COMPUTE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (None or 0: left as it is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class EngineOptions:
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    vision_chunk: int = 8  # tiles per vision matmul batch
    logit_chunk: int = 256  # positions per LM-head matmul (a chunk is chunk x vocab floats)
    # where the states between layers live: None = on ``device``; "cpu" keeps them in host memory and
    # moves one state at a time to the device
    state_device: str | None = None


@dataclass
class LayerCall:
    """One layer of the walk, as the hooks see it."""

    stack: str  # VISION or LLM
    index: int
    weights: Linears  # as loaded: on the device, in the compute dtype
    inputs: list[torch.Tensor]  # the states entering the layer (tile chunks, or one [1, T, H] per sample)

    @property
    def unit(self) -> str:
        return f"{self.stack}.layer.{self.index}"


@dataclass
class LayerHooks:
    """``before(call)`` may return the weights to run the layer with (None: as loaded);
    ``after(call, outputs)`` sees what the layer produced."""

    before: Callable[[LayerCall], Linears | None] | None = None
    after: Callable[[LayerCall, list[torch.Tensor]], None] | None = None


class Engine:
    """``on_linear_input(name, x)`` sees the input of every linear of every unit (importance matrices)."""

    def __init__(self, source: UnitSource, options: EngineOptions | None = None,
                 progress: ProgressFn | None = None, on_linear_input: LinearHook | None = None):
        self.source = source
        self.cfg = source.config
        self.opt = options or EngineOptions()
        self.progress = progress or (lambda unit: None)
        self.on_linear_input = on_linear_input

    # --- units -----------------------------------------------------------
    def load(self, unit_name: str, cast: bool = True) -> Linears:
        """A unit's tensors on the device; in the compute dtype unless ``cast`` is False."""
        dtype = self.opt.dtype if cast else None

        def place(t: torch.Tensor) -> torch.Tensor:
            # each tensor as read is dropped once converted and moved: the unit is never held twice
            # over, and on a GPU the host holds one tensor of it at a time
            return t.to(self.opt.device, dtype)

        unit = self.source.load_unit(unit_name, place)
        if unit_name == "llm.head" and self.cfg.llm.tie_word_embeddings:
            unit.tensors.update(self.source.load_unit("llm.embed", place).tensors)
        self.progress(unit_name)
        return Linears(unit.tensors, self.on_linear_input)

    # --- the layer walk ------------------------------------------------------
    def layer_count(self, stack: str) -> int:
        return self.cfg.vision.num_layers if stack == VISION else self.cfg.llm.num_layers

    def apply_layer(self, stack: str, index: int, w: Linears, x: torch.Tensor) -> torch.Tensor:
        """One layer of ``stack`` on one state (a chunk of tiles, or one sample)."""
        if stack == VISION:
            return vision_layer(self.cfg, w, x, f"{VISION_PREFIX}encoder.layers.{index}.")
        return decoder_layer(self.cfg, w, x, index, rope_for(self.cfg, x.shape[1], x.device, x.dtype))

    def store(self, x: torch.Tensor) -> torch.Tensor:
        """A state as it is kept between layers (``state_device``)."""
        where = self.opt.state_device or self.opt.device
        if x.device == torch.device(where):
            return x
        # pageable, not pinned: torch caches pinned blocks rounded up to a power of two and never hands
        # them back, which measured 9.95 GB of host memory against 4.78 GB planned for the 38B's
        # calibration on an H200; pageable, 5.37 GB, and the same 27 s an LLM layer (README)
        return x.to(where)

    def walk(self, stack: str, states: list[torch.Tensor], hooks: LayerHooks | None = None,
             start: int = 0) -> list[torch.Tensor]:
        """Layers ``start..`` of ``stack`` over ``states``, one layer's weights in memory at a time."""
        hooks = hooks or LayerHooks()
        for i in range(start, self.layer_count(stack)):
            w = self.load(f"{stack}.layer.{i}")
            call = LayerCall(stack, i, w, states)
            run_with = (hooks.before(call) if hooks.before else None) or w
            outputs = [self.store(self.apply_layer(stack, i, run_with, x.to(self.opt.device))) for x in states]
            if hooks.after:
                hooks.after(call, outputs)
            states = outputs
            del w, run_with, call
        return states

    # --- image path ----------------------------------------------------------
    def patch_embeddings(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """[tiles, 3, S, S] -> the vision tower's input states, ``vision_chunk`` tiles each."""
        w = self.load("vision.embeddings")
        return [self.store(embed_patches(self.cfg, w, c.to(self.opt.device), VISION_PREFIX))
                for c in pixels.split(self.opt.vision_chunk)]

    def project(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The tower's output states (consumed) -> [tiles, tokens_per_tile, llm hidden]: shuffle, projector."""
        w = self.load("projector")
        tiles = sum(x.shape[0] for x in states)
        out = torch.empty((tiles, self.cfg.tokens_per_tile, self.cfg.llm.hidden_size),
                          dtype=self.opt.dtype, device=self.opt.device)
        first = 0
        states.reverse()
        while states:  # each chunk's tower output is dropped once projected
            x = states.pop().to(self.opt.device)
            out[first:first + x.shape[0]] = project(self.cfg, w, shuffle_tokens(self.cfg, x))
            first += x.shape[0]
        return out

    def encode_images(self, pixels: torch.Tensor, hooks: LayerHooks | None = None) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, tokens_per_tile, llm hidden]: tower, shuffle, projector."""
        return self.project(self.walk(VISION, self.patch_embeddings(pixels), hooks))

    # --- text path -------------------------------------------------------------
    def embed(self, samples: Sequence[Prepared], vision_hooks: LayerHooks | None = None,
              max_tokens: int | None = None) -> list[torch.Tensor]:
        """Input embeddings [1, tokens, hidden] per sample, image slots filled with image tokens; with
        ``max_tokens``, each sample's first ``max_tokens`` only (the image tokens past it are dropped)."""
        tiles = [s.pixels for s in samples if s.pixels is not None]
        image_tokens = self.encode_images(torch.cat(tiles), vision_hooks) if tiles else None
        return self.splice(samples, image_tokens, max_tokens)

    def splice(self, samples: Sequence[Prepared], image_tokens: torch.Tensor | None,
               max_tokens: int | None = None) -> list[torch.Tensor]:
        """Token embeddings per sample with the image slots filled, in order, from ``image_tokens``."""
        w = self.load("llm.embed", cast=False)  # gather rows first: the full table in float32 is 3 GB
        table = w["language_model.model.embed_tokens.weight"]
        flat = image_tokens.reshape(-1, image_tokens.shape[-1]) if image_tokens is not None else None
        out, offset = [], 0
        for s in samples:
            keep = slice(0, max_tokens)
            x = table[s.input_ids[keep].to(self.opt.device)].to(self.opt.dtype)
            n, kept = int(s.image_mask.sum()), int(s.image_mask[keep].sum())
            if kept:
                assert flat is not None
                x[s.image_mask[keep].to(self.opt.device)] = flat[offset: offset + kept].to(x.dtype)
            offset += n
            out.append(self.store(x.unsqueeze(0)))
        return out

    def logits(self, hidden: list[torch.Tensor], on_logits: LogitsFn,
               positions: Sequence[torch.Tensor] | None = None) -> None:
        """Call ``on_logits(i, pos, logits[len(pos), vocab])`` per sample and chunk of positions.

        Vocabulary-wide logits are big (152k floats a token), so only the requested positions
        (default: all) are computed, ``logit_chunk`` at a time."""
        w = self.load("llm.head")
        for i, x in enumerate(hidden):
            pos = positions[i] if positions is not None else torch.arange(x.shape[1])
            for chunk in pos.split(self.opt.logit_chunk):
                on_logits(i, chunk, lm_head(self.cfg, w, x[0, chunk.to(x.device)].to(self.opt.device)))

    @torch.no_grad()
    def run(self, samples: Sequence[Prepared], on_logits: LogitsFn,
            positions: Sequence[torch.Tensor] | None = None) -> None:
        """The whole model over ``samples``."""
        self.logits(self.walk(LLM, self.embed(samples)), on_logits, positions)
