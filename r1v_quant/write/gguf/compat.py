"""What llama.cpp's InternVL graph (0c1e57098, the llama-cpp-python 0.3.36 build) can run, and the
one change of layout it needs.

* Only the ``v2`` pixel-shuffle order exists there: a ``v1`` checkpoint's image tokens would arrive
  transposed (same tokens, 16x16 grid column- instead of row-major), so its mmproj is refused
  unless ``allow_v1``.
* The vision norm is chosen by shape (RMSNorm only for width 3200 with 45 layers), so a tower whose
  ``norm_type`` disagrees is refused.
* The class token is appended *after* the patches while the position table is added in checkpoint
  order (row 0 = class), so patch i gets patch i-1's position.  :func:`roll_position_rows` stores
  the table rolled (rows 1..N, then row 0), which is exact for that graph and wrong for a runtime
  that prepends the class token.
"""

from __future__ import annotations

import torch

from ...read.config import ModelConfig

# llama.cpp's InternVL graph uses RMSNorm only for the InternViT-6B shape (clip_graph_internvl)
RMS_TOWER_SHAPE = (3200, 45)
POSITION_TABLE = "v.position_embd.weight"


def roll_position_rows(x: torch.Tensor) -> torch.Tensor:
    """[1, 1 + patches, width] -> the class row last."""
    return torch.cat([x[:, 1:], x[:, :1]], dim=1)


def mmproj_problems(cfg: ModelConfig, allow_v1: bool) -> list[str]:
    """Reasons llama.cpp would run this checkpoint's vision projector wrongly (empty = fine)."""
    v = cfg.vision
    problems = []
    if cfg.ps_version == "v1" and not allow_v1:
        problems.append(
            "ps_version is v1, but llama.cpp implements only the v2 pixel-shuffle order: every image "
            "would reach the model transposed (pass --allow-v1 to write it anyway, or --no-mmproj)")
    rms_by_shape = (v.hidden_size, v.num_layers) == RMS_TOWER_SHAPE
    if (v.norm_type == "rms_norm") != rms_by_shape:
        problems.append(
            f"vision norm_type is {v.norm_type}, but llama.cpp picks "
            f"{'RMSNorm' if rms_by_shape else 'LayerNorm'} for a {v.hidden_size}-wide, {v.num_layers}-layer tower "
            "(RMSNorm only for 3200 x 45); its image embeddings would be wrong (use --no-mmproj)")
    if cfg.image_size != v.image_size:
        problems.append(
            f"force_image_size {cfg.image_size} differs from vision_config.image_size {v.image_size}; llama.cpp "
            "runs the tower at its own image_size without interpolating positions (use --no-mmproj)")
    return problems  # select_layer and the activation: refused for every command (read/config.py)
