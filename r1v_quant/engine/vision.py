"""InternViT tower and the ``mlp1`` projector, one unit at a time.

Block: ``x = x + ls1 * attn(norm1(x)); x = x + ls2 * mlp(norm2(x))``, norms
RMSNorm (6B) or LayerNorm per config, q/k norms over the full width, exact GELU.
No final norm; the class token is dropped, the 32x32 grid pixel-shuffled into
16x16 tokens of 4x the width, then LayerNorm -> Linear -> GELU -> Linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..read.config import ModelConfig
from .linear import Linears
from .ops import gelu, layer_norm, rms_norm

PROJECTOR_LN_EPS = 1e-5  # nn.LayerNorm's default, which InternVL's mlp1 uses


def vision_norm(cfg: ModelConfig, w: Linears, name: str, x: torch.Tensor) -> torch.Tensor:
    eps = cfg.vision.layer_norm_eps
    if cfg.vision.norm_type == "rms_norm":
        return rms_norm(x, w[name + ".weight"], eps)
    return layer_norm(x, w[name + ".weight"], w.get(name + ".bias"), eps)


def embed_patches(cfg: ModelConfig, w: Linears, pixels: torch.Tensor, prefix: str) -> torch.Tensor:
    """[tiles, 3, S, S] -> [tiles, 1 + patches, width] (class token first, position added)."""
    p = prefix + "embeddings."
    x = F.conv2d(pixels.to(w[p + "patch_embedding.weight"].dtype), w[p + "patch_embedding.weight"],
                 w[p + "patch_embedding.bias"], stride=cfg.vision.patch_size)
    x = x.flatten(2).transpose(1, 2)
    cls = w[p + "class_embedding"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    pos = w[p + "position_embedding"]
    if pos.shape[1] != x.shape[1]:
        raise ValueError(f"image size gives {x.shape[1] - 1} patches, position table has {pos.shape[1] - 1}")
    return x + pos


def vision_attention(cfg: ModelConfig, w: Linears, h: torch.Tensor, prefix: str) -> torch.Tensor:
    """Self-attention block on the normed input ``h`` [tiles, tokens, width], ``attn.proj`` included."""
    v = cfg.vision
    b, n, c = h.shape
    heads, d = v.num_heads, c // v.num_heads
    q, k, val = w(prefix + "attn.qkv", h).chunk(3, dim=-1)
    if v.qk_normalization:  # over the full width, before splitting into heads
        q = vision_norm(cfg, w, prefix + "attn.q_norm", q)
        k = vision_norm(cfg, w, prefix + "attn.k_norm", k)
    q, k, val = (t.view(b, n, heads, d).transpose(1, 2) for t in (q, k, val))
    a = F.scaled_dot_product_attention(q, k, val).transpose(1, 2).reshape(b, n, c)
    return w(prefix + "attn.proj", a)


def vision_mlp(cfg: ModelConfig, w: Linears, h: torch.Tensor, prefix: str) -> torch.Tensor:
    """fc1, exact GELU, fc2 on the normed input ``h``."""
    return w(prefix + "mlp.fc2", gelu(w(prefix + "mlp.fc1", h)))


def vision_layer(cfg: ModelConfig, w: Linears, x: torch.Tensor, prefix: str) -> torch.Tensor:
    x = x + w[prefix + "ls1"] * vision_attention(cfg, w, vision_norm(cfg, w, prefix + "norm1", x), prefix)
    return x + w[prefix + "ls2"] * vision_mlp(cfg, w, vision_norm(cfg, w, prefix + "norm2", x), prefix)


def pixel_shuffle(x: torch.Tensor, scale: int, ps_version: str) -> torch.Tensor:
    """[n, w, h, c] -> [n, h/s, w/s, c*s*s] (v1) or [n, w/s, h/s, c*s*s] (v2: one more transpose)."""
    n, wd, ht, c = x.shape
    x = x.reshape(n, wd, ht // scale, c * scale).permute(0, 2, 1, 3)
    x = x.reshape(n, ht // scale, wd // scale, c * scale * scale)
    if ps_version == "v2":
        x = x.permute(0, 2, 1, 3)
    return x.contiguous()


def shuffle_tokens(cfg: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    """Tower output [tiles, 1 + patches, c] -> [tiles, tokens, c * s * s]: class token dropped, grid merged."""
    x = x[:, 1:, :]
    side = int(round(x.shape[1] ** 0.5))
    x = x.reshape(x.shape[0], side, side, -1)
    x = pixel_shuffle(x, cfg.shuffle_scale, cfg.ps_version)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def project(cfg: ModelConfig, w: Linears, x: torch.Tensor) -> torch.Tensor:
    h = layer_norm(x, w["mlp1.0.weight"], w["mlp1.0.bias"], PROJECTOR_LN_EPS)
    return w("mlp1.3", gelu(w("mlp1.1", h)))
