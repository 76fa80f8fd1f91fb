"""Which GGML type each tensor gets, for every ``--type``: llama.cpp's rules as tables.

Only tensors with two or more dimensions whose names end in ``weight`` are
quantized; 1-D tensors (norms, biases) stay F32.  Each ``--type`` has a base type and,
in ``MIXES``, rules that give some tensors another (the ``_m`` mixes: Q6_K for
``attn_v`` and ``ffn_down`` where ``use_more_bits``; ``q3_k_m``: more bits in the first
layers; ...); ``output.weight`` gets Q6_K.  A row whose length is not a multiple of the
type's block size falls back along ``FALLBACK`` (e.g. the vision tower's width 3200 is
not a multiple of 256).

Checked against llama.cpp 0c1e57098 (the llama-cpp-python 0.3.36 sdist):
``tensor_allows_quantization``, ``llama_tensor_get_type_impl`` and
``tensor_type_fallback`` in ``src/llama-quant.cpp`` for the quantized mixes, and
``prepare_tensors`` / ``tensor_force_quant`` of ``convert_hf_to_gguf.py`` for the
types its converter writes directly (f32, f16, bf16, q8_0), including the mmproj
file.  ``FileType.tool`` records which of the two llama.cpp would use to make a
``--type``; it decides the tensor order of the file (see :func:`tensor_order`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

T = GGMLQuantizationType


@dataclass(frozen=True)
class FileType:
    base: GGMLQuantizationType
    llama_ftype: LlamaFileType
    # which llama.cpp tool makes this type from a Hugging Face checkpoint: "convert"
    # (convert_hf_to_gguf.py --outtype) or "quantize" (llama-quantize on its F16/BF16 file)
    tool: str = "quantize"


CONVERT, QUANTIZE = "convert", "quantize"

FILE_TYPES: dict[str, FileType] = {
    "f32": FileType(T.F32, LlamaFileType.ALL_F32, CONVERT),
    "f16": FileType(T.F16, LlamaFileType.MOSTLY_F16, CONVERT),
    "bf16": FileType(T.BF16, LlamaFileType.MOSTLY_BF16, CONVERT),
    "q8_0": FileType(T.Q8_0, LlamaFileType.MOSTLY_Q8_0, CONVERT),
    "q4_0": FileType(T.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    "q4_1": FileType(T.Q4_1, LlamaFileType.MOSTLY_Q4_1),
    "q5_0": FileType(T.Q5_0, LlamaFileType.MOSTLY_Q5_0),
    "q5_1": FileType(T.Q5_1, LlamaFileType.MOSTLY_Q5_1),
    "q2_k": FileType(T.Q2_K, LlamaFileType.MOSTLY_Q2_K),
    "q3_k_s": FileType(T.Q3_K, LlamaFileType.MOSTLY_Q3_K_S),
    "q3_k_m": FileType(T.Q3_K, LlamaFileType.MOSTLY_Q3_K_M),
    "q4_k_m": FileType(T.Q4_K, LlamaFileType.MOSTLY_Q4_K_M),
    "q5_k_m": FileType(T.Q5_K, LlamaFileType.MOSTLY_Q5_K_M),
    "q6_k": FileType(T.Q6_K, LlamaFileType.MOSTLY_Q6_K),
    "iq4_nl": FileType(T.IQ4_NL, LlamaFileType.MOSTLY_IQ4_NL),
    "iq4_xs": FileType(T.IQ4_XS, LlamaFileType.MOSTLY_IQ4_XS),
}


@dataclass(frozen=True)
class Where:
    """What a mix rule looks at: the tensor's layer among ``n`` layers, the model, the run."""

    layer: int
    n: int
    n_gqa: int  # attention heads per KV head
    has_imatrix: bool


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


# Conditions of the rules below, by name (llama_tensor_get_type_impl's tests, for one expert-free model).
CONDITIONS: dict[str, Callable[[Where], bool]] = {
    "always": lambda w: True,
    "more_bits": lambda w: use_more_bits(w.layer, w.n),
    "first_2": lambda w: w.layer < 2,
    "first_16th": lambda w: w.layer < w.n // 16,
    "first_8th_without_imatrix": lambda w: w.layer < w.n // 8 and not w.has_imatrix,
    "first_8th_with_imatrix": lambda w: w.layer < w.n // 8 and w.has_imatrix,
    "gqa_4": lambda w: w.n_gqa >= 4,
}
# Per --type, per tensor kind (the GGUF name's suffix), the first rule whose condition holds sets the type;
# no rule that holds: the type's base.  (llama.cpp 0c1e57098, src/llama-quant.cpp, for a dense Qwen2.)
Rule = tuple[str, GGMLQuantizationType]
MIXES: dict[str, dict[str, list[Rule]]] = {
    "q4_0": {"ffn_down": [("first_8th_with_imatrix", T.Q4_1)]},
    "q5_0": {"ffn_down": [("first_8th_with_imatrix", T.Q5_1)]},
    "q2_k": {"attn_v": [("gqa_4", T.Q4_K), ("always", T.Q3_K)], "ffn_down": [("always", T.Q3_K)],
             "attn_output": [("always", T.Q3_K)]},
    "q3_k_m": {"attn_v": [("first_2", T.Q5_K), ("always", T.Q4_K)],
               "ffn_down": [("first_16th", T.Q5_K), ("always", T.Q4_K)], "attn_output": [("always", T.Q4_K)]},
    "q4_k_m": {"attn_v": [("more_bits", T.Q6_K)], "ffn_down": [("more_bits", T.Q6_K)]},
    "q5_k_m": {"attn_v": [("more_bits", T.Q6_K)], "ffn_down": [("more_bits", T.Q6_K)]},
    "iq4_nl": {"attn_v": [("gqa_4", T.Q5_K)], "ffn_down": [("first_8th_without_imatrix", T.Q5_K)]},
    "iq4_xs": {"attn_v": [("gqa_4", T.Q5_K)], "ffn_down": [("first_8th_without_imatrix", T.Q5_K)]},
}

