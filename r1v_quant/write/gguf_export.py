"""GGUF for llama.cpp: the Qwen2 language model and the InternVL vision projector ("mmproj").

``export_gguf`` writes two files from a checkpoint, each in one streamed pass: every
tensor's name, type and size is planned from metadata first, the header, key/values and
tensor infos are written, then each tensor is read from the shards, encoded and appended,
one at a time.  Peak memory is one tensor (in float32) plus its encoding; there is no
intermediate F16 file.  Both files appear under their final names only when both are whole.

What goes in is what llama.cpp's own pipeline writes (``convert_hf_to_gguf.py``, then
``llama-quantize`` for the quantized mixes), checked byte for byte in
``tests/test_gguf_export.py``:

* tensor names from :mod:`r1v_quant.formats.gguf_names`, types from
  :mod:`r1v_quant.formats.gguf_mix`, bytes from the ggml reference encoders;
* tensor order: the converter's (shards in name order, tensors by name within a shard) for
  the types it writes itself (f32, f16, bf16, q8_0), llama-quantize's (by layer, then name)
  for the quantized mixes;
* the converter's keys: ``general.*`` (name, size label, sampling defaults from
  ``generation_config.json``), ``qwen2.*`` / ``clip.*`` hyper-parameters and
  ``tokenizer.ggml.*`` (vocabulary padded with ``[PAD{i}]`` to the embedding rows, token
  types, merges, special ids, add-bos/eos flags, chat template).

Deliberate differences from the converter: ``general.name`` defaults to the checkpoint
folder's name (the converter guesses one from ``_name_or_path`` or the model card; pass
``name`` to choose), model-card keys (licence, tags, base models from ``README.md``) are not
written.  ``tokenizer.ggml.pre`` is the converter's name, ``qwen2`` or ``deepseek-r1-qwen`` for
the R1-Distill tokenizer (which prepends its BOS), found without the converter's hash table
(:data:`~r1v_quant.formats.gguf_names.PRE_TOKENIZER_BY_WRAP`).

The quantized mixes are encoded from the checkpoint's own values (BF16 -> float32, exact);
llama.cpp's usual route goes through an F16 file first, which rounds the rare BF16 weights
below 2**-14 in magnitude (F16 subnormals) or above 65504.  So our Q4_K_M equals
``llama-quantize`` run on the converter's BF16 file byte for byte, and on its F16 file except
in the blocks that hold such values.

Runtime facts of llama.cpp's InternVL graph (0c1e57098) that an export must respect:

* only the ``v2`` pixel-shuffle order exists there: a ``v1`` checkpoint's image tokens would
  arrive transposed (same tokens, 16x16 grid column- instead of row-major), so its mmproj is
  refused unless ``allow_v1``;
* the vision norm is chosen by shape (RMSNorm only for width 3200 with 45 layers), so a tower
  whose ``norm_type`` disagrees is refused;
* the class token is appended *after* the patches while the position table is added in
  checkpoint order (row 0 = class), so patch i gets patch i-1's position.
  ``roll_position_embd`` writes the table rolled (rows 1..N, then row 0), which is exact for
  that graph and wrong for a runtime that prepends the class token.  Off by default.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import (GGML_QUANT_VERSION, GGMLQuantizationType, GGUFType, GGUFWriter, RopeScalingType, TokenType,
                  VisionProjectorType)
from gguf.utility import size_label as gguf_size_label

from .. import __version__
from ..errors import InputError
from ..formats import gguf_mix
from ..formats.gguf_mix import FILE_TYPES, MMPROJ_TYPES, llm_tensor_type, mmproj_tensor_type, tensor_bytes
from ..formats.gguf_names import DEFAULT_PRE_TOKENIZER, PRE_TOKENIZER_BY_WRAP, gguf_name
from ..quantize.ggml_encoders import quantize
from ..read.checkpoint import Checkpoint
from ..read.fingerprint import fingerprint
from ..read.gguf_artifact import sidecar_path
from .atomic import atomic_file

T = GGMLQuantizationType
LLM, MMPROJ = "llm", "mmproj"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# checkpoint tensors that carry no weights for llama.cpp (the converter drops them too)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")
# llama.cpp's InternVL graph uses RMSNorm only for the InternViT-6B shape (clip_graph_internvl)
RMS_TOWER_SHAPE = (3200, 45)

# progress(file kind, GGUF tensor name, bytes written)
ProgressFn = Callable[[str, str, int], None]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedTensor:
    gguf_name: str
    source: str  # checkpoint tensor name
    part: int  # row-wise part of the source (fused qkv), 0 when whole
    parts: int
    shape: tuple[int, ...]  # torch order (GGUF stores it reversed)
    qtype: GGMLQuantizationType
    layer: int | None
    wanted: GGMLQuantizationType | None = None  # the mix's type before the row-length fallback

    @property
    def fell_back(self) -> bool:
        return self.wanted is not None and self.wanted != self.qtype

    @property
    def nbytes(self) -> int:
        return tensor_bytes(self.qtype, math.prod(self.shape), self.shape[-1] if self.shape else 1)


@dataclass
class FilePlan:
    kind: str  # "llm" or "mmproj"
    type_name: str  # --type / --mmproj-type
    path: Path
    tensors: list[PlannedTensor] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def params(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors)

    def type_counts(self) -> dict[str, int]:
        """How many tensors of each ggml type, by type name."""
        return dict(sorted(Counter(t.qtype.name for t in self.tensors).items()))


def converter_order(ckpt: Checkpoint) -> Iterator[str]:
    """Checkpoint tensors in the order llama.cpp's converter meets them: shard files by name,
    tensors by name within a shard."""
    for shard_name in sorted(ckpt.shards):
        yield from sorted(ckpt.shards[shard_name].tensors)


def _ignored(name: str) -> bool:
    return name.endswith(IGNORED_SUFFIXES)


def plan_llm(ckpt: Checkpoint, file_type: str, path: Path) -> FilePlan:
    if file_type not in FILE_TYPES:
        raise InputError(f"unknown --type '{file_type}' (choose from {', '.join(FILE_TYPES)})")
    n_layers = ckpt.config.llm.num_layers
    tied = "language_model.lm_head.weight" not in ckpt.tensor_names
    plan = FilePlan(LLM, file_type, path)
    for src in converter_order(ckpt):
        if not src.startswith("language_model.") or _ignored(src):
            continue
        mapped = gguf_name(src, LLM)
        if mapped is None:
            raise InputError(f"{ckpt.dir}: tensor '{src}' has no place in llama.cpp's qwen2 graph")
        shape = tuple(ckpt.info(src).shape)
        (name,) = mapped.names
        qtype = llm_tensor_type(file_type, name, shape, mapped.layer, n_layers, tied_embeddings=tied)
        wanted = llm_tensor_type(file_type, name, shape, mapped.layer, n_layers, tied_embeddings=tied, fit=False)
        plan.tensors.append(PlannedTensor(name, src, 0, 1, shape, qtype, mapped.layer, wanted))
    if FILE_TYPES[file_type].tool == gguf_mix.QUANTIZE:
        plan.tensors.sort(key=lambda t: gguf_mix.tensor_order(t.gguf_name))
    return plan


def plan_mmproj(ckpt: Checkpoint, mmproj_type: str, path: Path) -> FilePlan:
    if mmproj_type not in MMPROJ_TYPES:
        raise InputError(f"unknown --mmproj-type '{mmproj_type}' (choose from {', '.join(MMPROJ_TYPES)})")
    plan = FilePlan(MMPROJ, mmproj_type, path)
    for src in converter_order(ckpt):
        if not src.startswith(("vision_model.", "mlp1.")) or _ignored(src):
            continue
        mapped = gguf_name(src, MMPROJ)
        if mapped is None:
            raise InputError(f"{ckpt.dir}: tensor '{src}' has no place in llama.cpp's InternVL graph")
        shape = tuple(ckpt.info(src).shape)
        parts = len(mapped.names)
        if shape[0] % parts:
            raise InputError(f"{ckpt.dir}: tensor '{src}' has {shape[0]} rows, not divisible into {parts} parts")
        part_shape = (shape[0] // parts, *shape[1:])
        for i, name in enumerate(mapped.names):
            qtype = mmproj_tensor_type(mmproj_type, name, part_shape)
            wanted = mmproj_tensor_type(mmproj_type, name, part_shape, fit=False)
            plan.tensors.append(PlannedTensor(name, src, i, parts, part_shape, qtype, mapped.layer, wanted))
    return plan


def file_label(type_name: str) -> str:
    return type_name.upper()


def output_names(name: str, file_type: str, mmproj_type: str) -> tuple[str, str]:
    """``<Name>-<TYPE>.gguf`` and ``mmproj-<Name>-<TYPE>.gguf`` (spaces and slashes become dashes)."""
    stem = name.strip().replace(" ", "-").replace("/", "-")
    return f"{stem}-{file_label(file_type)}.gguf", f"mmproj-{stem}-{file_label(mmproj_type)}.gguf"


# --------------------------------------------------------------------------- checks


def mmproj_problems(ckpt: Checkpoint, allow_v1: bool) -> list[str]:
    """Reasons llama.cpp would run this checkpoint's vision projector wrongly (empty = fine)."""
    cfg = ckpt.config
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
    if cfg.select_layer != -1:
        problems.append(f"select_layer is {cfg.select_layer}; llama.cpp's InternVL graph always takes the last "
                        "layer's output (use --no-mmproj)")
    act = cfg.raw["vision_config"].get("hidden_act", "gelu")
    if act not in ("gelu", "silu"):
        problems.append(f"vision hidden_act '{act}' is not one llama.cpp's clip graph offers (gelu, silu)")
    return problems


