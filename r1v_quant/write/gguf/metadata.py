"""The key/values of each GGUF file, in the order llama.cpp's converter (and llama-quantize) write them.

``general.*`` (type, sampling defaults from ``generation_config.json``, name, size label),
``qwen2.*`` / ``clip.*`` hyper-parameters from the config, and ``tokenizer.ggml.*`` from
:mod:`.vocab`.  Deliberate difference from the converter: ``general.name`` is what the caller
passes (the converter guesses one from ``_name_or_path`` or the model card), and model-card keys
(licence, tags, base models from ``README.md``) are not written.
"""

from __future__ import annotations

from pathlib import Path

from gguf import (GGML_QUANT_VERSION, GGUFType, GGUFWriter, VisionProjectorType)
from gguf.utility import size_label as gguf_size_label

from ...formats.gguf_mix import FILE_TYPES, QUANTIZE
from ...read.config import ModelConfig
from ...read.files import read_json_object
from ...read.imatrix_file import Imatrix
from .vocab import Vocab

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
def _first(d: dict, keys: tuple[str, ...]) -> object:
    return next((d[k] for k in keys if d.get(k) is not None), None)


def add_general(w: GGUFWriter, model_dir: Path, kind: GGUFType | str, name: str, params: int) -> None:
    w.add_type(kind)
    gen = read_json_object(model_dir / "generation_config.json")
    for keys, method in SAMPLING_KEYS:
        value = _first(gen, keys)
        if value is not None:
            getattr(w, method)(value)
    w.add_name(name)
    if params > 0:
        w.add_size_label(gguf_size_label(params, params, 0, 0))


def add_llm_hparams(w: GGUFWriter, cfg: ModelConfig) -> None:
    c = cfg.llm
    raw = cfg.raw[cfg.llm_key]
    w.add_block_count(c.num_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_heads)
    w.add_head_count_kv(c.num_kv_heads)
    # scaled RoPE (linear, YaRN) is refused for every command (read/config.py): the engine has none
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    if "head_dim" in raw:
        w.add_key_length(c.head_dim)
        w.add_value_length(c.head_dim)


def add_tokenizer(w: GGUFWriter, vocab: Vocab) -> None:
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.token_types)
    vocab.special.add_to_gguf(w, quiet=True)


def add_mmproj_hparams(w: GGUFWriter, cfg: ModelConfig, model_dir: Path, mmproj_type: str) -> None:
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
    w.add_vision_image_mean(list(cfg.image_mean))  # preprocessor_config.json's, as the converter writes them
    w.add_vision_image_std(list(cfg.image_std))
    w.add_clip_projector_type(VisionProjectorType.INTERNVL)
    w.add_vision_attention_layernorm_eps(v.layer_norm_eps)
    w.add_vision_use_gelu(True)  # the only vision activation a checkpoint can have here (read/config.py)
    w.add_vision_projector_scale_factor(int(1.0 / cfg.downsample_ratio))
    for key, method in (("min_dynamic_patch", "add_vision_preproc_min_tiles"),
                        ("max_dynamic_patch", "add_vision_preproc_max_tiles")):
        value = raw.get(key, 0)
        if isinstance(value, int) and value > 0:
            getattr(w, method)(value)


def add_file_keys(w: GGUFWriter, kind: str, type_name: str, cfg: ModelConfig, model_dir: Path, name: str,
                  params: int, vocab: Vocab | None, imatrix: Imatrix | None = None) -> None:
    """Every key of one file, in llama.cpp's order.  ``vocab``: the language model's (None for the mmproj);
    ``imatrix``: the importance matrix its tensors were weighed with."""
    ft = FILE_TYPES[type_name]
    if kind == "llm":
        assert vocab is not None
        add_general(w, model_dir, GGUFType.MODEL, name, params)
        add_llm_hparams(w, cfg)
        by_quantize = ft.tool == QUANTIZE
        if not by_quantize:
            w.add_file_type(ft.llama_ftype)
            w.add_quantization_version(GGML_QUANT_VERSION)
        add_tokenizer(w, vocab)
        if by_quantize:  # llama-quantize re-sets these two last, which moves them to the end
            w.add_quantization_version(GGML_QUANT_VERSION)
            w.add_file_type(ft.llama_ftype)
            if imatrix is not None:  # then the keys it records of the matrix (as kv overrides, in this order)
                add_imatrix_keys(w, imatrix)
    else:
        add_general(w, model_dir, GGUFType.MMPROJ, name, params)
        add_mmproj_hparams(w, cfg, model_dir, type_name)
        w.add_quantization_version(GGML_QUANT_VERSION)


def add_imatrix_keys(w: GGUFWriter, imatrix: Imatrix) -> None:
    """``quantize.imatrix.*`` as ``llama-quantize --imatrix FILE`` writes them (the file by its name only:
    a path would make the bytes depend on where the file lay)."""
    w.add_string("quantize.imatrix.file", imatrix.path.name[:127])
    if imatrix.datasets:
        w.add_string("quantize.imatrix.dataset", imatrix.datasets[0][:127])
    w.add_uint32("quantize.imatrix.entries_count", len(imatrix.sums))
    if imatrix.chunk_count > 0:
        w.add_uint32("quantize.imatrix.chunks_count", imatrix.chunk_count)
