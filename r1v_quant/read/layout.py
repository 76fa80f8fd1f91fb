"""Tensor layout of an InternVL-style checkpoint, as tables.

Two tables drive everything the reader knows about names:

* ``UNIT_PATTERNS`` sorts every tensor into a component (vision / projector /
  llm / other) and a *unit*: the group of tensors the pipeline handles at once
  (one transformer layer, the embeddings, the projector, the LM head).
* ``EXPECTED`` lists, per unit kind, the tensors a config implies and their
  shapes, so a checkpoint that disagrees with its config is caught before work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .config import ModelConfig

VISION, PROJECTOR, LLM, OTHER = "vision", "projector", "llm", "other"
COMPONENTS = (VISION, PROJECTOR, LLM, OTHER)

# (regex on the full name, component, unit name; "{}" takes the layer number)
UNIT_PATTERNS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p), c, u)
    for p, c, u in [
        (r"^vision_model\.embeddings\.", VISION, "vision.embeddings"),
        (r"^vision_model\.encoder\.layers\.(\d+)\.", VISION, "vision.layer.{}"),
        (r"^vision_model\.", VISION, "vision.extra"),
        (r"^mlp1\.", PROJECTOR, "projector"),
        (r"^language_model\.model\.embed_tokens\.", LLM, "llm.embed"),
        (r"^language_model\.model\.layers\.(\d+)\.", LLM, "llm.layer.{}"),
        (r"^language_model\.(model\.norm|lm_head)\.", LLM, "llm.head"),
        (r"^language_model\.", LLM, "llm.extra"),
        (r"", OTHER, "other"),
    ]
]

VISION_LAYER_PREFIX = "vision_model.encoder.layers.{}."
LLM_LAYER_PREFIX = "language_model.model.layers.{}."
# The linear layers of one decoder layer / one vision layer (names after the layer prefix, no ".weight").
LLM_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
VISION_LINEARS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


@dataclass(frozen=True)
class UnitName:
    component: str
    name: str  # e.g. "llm.layer.3"
    layer: int | None  # layer number for layer units


def classify(tensor_name: str) -> UnitName:
    for pattern, component, unit in UNIT_PATTERNS:
        m = pattern.match(tensor_name)
        if m:
            layer = int(m.group(1)) if "{}" in unit else None
            return UnitName(component, unit.format(layer) if layer is not None else unit, layer)
    raise AssertionError("the last pattern matches everything")


def walk_order(cfg: ModelConfig) -> list[str]:
    """Units in the order data flows through the model: image path, then text path."""
    return [
        "vision.embeddings",
        *(f"vision.layer.{i}" for i in range(cfg.vision.num_layers)),
        "vision.extra",
        "projector",
        "llm.embed",
        *(f"llm.layer.{i}" for i in range(cfg.llm.num_layers)),
        "llm.head",
        "llm.extra",
        "other",
    ]


Shape = tuple[int, ...]
# (name suffix, shape from config, present when) per unit kind
Row = tuple[str, Callable[[ModelConfig], Shape], Callable[[ModelConfig], bool]]


def _always(cfg: ModelConfig) -> bool:
    return True


def _ln(cfg: ModelConfig) -> bool:
    return cfg.vision.norm_type == "layer_norm"


def _qkv_bias(cfg: ModelConfig) -> bool:
    return cfg.vision.qkv_bias


def _qk_norm(cfg: ModelConfig) -> bool:
    return cfg.vision.qk_normalization


def _qk_norm_ln(cfg: ModelConfig) -> bool:
    return cfg.vision.qk_normalization and _ln(cfg)


def _untied(cfg: ModelConfig) -> bool:
    return not cfg.llm.tie_word_embeddings


def _vc(cfg: ModelConfig) -> Shape:
    return (cfg.vision.hidden_size,)


VISION_EMBEDDINGS: list[Row] = [
    ("class_embedding", lambda c: (1, 1, c.vision.hidden_size), _always),
    (
        "patch_embedding.weight",
        lambda c: (c.vision.hidden_size, c.vision.num_channels, c.vision.patch_size, c.vision.patch_size),
        _always,
    ),
    ("patch_embedding.bias", _vc, _always),
    ("position_embedding", lambda c: (1, c.vision.num_patches + 1, c.vision.hidden_size), _always),
]

VISION_LAYER: list[Row] = [
    ("attn.qkv.weight", lambda c: (3 * c.vision.hidden_size, c.vision.hidden_size), _always),
    ("attn.qkv.bias", lambda c: (3 * c.vision.hidden_size,), _qkv_bias),
    ("attn.q_norm.weight", _vc, _qk_norm),
    ("attn.q_norm.bias", _vc, _qk_norm_ln),
    ("attn.k_norm.weight", _vc, _qk_norm),
    ("attn.k_norm.bias", _vc, _qk_norm_ln),
    ("attn.proj.weight", lambda c: (c.vision.hidden_size, c.vision.hidden_size), _always),
    ("attn.proj.bias", _vc, _always),
    ("ls1", _vc, _always),
    ("ls2", _vc, _always),
    ("norm1.weight", _vc, _always),
    ("norm1.bias", _vc, _ln),
    ("norm2.weight", _vc, _always),
    ("norm2.bias", _vc, _ln),
    ("mlp.fc1.weight", lambda c: (c.vision.intermediate_size, c.vision.hidden_size), _always),
    ("mlp.fc1.bias", lambda c: (c.vision.intermediate_size,), _always),
    ("mlp.fc2.weight", lambda c: (c.vision.hidden_size, c.vision.intermediate_size), _always),
    ("mlp.fc2.bias", _vc, _always),
]

PROJECTOR_TENSORS: list[Row] = [
    ("0.weight", lambda c: (c.projector_in,), _always),
    ("0.bias", lambda c: (c.projector_in,), _always),
    ("1.weight", lambda c: (c.llm.hidden_size, c.projector_in), _always),
    ("1.bias", lambda c: (c.llm.hidden_size,), _always),
    ("3.weight", lambda c: (c.llm.hidden_size, c.llm.hidden_size), _always),
    ("3.bias", lambda c: (c.llm.hidden_size,), _always),
]


def _q_out(c: ModelConfig) -> int:
    return c.llm.num_heads * c.llm.head_dim


def _kv_out(c: ModelConfig) -> int:
    return c.llm.num_kv_heads * c.llm.head_dim


def _h(c: ModelConfig) -> Shape:
    return (c.llm.hidden_size,)


LLM_LAYER: list[Row] = [
    ("self_attn.q_proj.weight", lambda c: (_q_out(c), c.llm.hidden_size), _always),
    ("self_attn.q_proj.bias", lambda c: (_q_out(c),), _always),
    ("self_attn.k_proj.weight", lambda c: (_kv_out(c), c.llm.hidden_size), _always),
    ("self_attn.k_proj.bias", lambda c: (_kv_out(c),), _always),
    ("self_attn.v_proj.weight", lambda c: (_kv_out(c), c.llm.hidden_size), _always),
    ("self_attn.v_proj.bias", lambda c: (_kv_out(c),), _always),
    ("self_attn.o_proj.weight", lambda c: (c.llm.hidden_size, _q_out(c)), _always),
    ("mlp.gate_proj.weight", lambda c: (c.llm.intermediate_size, c.llm.hidden_size), _always),
    ("mlp.up_proj.weight", lambda c: (c.llm.intermediate_size, c.llm.hidden_size), _always),
    ("mlp.down_proj.weight", lambda c: (c.llm.hidden_size, c.llm.intermediate_size), _always),
    ("input_layernorm.weight", _h, _always),
    ("post_attention_layernorm.weight", _h, _always),
]

LLM_EMBED: list[Row] = [
    ("embed_tokens.weight", lambda c: (c.llm.vocab_size, c.llm.hidden_size), _always),
]
LLM_HEAD: list[Row] = [
    ("norm.weight", _h, _always),
]
LM_HEAD: list[Row] = [
    ("lm_head.weight", lambda c: (c.llm.vocab_size, c.llm.hidden_size), _untied),
]

# (prefix, rows, repeated per layer of: "vision" / "llm" / None)
EXPECTED: list[tuple[str, list[Row], str | None]] = [
    ("vision_model.embeddings.", VISION_EMBEDDINGS, None),
    (VISION_LAYER_PREFIX, VISION_LAYER, VISION),
    ("mlp1.", PROJECTOR_TENSORS, None),
    ("language_model.model.", LLM_EMBED, None),
    (LLM_LAYER_PREFIX, LLM_LAYER, LLM),
    ("language_model.model.", LLM_HEAD, None),
    ("language_model.", LM_HEAD, None),
]


def expected_tensors(cfg: ModelConfig) -> dict[str, Shape]:
    """Every tensor the config implies, with its shape, in walk order."""
    layers = {VISION: cfg.vision.num_layers, LLM: cfg.llm.num_layers}
    out: dict[str, Shape] = {}
    for prefix, rows, per_layer in EXPECTED:
        prefixes = [prefix.format(i) for i in range(layers[per_layer])] if per_layer else [prefix]
        for p in prefixes:
            for suffix, shape, present in rows:
                if present(cfg):
                    out[p + suffix] = shape(cfg)
    return out