# --------------------------------------------------------------------------- metadata


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None


# generation_config.json key(s) -> GGUFWriter method, in the order the converter writes them
SAMPLING_KEYS: list[tuple[tuple[str, ...], str]] = [
    (("sequence",), "add_sampling_sequence"),
    (("top_k",), "add_sampling_top_k"),
    (("top_p",), "add_sampling_top_p"),
    (("min_p",), "add_sampling_min_p"),
    (("xtc_probability",), "add_sampling_xtc_probability"),
    (("xtc_threshold",), "add_sampling_xtc_threshold"),
    (("temperature",), "add_sampling_temp"),
    (("penalty_last_n",), "add_sampling_penalty_last_n"),
    (("penalty_repeat", "repetition_penalty"), "add_sampling_penalty_repeat"),
    (("mirostat",), "add_sampling_mirostat"),
    (("mirostat_tau",), "add_sampling_mirostat_tau"),
    (("mirostat_eta",), "add_sampling_mirostat_eta"),
]


def _general(w: GGUFWriter, ckpt: Checkpoint, kind: GGUFType | str, name: str, params: int) -> None:
    w.add_type(kind)
    gen = _read_json(ckpt.dir / "generation_config.json")
    if isinstance(gen, dict):
        for keys, method in SAMPLING_KEYS:
            value = next((gen[k] for k in keys if gen.get(k) is not None), None)
            if value is not None:
                getattr(w, method)(value)
    w.add_name(name)
    if params > 0:
        w.add_size_label(gguf_size_label(params, params, 0, 0))