# When a row does not split into whole blocks of a type, llama.cpp tries the next.
FALLBACK: dict[GGMLQuantizationType, GGMLQuantizationType] = {
    T.Q2_K: T.Q4_0,
    T.Q3_K: T.Q4_0,
    T.Q4_K: T.Q5_0,
    T.Q5_K: T.Q5_1,
    T.Q6_K: T.Q8_0,
    T.IQ4_XS: T.IQ4_NL,
}
FLOAT_TYPES = {T.F32, T.F16, T.BF16}


def block_size(t: GGMLQuantizationType) -> int:
    return GGML_QUANT_SIZES[t][0]


def fit_row(t: GGMLQuantizationType, row_len: int) -> GGMLQuantizationType:
    """llama.cpp's fallback when the row does not split into whole blocks: the next type of
    ``FALLBACK``, else (a 32-block type already, or a fallback that does not fit either) F16."""
    if row_len % block_size(t) == 0:
        return t
    t = FALLBACK.get(t, t)
    return t if row_len % block_size(t) == 0 else T.F16


def llm_tensor_type(file_type: str, gguf_name: str, shape: tuple[int, ...], layer: int | None,
                    n_layers: int, tied_embeddings: bool = False, fit: bool = True, n_gqa: int = 1,
                    has_imatrix: bool = False) -> GGMLQuantizationType:
    """Type of one language-model tensor (GGUF name, torch shape) in a ``--type`` file.

    ``output.weight`` (and ``token_embd.weight`` when the embeddings are tied: it then serves as both)
    gets Q6_K, or Q8_0 in a q8_0 file or when its rows do not split into the base type's blocks.
    ``fit=False`` gives the type the mix asks for before the row-length fallback."""
    ft = FILE_TYPES[file_type]
    if len(shape) < 2 or not gguf_name.endswith("weight") or gguf_name.endswith("norm.weight"):
        return T.F32
    t = ft.base
    if t in FLOAT_TYPES:
        return t
    if gguf_name == "output.weight" or (tied_embeddings and gguf_name == "token_embd.weight"):
        t = T.Q8_0 if shape[-1] % block_size(t) or t == T.Q8_0 else T.Q6_K
    elif layer is not None:
        kind = gguf_name.removesuffix(".weight").split(".")[-1]
        where = Where(layer, n_layers, n_gqa, has_imatrix)
        t = next((rule_type for condition, rule_type in MIXES.get(file_type, {}).get(kind, [])
                  if CONDITIONS[condition](where)), t)
    return fit_row(t, shape[-1]) if fit else t


def tensor_bytes(t: GGMLQuantizationType, numel: int, row_len: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    assert row_len % block == 0, (t, row_len)
    return numel // block * size


MMPROJ_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
# The default mmproj type of ``gguf`` and ``release``: the least lossy one with which the 38B's Q4_K_M pair
# fits one 30 GB GPU at an 8k context (weights 25.85 GB, 29.5 GB in all with a 16-bit KV cache; with an F16
# mmproj, 31.12 and 34.8 GB: `r1v-quant inspect` on the real geometry).  Measured costs: README, "Vision".
DEFAULT_MMPROJ_TYPE = "q8_0"
# The mmproj types llama.cpp's converter itself writes; the legacy 4/5-bit ones are ours
# (same rules, ggml's reference encoders; llama.cpp loads them, it just has no tool making them).
MMPROJ_CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")


def mmproj_tensor_type(mmproj_type: str, gguf_name: str, shape: tuple[int, ...],
                       fit: bool = True) -> GGMLQuantizationType:
    """Type of one vision-projector tensor: llama.cpp's converter keeps 1-D tensors, norms,
    biases, the class and position embeddings in F32, and the patch embedding in F16 only
    for an F16 file."""
    base = FILE_TYPES[mmproj_type].base
    if len(shape) < 2 or not gguf_name.endswith("weight") or gguf_name in ("v.position_embd.weight",):
        return T.F32
    if gguf_name == "v.patch_embd.weight":
        return T.F16 if base == T.F16 else T.F32
    return base if base in FLOAT_TYPES or not fit else fit_row(base, shape[-1])


_BLK = re.compile(r"^blk\.(\d+)\.")


def tensor_order(gguf_name: str) -> tuple[int, str]:
    """Sort key of llama-quantize's output: llama_model_loader's ``weight_name_comparer``
    (tensors outside ``blk.N.`` first, then by layer number, then by name)."""
    m = _BLK.match(gguf_name)
    return (int(m.group(1)) if m else -1, gguf_name)
