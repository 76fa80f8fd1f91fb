"""Importance matrices: for every matrix llama.cpp quantizes, the per-input-column sum of squared
activations and how many tokens were summed, over the calibration set.

llama.cpp's ``llama-imatrix`` measures this on text alone: no image passes through the vision tower
or reaches the language model.  Here the forward engine runs the calibration samples as the model
sees them (images through the vision tower and ``mlp1`` spliced into the language model), and every
linear's input is summed as it goes by (:meth:`ImatrixCollector.hook`).  Entries are named as in the
``.gguf`` files (``blk.N.attn_q.weight``, ``v.blk.N.ffn_up.weight``, ``mm.model.mlp.1.weight``,
``output.weight``); InternViT's fused ``qkv`` feeds its three GGUF tensors from one input.

Balance.  A prompt with an image holds hundreds of image tokens (256 a tile) beside its text, so
summed token by token the language model's entries are mostly what image positions see, and the
rounding is tuned for them at the cost of text prompts.  :meth:`ImatrixCollector.balance` labels each
language-model state (e.g. "image" / "text" by whether the sample has an image) and makes each
group's mean square count the same: importance = the mean over groups of each group's per-token mean.  The file still
holds sums and token counts as llama.cpp expects (sums = that importance x all tokens seen), so
``llama-quantize`` divides back to the same importance.  The vision tower and projector only see
image tiles: they are summed token by token as ever.

The LM head (``output.weight``) is summed only over the positions whose logits are ever read, those
whose next token is text (:meth:`~r1v_quant.engine.prompt.Prepared.predicts_text`).  A position
before an image slot predicts a token the image replaces: most positions of a multimodal sample, whose
logits no runtime reads, and which would otherwise tune the head's rounding for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..formats.gguf_names import gguf_name
from .stats import ChannelStats

LM_HEAD = "language_model.lm_head"


def gguf_names_of(linear: str) -> tuple[str, tuple[str, ...]]:
    """The GGUF file ("llm" or "mmproj") and tensor name(s) a checkpoint linear becomes (several for a
    row-split one); ("", ()) for one that becomes no quantized matrix."""
    for file in ("llm", "mmproj"):
        g = gguf_name(linear + ".weight", file)
        if g is not None:
            return file, g.names
    return "", ()


class ImatrixCollector:
    """Sums of squared inputs per GGUF tensor, fed by the engine's linear-input hook."""

    def __init__(self) -> None:
        self.groups: Sequence[str] | None = None
        self.tokens: Sequence[int] = ()
        self.stats: dict[str, dict[str, ChannelStats]] = {}  # GGUF name -> group ("" unbalanced) -> stats
        self._names: dict[str, tuple[str, tuple[str, ...]]] = {}  # linear -> (GGUF file, GGUF names)
        self._calls: dict[str, int] = {}

    def balance(self, groups: Sequence[str], tokens: Sequence[int]) -> None:
        """Weigh the language model's groups alike: per state, in the order the engine runs them, its
        group label and token count.  The engine calls each linear once per state, in order
        (``Engine.walk``), so a linear's n-th call is state n mod len(groups); the count checks it."""
        assert len(groups) == len(tokens) and groups
        self.groups, self.tokens = list(groups), list(tokens)

    def _group(self, linear: str, x: torch.Tensor) -> str:
        if self.groups is None or self._names[linear][0] != "llm":
            return ""
        calls = self._calls.get(linear, 0)
        self._calls[linear] = calls + 1
        state = calls % len(self.groups)
        rows = x.reshape(-1, x.shape[-1]).shape[0]
        assert rows == self.tokens[state], f"{linear}: state {state} has {self.tokens[state]} tokens, not {rows}"
        return self.groups[state]

    def hook(self, linear: str, x: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Sum ``linear``'s input ``x``; with ``rows`` (bool, one per token), only those tokens' rows."""
        if linear not in self._names:
            self._names[linear] = gguf_names_of(linear)
        names = self._names[linear][1]
        if not names:  # the embedding lookup, the patch convolution: no matrix product llama.cpp quantizes
            return
        group = self._group(linear, x)  # counted on the whole state, as the engine ran it
        if rows is not None:
            x = x.reshape(-1, x.shape[-1])[rows.to(x.device)]
            if not len(x):
                return
        by_group = self.stats.setdefault(names[0], {})
        by_group.setdefault(group, ChannelStats()).add(x)
        for other in names[1:]:  # q, k and v of a fused qkv read the same input
            self.stats[other] = by_group

    def entries(self) -> dict[str, tuple[torch.Tensor, int]]:
        """GGUF name -> (sum of squares per input column, float32; tokens summed), names sorted."""
        out = {}
        for name in sorted(self.stats):
            parts = [self.stats[name][g] for g in sorted(self.stats[name])]
            count = sum(s.count for s in parts)
            if len(parts) == 1:  # one group: the plain sums, bytes as an unbalanced run gives
                assert parts[0].sq_sum is not None
                out[name] = (parts[0].sq_sum.float().cpu(), count)
                continue
            mean = sum(s.sq_sum / s.count for s in parts) / len(parts)  # type: ignore[operator]
            out[name] = ((mean * count).float().cpu(), count)
        return out