def _llm_hparams(w: GGUFWriter, ckpt: Checkpoint) -> None:
    c = ckpt.config.llm
    raw = ckpt.config.raw[ckpt.config.llm_key]
    w.add_block_count(c.num_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_heads)
    w.add_head_count_kv(c.num_kv_heads)
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type")) if isinstance(rope, dict) else None
    if rope_type not in (None, "default"):
        factor = rope.get("factor")
        if rope_type == "linear" and factor is not None:
            w.add_rope_scaling_type(RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(factor)
        elif rope_type == "yarn" and factor is not None:
            w.add_rope_scaling_type(RopeScalingType.YARN)
            w.add_rope_scaling_factor(factor)
            w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
            for keys, method in ((("extrapolation_factor",), w.add_rope_scaling_yarn_ext_factor),
                                 (("attention_factor", "attn_factor"), w.add_rope_scaling_yarn_attn_factor),
                                 (("beta_fast",), w.add_rope_scaling_yarn_beta_fast),
                                 (("beta_slow",), w.add_rope_scaling_yarn_beta_slow)):
                value = next((rope[k] for k in keys if rope.get(k) is not None), None)
                if value is not None:
                    method(value)
        else:
            raise InputError(f"{ckpt.config.path}: rope scaling '{rope_type}' is not supported for GGUF export")
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    if "head_dim" in raw:
        w.add_key_length(c.head_dim)
        w.add_value_length(c.head_dim)


def _tokenizer(w: GGUFWriter, ckpt: Checkpoint) -> None:
    vocab = read_vocab(ckpt)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.token_types)
    if vocab.merges:
        w.add_token_merges(vocab.merges)
    for typ, tid in vocab.special_ids.items():
        getattr(w, f"add_{typ}_token_id")(tid)
    for typ, value in vocab.add_special.items():
        getattr(w, f"add_add_{typ}_token")(value)
    if vocab.chat_template is not None:
        w.add_chat_template(vocab.chat_template)


