"""Calibration activations: what each linear of a layer sees when the layer runs on calibration inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..engine.linear import Linears
from ..engine.llm import LAYER_PREFIX, attention, mlp, rope_for
from ..engine.ops import rms_norm
from ..read.config import ModelConfig


def capture_decoder_inputs(cfg: ModelConfig, layer: int, tensors: dict[str, torch.Tensor],
                           xs: Sequence[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """One float forward of decoder layer ``layer`` over ``xs`` ([1, T, H] each): the input of every
    linear (keys as in :data:`~r1v_quant.read.layout.LLM_LINEARS`) and of each block
    (``attn_in``: the normed input of attention, ``mlp_in``: that of the MLP), one list entry per sample."""
    p = LAYER_PREFIX.format(layer)
    feats: dict[str, list[torch.Tensor]] = {}

    def hook(name: str, x: torch.Tensor) -> None:
        feats.setdefault(name.removeprefix(p), []).append(x)

    lin = Linears(tensors, hook)
    eps = cfg.llm.rms_norm_eps
    for x in xs:
        rope = rope_for(cfg, x.shape[1], x.device, x.dtype)
        h = rms_norm(x, tensors[p + "input_layernorm.weight"], eps)
        feats.setdefault("attn_in", []).append(h)
        x = x + attention(cfg, lin, h, layer, rope)
        h = rms_norm(x, tensors[p + "post_attention_layernorm.weight"], eps)
        feats.setdefault("mlp_in", []).append(h)
        mlp(cfg, lin, h, layer)  # only for the hook: gate/up/down inputs
    return feats
