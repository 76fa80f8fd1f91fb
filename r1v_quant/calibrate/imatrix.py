"""Importance matrices: for every matrix llama.cpp quantizes, the per-input-column sum of squared
activations and how many tokens were summed, over the calibration set.

llama.cpp's ``llama-imatrix`` measures this on text alone: no image passes through the vision tower
or reaches the language model.  Here the forward engine runs the calibration samples as the model
sees them (images through the vision tower and ``mlp1`` spliced into the language model), and every
linear's input is summed as it goes by (:meth:`ImatrixCollector.hook`).  Entries are named as in the
``.gguf`` files (``blk.N.attn_q.weight``, ``v.blk.N.ffn_up.weight``, ``mm.model.mlp.1.weight``,
``output.weight``); InternViT's fused ``qkv`` feeds its three GGUF tensors from one input.
"""

from __future__ import annotations

import torch

from ..formats.gguf_names import gguf_name
from .stats import ChannelStats

LM_HEAD = "language_model.lm_head"


def gguf_names_of(linear: str) -> tuple[str, ...]:
    """The GGUF tensor name(s) a checkpoint linear becomes (several for a row-split one)."""
    for file in ("llm", "mmproj"):
        g = gguf_name(linear + ".weight", file)
        if g is not None:
            return g.names
    return ()


class ImatrixCollector:
    """Sums of squared inputs per GGUF tensor, fed by the engine's linear-input hook."""

    def __init__(self) -> None:
        self.stats: dict[str, ChannelStats] = {}
        self._names: dict[str, tuple[str, ...]] = {}

    def hook(self, linear: str, x: torch.Tensor) -> None:
        if linear not in self._names:
            self._names[linear] = gguf_names_of(linear)
        names = self._names[linear]
        if not names:  # the embedding lookup, the patch convolution: no matrix product llama.cpp quantizes
            return
        stats = self.stats.setdefault(names[0], ChannelStats())
        stats.add(x)
        for other in names[1:]:  # q, k and v of a fused qkv read the same input
            self.stats[other] = stats

    def entries(self) -> dict[str, tuple[torch.Tensor, int]]:
        """GGUF name -> (sum of squares per input column, float32; tokens summed), names sorted."""
        out = {}
        for name in sorted(self.stats):
            s = self.stats[name]
            assert s.sq_sum is not None
            out[name] = (s.sq_sum.float().cpu(), s.count)
        return out