def _mmproj_hparams(w: GGUFWriter, ckpt: Checkpoint, mmproj_type: str) -> None:
    cfg = ckpt.config
    v = cfg.vision
    raw = cfg.raw
    w.add_file_type(FILE_TYPES[mmproj_type].llama_ftype)
    w.add_clip_has_vision_encoder(True)
    w.add_vision_projection_dim(cfg.llm.hidden_size)
    w.add_vision_image_size(v.image_size)
    w.add_vision_patch_size(v.patch_size)
    w.add_vision_embedding_length(v.hidden_size)
    w.add_vision_feed_forward_length(v.intermediate_size)
    w.add_vision_block_count(v.num_layers)
    w.add_vision_head_count(v.num_heads)
    pre = _read_json(ckpt.dir / "preprocessor_config.json") or {}
    w.add_vision_image_mean(list(pre.get("image_mean", IMAGENET_MEAN)))
    w.add_vision_image_std(list(pre.get("image_std", IMAGENET_STD)))
    w.add_clip_projector_type(VisionProjectorType.INTERNVL)
    w.add_vision_attention_layernorm_eps(v.layer_norm_eps)
    if raw["vision_config"].get("hidden_act", "gelu") == "silu":
        w.add_vision_use_silu(True)
    else:
        w.add_vision_use_gelu(True)
    w.add_vision_projector_scale_factor(int(1.0 / cfg.downsample_ratio))
    for key, method in (("min_dynamic_patch", "add_vision_preproc_min_tiles"),
                        ("max_dynamic_patch", "add_vision_preproc_max_tiles")):
        value = raw.get(key, 0)
        if isinstance(value, int) and value > 0:
            getattr(w, method)(value)


# --------------------------------------------------------------------------- vocabulary


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    special_ids: dict[str, int]
    add_special: dict[str, bool]
    chat_template: str | list[dict[str, str]] | None
    pre: str  # tokenizer.ggml.pre


SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")


