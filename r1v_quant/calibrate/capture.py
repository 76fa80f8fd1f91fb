"""Calibration activations: what each linear of a layer sees, recomputed one chunk of tokens at a time.

A :class:`LayerProgram` runs one transformer layer (a Qwen2 decoder layer or an InternViT layer) as
its two blocks, attention and MLP, and can return, for a chunk of the layer's input states, the
input of every linear and of each block and each block's output (:meth:`LayerProgram.capture`).
Nothing of it is kept across chunks: what calibration keeps are running statistics
(:mod:`.stats`), so its memory does not grow with the MLP width or the number of linears.

Names in a capture: the linears by their name after the layer prefix (``self_attn.q_proj``,
``attn.qkv``, ...), ``attn_in`` / ``mlp_in`` for the normed block inputs and ``attn_out`` /
``mlp_out`` for the block outputs (before the residual add and any layer scale).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine.linear import Linears
from ..engine.llm import LAYER_PREFIX, attention, mlp, rope_for
from ..engine.ops import rms_norm
from ..engine.vision import vision_attention, vision_mlp, vision_norm
from ..read.config import ModelConfig
from ..read.layout import LLM, VISION_LAYER_PREFIX

Capture = dict[str, torch.Tensor]


class LayerProgram:
    """One layer of ``stack`` (LLM or VISION), layer ``index``, as blocks the calibration can rerun."""

    def __init__(self, cfg: ModelConfig, stack: str, index: int):
        self.cfg, self.stack, self.index = cfg, stack, index
        self.prefix = (LAYER_PREFIX if stack == LLM else VISION_LAYER_PREFIX).format(index)
        n1, n2 = ("input_layernorm", "post_attention_layernorm") if stack == LLM else ("norm1", "norm2")
        self.norms = (n1, n2)

    def norm(self, w: Linears, which: int, x: torch.Tensor) -> torch.Tensor:
        name = self.prefix + self.norms[which]
        if self.stack == LLM:
            return rms_norm(x, w[name + ".weight"], self.cfg.llm.rms_norm_eps)
        return vision_norm(self.cfg, w, name, x)

    def attention(self, w: Linears, h: torch.Tensor) -> torch.Tensor:
        """The attention block on one state's normed input (a sample [1, T, H], or tiles [n, T, W])."""
        if self.stack == LLM:
            return attention(self.cfg, w, h, self.index, rope_for(self.cfg, h.shape[1], h.device, h.dtype))
        return vision_attention(self.cfg, w, h, self.prefix)

    def mlp(self, w: Linears, h: torch.Tensor) -> torch.Tensor:
        if self.stack == LLM:
            return mlp(self.cfg, w, h, self.index)
        return vision_mlp(self.cfg, w, h, self.prefix)

    def residual_scales(self, w: Linears) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """What multiplies each block's output before the residual add (InternViT's layer scales)."""
        if self.stack == LLM:
            return 1.0, 1.0
        return w[self.prefix + "ls1"], w[self.prefix + "ls2"]

    def capture(self, w: Linears, x: torch.Tensor, on_linear: Callable[[str, torch.Tensor], None] | None = None
                ) -> Capture:
        """One float forward of the layer on state ``x``: inputs of every linear and block, block outputs."""
        out: Capture = {}

        def hook(name: str, t: torch.Tensor) -> None:
            out[name.removeprefix(self.prefix)] = t
            if on_linear is not None:
                on_linear(name, t)

        lin = Linears(w.t, hook)
        ls1, ls2 = self.residual_scales(w)
        out["attn_in"] = h = self.norm(w, 0, x)
        out["attn_out"] = a = self.attention(lin, h)
        x = x + ls1 * a
        out["mlp_in"] = h = self.norm(w, 1, x)
        out["mlp_out"] = self.mlp(lin, h)
        return out
