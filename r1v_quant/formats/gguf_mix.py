"""Which GGML type each tensor gets, for every ``--type``: llama.cpp's rules as tables.

Only tensors with two or more dimensions whose names end in ``weight`` are
quantized; 1-D tensors (norms, biases) stay F32.  The ``_m`` mixes give some
``attn_v`` and ``ffn_down`` layers Q6_K (``use_more_bits``) and ``output.weight``
Q6_K.  A row whose length is not a multiple of the type's block size falls back
along ``FALLBACK`` (e.g. the vision tower's width 3200 is not a multiple of 256).

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
from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

T = GGMLQuantizationType


@dataclass(frozen=True)
class FileType:
    base: GGMLQuantizationType
    llama_ftype: LlamaFileType
    more_bits: GGMLQuantizationType | None  # type for use_more_bits layers of attn_v / ffn_down
    output: GGMLQuantizationType | None  # type of output.weight, None = base
    # which llama.cpp tool makes this type from a Hugging Face checkpoint: "convert"
    # (convert_hf_to_gguf.py --outtype) or "quantize" (llama-quantize on its F16/BF16 file)
    tool: str = "quantize"


CONVERT, QUANTIZE = "convert", "quantize"

FILE_TYPES: dict[str, FileType] = {
    "f32": FileType(T.F32, LlamaFileType.ALL_F32, None, None, CONVERT),
    "f16": FileType(T.F16, LlamaFileType.MOSTLY_F16, None, None, CONVERT),
    "bf16": FileType(T.BF16, LlamaFileType.MOSTLY_BF16, None, None, CONVERT),
    "q8_0": FileType(T.Q8_0, LlamaFileType.MOSTLY_Q8_0, None, None, CONVERT),
    "q4_0": FileType(T.Q4_0, LlamaFileType.MOSTLY_Q4_0, None, T.Q6_K, QUANTIZE),
    "q4_1": FileType(T.Q4_1, LlamaFileType.MOSTLY_Q4_1, None, T.Q6_K, QUANTIZE),
    "q5_0": FileType(T.Q5_0, LlamaFileType.MOSTLY_Q5_0, None, T.Q6_K, QUANTIZE),
    "q5_1": FileType(T.Q5_1, LlamaFileType.MOSTLY_Q5_1, None, T.Q6_K, QUANTIZE),
    "q4_k_m": FileType(T.Q4_K, LlamaFileType.MOSTLY_Q4_K_M, T.Q6_K, T.Q6_K, QUANTIZE),
    "q5_k_m": FileType(T.Q5_K, LlamaFileType.MOSTLY_Q5_K_M, T.Q6_K, T.Q6_K, QUANTIZE),
    "q6_k": FileType(T.Q6_K, LlamaFileType.MOSTLY_Q6_K, None, T.Q6_K, QUANTIZE),
}

# When a row does not split into whole blocks of a type, llama.cpp tries the next.
FALLBACK: dict[GGMLQuantizationType, GGMLQuantizationType] = {
    T.Q4_K: T.Q5_0,
    T.Q5_K: T.Q5_1,
    T.Q6_K: T.Q8_0,
    T.Q4_0: T.F16,
    T.Q4_1: T.F16,
    T.Q5_0: T.F16,
    T.Q5_1: T.F16,
    T.Q8_0: T.F16,
}
FLOAT_TYPES = {T.F32, T.F16, T.BF16}


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def block_size(t: GGMLQuantizationType) -> int:
    return GGML_QUANT_SIZES[t][0]


def fit_row(t: GGMLQuantizationType, row_len: int) -> GGMLQuantizationType:
    """Follow the fallback chain until the row splits into whole blocks."""
    while row_len % block_size(t):
        t = FALLBACK.get(t, T.F16)
    return t


def llm_tensor_type(file_type: str, gguf_name: str, shape: tuple[int, ...], layer: int | None,
                    n_layers: int, tied_embeddings: bool = False, fit: bool = True) -> GGMLQuantizationType:
    """Type of one language-model tensor (GGUF name, torch shape) in a ``--type`` file.

    With tied embeddings (no ``output.weight``) llama-quantize gives ``token_embd.weight`` the
    output tensor's type, since it then serves as both.  ``fit=False`` gives the type the mix
    asks for before the row-length fallback."""
    ft = FILE_TYPES[file_type]
    if len(shape) < 2 or not gguf_name.endswith("weight") or gguf_name.endswith("norm.weight"):
        return T.F32
    t = ft.base
    is_output = gguf_name == "output.weight" or (tied_embeddings and gguf_name == "token_embd.weight")
    if is_output and ft.output is not None:
        t = ft.output
    elif ft.more_bits is not None and layer is not None and use_more_bits(layer, n_layers) and (
        gguf_name.endswith("attn_v.weight") or gguf_name.endswith("ffn_down.weight")
    ):
        t = ft.more_bits
    return t if t in FLOAT_TYPES or not fit else fit_row(t, shape[-1])


def tensor_bytes(t: GGMLQuantizationType, numel: int, row_len: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    assert row_len % block == 0, (t, row_len)
    return numel // block * size


MMPROJ_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
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