def _looks_special(token: str) -> bool:
    """Added tokens some tokenizers forget to mark special (the converter's list)."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _merges(model_dir: Path, tokenizer_json: dict | None) -> list[str]:
    merges = (tokenizer_json or {}).get("model", {}).get("merges")
    if isinstance(merges, list) and merges:
        if isinstance(merges[0], str):
            return list(merges)
        # [a, b] pairs (transformers >= 4.45): GGUF keeps "a b", spaces inside a part as U+0120
        return [" ".join(part.replace(" ", "\u0120") for part in pair) for pair in merges]
    path = model_dir / "merges.txt"
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        line = line.strip()
        if not line or (i == 0 and line.startswith("#")):
            continue
        parts = line.split()
        if len(parts) == 2:
            out.append(f"{parts[0]} {parts[1]}")
    return out


def _template_special(piece: dict) -> str | None:
    """The special token of one piece of a tokenizer.json TemplateProcessing template."""
    return piece.get("SpecialToken", {}).get("id")


def _special_tokens(model_dir: Path, tokenizer_json: dict | None, n_vocab: int
                    ) -> tuple[dict[str, int], dict[str, bool]]:
    """Special ids and add-bos/eos flags, by the rules of gguf-py's SpecialVocab for byte-level
    BPE tokenizers: tokenizer_config.json names the tokens (found among tokenizer.json's added
    tokens), the post-processor decides whether BOS/EOS are added (tokenizer_config's
    ``add_*_token`` fills in the rest), config.json's ``*_token_id`` fills missing ids."""
    ids: dict[str, int] = {}
    add: dict[str, bool] = {}

    def set_id(typ: str, tid: Any) -> None:
        if isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid < n_vocab and typ not in ids:
            ids[typ] = tid

    tc = _read_json(model_dir / "tokenizer_config.json")
    tc = tc if isinstance(tc, dict) else {}
    added = (tokenizer_json or {}).get("added_tokens") or []

    def content(entry: Any) -> str | None:
        if isinstance(entry, dict):
            entry = entry.get("content")
        return entry if isinstance(entry, str) else None

    names = {typ: content(tc.get(f"{typ}_token")) for typ in SPECIAL_TYPES}
    names["bos"] = names["bos"] or names["cls"]
    names["eos"] = names["eos"] or names["sep"]
    if tokenizer_json:
        post = tokenizer_json.get("post_processor") or {}
        for proc in post.get("processors", [post]):
            kind = proc.get("type")
            if kind == "ByteLevel":
                add.setdefault("bos", False)
                add.setdefault("eos", False)
            elif kind == "TemplateProcessing":
                single = proc.get("single") or []
                first = last = None
                if len(single) > 1:
                    first, last = _template_special(single[0]), _template_special(single[-1])
                    if first:
                        names["bos"] = names["bos"] or first
                        add["bos"] = first in (names["bos"], names["cls"])
                    if last:
                        names["eos"] = names["eos"] or last
                        add["eos"] = last == names["eos"]
                # the pair template ("A [sep] B", inside the single template's ends) decides add_sep
                pair = proc.get("pair") or []
                start = 1 if first and pair and _template_special(pair[0]) == first else 0
                stop = -1 if last and pair and _template_special(pair[-1]) == last else None
                pair = pair[start:stop]
                if len(pair) > 2 and [p.get("Sequence", {}).get("id") for p in (pair[0], pair[-1])] == ["A", "B"]:
                    middle = [_template_special(p) for p in pair[1:-1]]
                    seps = {names["sep"], names["eos"]} - {None}
                    add["sep"] = (middle[0] in seps and not last) or (len(middle) == 2 and middle[1] in seps)
                    if add["sep"] and not names["sep"]:
                        names["sep"] = names["eos"]
    for typ in SPECIAL_TYPES:
        flag = tc.get(f"add_{typ}_token")
        if isinstance(flag, bool):
            add.setdefault(typ, flag)
        if names.get(typ) and tokenizer_json is not None:
            set_id(typ, next((a.get("id") for a in added if a.get("content") == names[typ]), None))
    config = _read_json(model_dir / "config.json") or {}
    for typ in SPECIAL_TYPES:
        tid = config.get(f"{typ}_token_id")
        if tid is None and isinstance(config.get("text_config"), dict):
            tid = config["text_config"].get(f"{typ}_token_id")
        set_id(typ, tid)
    return ids, {k: v for k, v in add.items() if k in ("bos", "eos", "sep")}


def _chat_template(model_dir: Path) -> str | list[dict[str, str]] | None:
    tc = _read_json(model_dir / "tokenizer_config.json")
    template = tc.get("chat_template") if isinstance(tc, dict) else None
    if template is None:
        jinja = model_dir / "chat_template.jinja"
        if jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
            extra = sorted((model_dir / "additional_chat_templates").glob("*.jinja"))
            if extra:
                template = [{"name": "default", "template": template}] + [
                    {"name": p.stem, "template": p.read_text(encoding="utf-8")} for p in extra]
        else:
            data = _read_json(model_dir / "chat_template.json")
            template = data.get("chat_template") if isinstance(data, dict) else None
    return template if isinstance(template, (str, list)) else None


def read_vocab(ckpt: Checkpoint) -> Vocab:
    """The checkpoint's tokenizer as llama.cpp's BPE ("gpt2") vocabulary, padded to the
    embedding rows with ``[PAD{i}]`` (type UNUSED); added tokens are CONTROL when special
    (or special-looking), USER_DEFINED otherwise."""
    from ..engine.prompt import _quiet_transformers
    from transformers import AutoTokenizer

    model_dir = ckpt.dir
    n_vocab = ckpt.config.llm.vocab_size
    try:
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{model_dir}: cannot load the tokenizer ({e})") from None
    vocab = tok.get_vocab()
    if not vocab or max(vocab.values()) >= n_vocab:
        raise InputError(f"{model_dir}: tokenizer has ids up to {max(vocab.values(), default=-1)}, "
                         f"but the embedding has only {n_vocab} rows")
    by_id = {i: t for t, i in vocab.items()}
    added = tok.get_added_vocab()
    decoder = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(int(TokenType.UNUSED))
            continue
        kind = TokenType.NORMAL
        if token in added:
            info = decoder[i]
            if not info.normalized:  # llama.cpp expects added tokens pre-normalized
                token = tok.decode(tok.encode(token, add_special_tokens=False))
            if info.special or _looks_special(token):
                kind = TokenType.CONTROL
            else:
                kind = TokenType.USER_DEFINED
                token = token.replace("\u2581", " ")
        tokens.append(token)
        types.append(int(kind))
    tokenizer_json = _read_json(model_dir / "tokenizer.json")
    special_ids, add_special = _special_tokens(model_dir, tokenizer_json, n_vocab)
    return Vocab(tokens, types, _merges(model_dir, tokenizer_json), special_ids, add_special,
                 _chat_template(model_dir), pre_tokenizer_name(tok))


