"""Qwen2 decoder layers, the embedding and the LM head, one unit at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..read.config import ModelConfig
from .linear import Linears
from .ops import apply_rope, rms_norm, rope_cos_sin

LAYER_PREFIX = "language_model.model.layers.{}."


def attention(cfg: ModelConfig, w: Linears, h: torch.Tensor, layer: int,
              rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Self-attention block on the normed input ``h`` [1, tokens, hidden], o_proj included."""
    c = cfg.llm
    p = LAYER_PREFIX.format(layer)
    b, n, _ = h.shape
    q = w(p + "self_attn.q_proj", h).view(b, n, c.num_heads, c.head_dim).transpose(1, 2)
    k = w(p + "self_attn.k_proj", h).view(b, n, c.num_kv_heads, c.head_dim).transpose(1, 2)
    v = w(p + "self_attn.v_proj", h).view(b, n, c.num_kv_heads, c.head_dim).transpose(1, 2)
    cos, sin = rope
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    groups = c.num_heads // c.num_kv_heads
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, n, -1)
    return w(p + "self_attn.o_proj", a)


def mlp(cfg: ModelConfig, w: Linears, h: torch.Tensor, layer: int) -> torch.Tensor:
    """SwiGLU MLP block on the normed input ``h``."""
    p = LAYER_PREFIX.format(layer)
    return w(p + "mlp.down_proj", F.silu(w(p + "mlp.gate_proj", h)) * w(p + "mlp.up_proj", h))


def decoder_layer(cfg: ModelConfig, w: Linears, x: torch.Tensor, layer: int,
                  rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x: [1, tokens, hidden], causal attention over the whole sequence."""
    p = LAYER_PREFIX.format(layer)
    eps = cfg.llm.rms_norm_eps
    x = x + attention(cfg, w, rms_norm(x, w[p + "input_layernorm.weight"], eps), layer, rope)
    return x + mlp(cfg, w, rms_norm(x, w[p + "post_attention_layernorm.weight"], eps), layer)


def rope_for(cfg: ModelConfig, tokens: int, device: torch.device, dtype: torch.dtype
             ) -> tuple[torch.Tensor, torch.Tensor]:
    return rope_cos_sin(torch.arange(tokens, device=device), cfg.llm.head_dim, cfg.llm.rope_theta, dtype)


def head_input(cfg: ModelConfig, w: Linears, x: torch.Tensor) -> torch.Tensor:
    """What the LM head multiplies: the final norm of the last layer's output (``w``: the head's unit)."""
    return rms_norm(x, w["language_model.model.norm.weight"], cfg.llm.rms_norm_eps)


def lm_head(cfg: ModelConfig, w: Linears, x: torch.Tensor) -> torch.Tensor:
    h = head_input(cfg, w, x)
    name = "language_model.model.embed_tokens" if cfg.llm.tie_word_embeddings else "language_model.lm_head"
    return w(name, h)
