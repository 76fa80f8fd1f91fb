"""Checkpoint tensor names -> GGUF tensor names, for the LLM file and the mmproj file.

Tables of (regex on the checkpoint name, GGUF template, parts): ``{}`` takes the
layer number; ``parts`` > 1 splits the tensor row-wise into that many pieces
with the templates in ``SPLIT_NAMES`` (InternViT's fused ``qkv``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_LLM = r"^language_model\.model\.layers\.(\d+)\."
_VIT = r"^vision_model\.encoder\.layers\.(\d+)\."

LLM_NAMES: list[tuple[str, str]] = [
    (r"^language_model\.model\.embed_tokens\.weight$", "token_embd.weight"),
    (r"^language_model\.model\.norm\.weight$", "output_norm.weight"),
    (r"^language_model\.lm_head\.weight$", "output.weight"),
    (_LLM + r"input_layernorm\.weight$", "blk.{}.attn_norm.weight"),
    (_LLM + r"self_attn\.q_proj\.(weight|bias)$", "blk.{}.attn_q.{}"),
    (_LLM + r"self_attn\.k_proj\.(weight|bias)$", "blk.{}.attn_k.{}"),
    (_LLM + r"self_attn\.v_proj\.(weight|bias)$", "blk.{}.attn_v.{}"),
    (_LLM + r"self_attn\.o_proj\.weight$", "blk.{}.attn_output.weight"),
    (_LLM + r"post_attention_layernorm\.weight$", "blk.{}.ffn_norm.weight"),
    (_LLM + r"mlp\.gate_proj\.weight$", "blk.{}.ffn_gate.weight"),
    (_LLM + r"mlp\.up_proj\.weight$", "blk.{}.ffn_up.weight"),
    (_LLM + r"mlp\.down_proj\.weight$", "blk.{}.ffn_down.weight"),
]

MMPROJ_NAMES: list[tuple[str, str]] = [
    (r"^vision_model\.embeddings\.class_embedding$", "v.class_embd"),
    (r"^vision_model\.embeddings\.patch_embedding\.(weight|bias)$", "v.patch_embd.{}"),
    (r"^vision_model\.embeddings\.position_embedding$", "v.position_embd.weight"),
    (_VIT + r"attn\.qkv\.(weight|bias)$", "v.blk.{}.attn_{{}}.{}"),  # split into q, k, v
    (_VIT + r"attn\.q_norm\.(weight|bias)$", "v.blk.{}.attn_q_norm.{}"),
    (_VIT + r"attn\.k_norm\.(weight|bias)$", "v.blk.{}.attn_k_norm.{}"),
    (_VIT + r"attn\.proj\.(weight|bias)$", "v.blk.{}.attn_out.{}"),
    (_VIT + r"norm1\.(weight|bias)$", "v.blk.{}.ln1.{}"),
    (_VIT + r"norm2\.(weight|bias)$", "v.blk.{}.ln2.{}"),
    (_VIT + r"ls1$", "v.blk.{}.ls1.weight"),
    (_VIT + r"ls2$", "v.blk.{}.ls2.weight"),
    (_VIT + r"mlp\.fc1\.(weight|bias)$", "v.blk.{}.ffn_up.{}"),
    (_VIT + r"mlp\.fc2\.(weight|bias)$", "v.blk.{}.ffn_down.{}"),
    (r"^mlp1\.(0|1|3)\.(weight|bias)$", "mm.model.mlp.{}.{}"),
]
SPLIT_PARTS = ("q", "k", "v")  # order of the fused qkv rows


@dataclass(frozen=True)
class GGUFName:
    names: tuple[str, ...]  # one name, or one per row-wise part
    layer: int | None


def _compile(table: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(p), t) for p, t in table]


_TABLES = {"llm": _compile(LLM_NAMES), "mmproj": _compile(MMPROJ_NAMES)}


def gguf_name(checkpoint_name: str, file: str) -> GGUFName | None:
    """The GGUF name(s) of a checkpoint tensor in the ``llm`` or ``mmproj`` file; None if not there."""
    for pattern, template in _TABLES[file]:
        m = pattern.match(checkpoint_name)
        if not m:
            continue
        name = template.format(*m.groups())
        layer = int(m.group(1)) if pattern.pattern.startswith((_LLM, _VIT)) else None
        if "{}" in name:
            return GGUFName(tuple(name.format(p) for p in SPLIT_PARTS), layer)
        return GGUFName((name,), layer)
    return None


# tokenizer.ggml.pre, by the special token ids the tokenizer wraps every text in: (prefix, suffix).
# llama.cpp's converter names the pre-tokenizer by hashing the ids of an encoded test text; on the
# Qwen2 vocabulary the known hashes differ only in that wrapping: none for Qwen2's tokenizer,
# <｜begin▁of▁sentence｜> (151646) in front for DeepSeek-R1-Distill-Qwen's (Skywork-R1V's backbone).
# llama.cpp runs the same Qwen2 pre-tokenizer for both names.  Any other wrapping: the default.
PRE_TOKENIZER_BY_WRAP: dict[tuple[tuple[int, ...], tuple[int, ...]], str] = {
    ((), ()): "qwen2",
    ((151646,), ()): "deepseek-r1-qwen",
}
DEFAULT_PRE_TOKENIZER = "qwen2"


def sidecar_path(gguf_path: Path) -> Path:
    """Where ``r1v-quant gguf`` records a file's provenance and export options (``<stem>.r1v.json``),
    so that nothing of ours has to go into the ``.gguf`` itself."""
    return gguf_path.with_name(gguf_path.name.removesuffix(".gguf") + ".r1v.json")