PROBE_TEXT = "Hello world"


def pre_tokenizer_name(tok: Any) -> str:
    """``tokenizer.ggml.pre`` as llama.cpp's converter picks it, from the special ids ``tok`` wraps a
    text in (see :data:`~r1v_quant.formats.gguf_names.PRE_TOKENIZER_BY_WRAP`)."""
    full, plain = tok.encode(PROBE_TEXT), tok.encode(PROBE_TEXT, add_special_tokens=False)
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if start is None:
        return DEFAULT_PRE_TOKENIZER
    wrap = (tuple(full[:start]), tuple(full[start + len(plain):]))
    return PRE_TOKENIZER_BY_WRAP.get(wrap, DEFAULT_PRE_TOKENIZER)


# --------------------------------------------------------------------------- data


def _encode(ckpt: Checkpoint, t: PlannedTensor, source: torch.Tensor, device: str,
            roll_position_embd: bool) -> np.ndarray:
    x = source  # stored dtype: the encoders convert chunk by chunk, so no float32 copy of the whole tensor
    if t.parts > 1:
        rows = x.shape[0] // t.parts
        x = x[t.part * rows:(t.part + 1) * rows]
    if roll_position_embd and t.gguf_name == "v.position_embd.weight":
        x = torch.cat([x[:, 1:], x[:, :1]], dim=1)  # [1, 1 + patches, width]: class row last
    where = f"{t.source}" + (f" (part {t.part + 1} of {t.parts})" if t.parts > 1 else "") + f" -> {t.gguf_name}"
    if t.qtype == T.F32:
        x = x.to(torch.float32)
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            pos = int((~finite).flatten().nonzero()[0])
            raise InputError(f"{ckpt.dir}: tensor '{where}': value {x.flatten()[pos].item()} at flat index {pos}; "
                             "cannot export a non-finite weight")
        return x.contiguous().numpy()
    rows2d = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(1, -1)
    if device != "cpu":
        rows2d = rows2d.to(device)
    try:
        data = quantize(rows2d, t.qtype.name.lower(), name=where)
    except InputError as e:
        raise InputError(f"{ckpt.dir}: {e}") from None
    return data.cpu().numpy()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write(ckpt: Checkpoint, plan: FilePlan, tmp: Path, name: str, progress: ProgressFn | None, device: str,
           roll_position_embd: bool) -> None:
    kind = plan.kind
    w = GGUFWriter(path=None, arch="qwen2" if kind == LLM else "clip")
    try:
        for t in plan.tensors:
            w.add_tensor_info(t.gguf_name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
        if kind == LLM:
            _general(w, ckpt, GGUFType.MODEL, name, plan.params)
            _llm_hparams(w, ckpt)
            by_quantize = FILE_TYPES[plan.type_name].tool == gguf_mix.QUANTIZE
            if not by_quantize:
                w.add_file_type(FILE_TYPES[plan.type_name].llama_ftype)
                w.add_quantization_version(GGML_QUANT_VERSION)
            _tokenizer(w, ckpt)
            if by_quantize:  # llama-quantize re-sets these two last, which moves them to the end
                w.add_quantization_version(GGML_QUANT_VERSION)
                w.add_file_type(FILE_TYPES[plan.type_name].llama_ftype)
        else:
            _general(w, ckpt, GGUFType.MMPROJ, name, plan.params)
            _mmproj_hparams(w, ckpt, plan.type_name)
            w.add_quantization_version(GGML_QUANT_VERSION)
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        cached: tuple[str, torch.Tensor] | None = None  # a fused qkv is read once for its 3 parts
        for t in plan.tensors:
            if cached is None or cached[0] != t.source:
                cached = (t.source, ckpt.read_tensor(t.source))
            data = _encode(ckpt, t, cached[1], device, roll_position_embd)
            if t.part == t.parts - 1:
                cached = None
            if data.nbytes != t.nbytes:
                raise AssertionError(f"{t.gguf_name}: encoded {data.nbytes} bytes, planned {t.nbytes}")
            w.write_tensor_data(data)
            del data
            if progress is not None:
                progress(kind, t.gguf_name, t.nbytes)
    finally:
        w.close()


# --------------------------------------------------------------------------- entry point


@dataclass
class ExportPlan:
    name: str
    llm: FilePlan | None
    mmproj: FilePlan | None

    @property
    def files(self) -> list[FilePlan]:
        return [p for p in (self.llm, self.mmproj) if p is not None]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.files)


def plan_export(ckpt: Checkpoint, out_dir: str | Path, file_type: str = "q4_k_m", mmproj_type: str = "f16",
                name: str | None = None, mmproj: bool = True, allow_v1: bool = False, llm: bool = True) -> ExportPlan:
    """Everything about the outputs that metadata decides: names, tensors, types, sizes.
    Raises :class:`InputError` for a type name, a tensor or a config llama.cpp cannot take."""
    file_type, mmproj_type = file_type.lower(), mmproj_type.lower()
    name = name or ckpt.dir.resolve().name
    llm_file, mm_file = output_names(name, file_type, mmproj_type)
    out = Path(out_dir)
    if not (llm or mmproj):
        raise InputError("nothing to write: both the language model and the mmproj are switched off")
    llm_plan = plan_llm(ckpt, file_type, out / llm_file) if llm else None
    mm = None
    if mmproj:
        problems = mmproj_problems(ckpt, allow_v1)
        if problems:
            raise InputError(f"{ckpt.dir}: cannot export the vision projector for llama.cpp: {problems[0]}")
        mm = plan_mmproj(ckpt, mmproj_type, out / mm_file)
    return ExportPlan(name, llm_plan, mm)


def export_gguf(ckpt: Checkpoint, out_dir: str | Path, file_type: str = "q4_k_m", mmproj_type: str = "f16",
                name: str | None = None, overwrite: bool = False, progress: ProgressFn | None = None, *,
                mmproj: bool = True, allow_v1: bool = False, llm: bool = True, roll_position_embd: bool = False,
                device: str = "cpu", threads: int | None = 1,
                plan: ExportPlan | None = None) -> tuple[Path | None, Path | None]:
    """Write ``<Name>-<TYPE>.gguf`` (qwen2) and ``mmproj-<Name>-<MMTYPE>.gguf`` (clip/internvl)
    into ``out_dir``; return their paths (None for a file switched off with ``llm`` / ``mmproj``).

    ``progress(kind, tensor, nbytes)`` is called after each tensor is written.  ``threads``
    sets torch's intra-op threads while encoding (1 by default: the encoders run thousands of
    small element-wise ops, which extra threads slow down on a busy CPU; None leaves torch's
    setting).  ``device`` ("cuda") moves the encoding to a GPU (the encoders are written to give the
    same bytes there; this export has been byte-checked on CPU only).  Beside each file, a side file
    ``<name>.r1v.json`` records the source's fingerprint and the options that change how the file
    must be read back (``validate``), so the GGUF bytes stay exactly llama.cpp's.  Both files become
    visible only when both are complete; on any error or interrupt nothing is left behind.
    """
    plan = plan or plan_export(ckpt, out_dir, file_type, mmproj_type, name, mmproj, allow_v1, llm)
    with contextlib.ExitStack() as stack, _torch_threads(threads):
        # enter every output first: an existing file or unwritable folder fails before any work
        temps = [stack.enter_context(atomic_file(p.path, overwrite)) for p in plan.files]
        sides = [stack.enter_context(atomic_file(sidecar_path(p.path), overwrite)) for p in plan.files]
        source = {"fingerprint": fingerprint(ckpt)}
        for p, tmp, side in zip(plan.files, temps, sides):
            _write(ckpt, p, tmp, plan.name, progress, device, roll_position_embd)
            record = {"tool": f"r1v-quant {__version__}", "source": source, "kind": p.kind, "type": p.type_name,
                      "options": {"roll_position_embd": roll_position_embd and p.kind != LLM}}
            side.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return plan.llm.path if plan.llm else None, plan.mmproj.path if plan.mmproj else None
