"""Which GGML type each tensor gets, for every ``--type``: llama.cpp's rules as tables.

Only tensors with two or more dimensions whose names end in ``weight`` are
quantized; 1-D tensors (norms, biases) stay F32.  The ``_m`` mixes give some
``attn_v`` and ``ffn_down`` layers Q6_K (``use_more_bits``) and ``output.weight``
Q6_K.  A row whose length is not a multiple of the type's block size falls back
along ``FALLBACK`` (e.g. the vision tower's width 3200 is not a multiple of 256).
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

T = GGMLQuantizationType


@dataclass(frozen=True)
class FileType:
    base: GGMLQuantizationType
    llama_ftype: LlamaFileType
    more_bits: GGMLQuantizationType | None  # type for use_more_bits layers of attn_v / ffn_down
    output: GGMLQuantizationType | None  # type of output.weight, None = base


FILE_TYPES: dict[str, FileType] = {
    "f32": FileType(T.F32, LlamaFileType.ALL_F32, None, None),
    "f16": FileType(T.F16, LlamaFileType.MOSTLY_F16, None, None),
    "bf16": FileType(T.BF16, LlamaFileType.MOSTLY_BF16, None, None),
    "q8_0": FileType(T.Q8_0, LlamaFileType.MOSTLY_Q8_0, None, None),
    "q4_0": FileType(T.Q4_0, LlamaFileType.MOSTLY_Q4_0, None, T.Q6_K),
    "q4_1": FileType(T.Q4_1, LlamaFileType.MOSTLY_Q4_1, None, T.Q6_K),
    "q5_0": FileType(T.Q5_0, LlamaFileType.MOSTLY_Q5_0, None, T.Q6_K),
    "q5_1": FileType(T.Q5_1, LlamaFileType.MOSTLY_Q5_1, None, T.Q6_K),
    "q4_k_m": FileType(T.Q4_K, LlamaFileType.MOSTLY_Q4_K_M, T.Q6_K, T.Q6_K),
    "q5_k_m": FileType(T.Q5_K, LlamaFileType.MOSTLY_Q5_K_M, T.Q6_K, T.Q6_K),
    "q6_k": FileType(T.Q6_K, LlamaFileType.MOSTLY_Q6_K, None, T.Q6_K),
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
                    n_layers: int) -> GGMLQuantizationType:
    """Type of one language-model tensor (GGUF name, torch shape) in a ``--type`` file."""
    ft = FILE_TYPES[file_type]
    if len(shape) < 2 or not gguf_name.endswith("weight") or gguf_name.endswith("norm.weight"):
        return T.F32
    t = ft.base
    if gguf_name == "output.weight" and ft.output is not None:
        t = ft.output
    elif ft.more_bits is not None and layer is not None and use_more_bits(layer, n_layers) and (
        gguf_name.endswith("attn_v.weight") or gguf_name.endswith("ffn_down.weight")
    ):
        t = ft.more_bits
    return t if t in FLOAT_TYPES else fit_row(t, shape[-1])


def tensor_bytes(t: GGMLQuantizationType, numel: int, row_len: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    assert row_len % block == 0, (t, row_len)
    return numel // block * size


MMPROJ_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")


def mmproj_tensor_type(mmproj_type: str, gguf_name: str, shape: tuple[int, ...]) -> GGMLQuantizationType:
    """Type of one vision-projector tensor: llama.cpp's converter keeps 1-D tensors, norms,
    biases, the class and position embeddings in F32, and the patch embedding in F16 only
    for an F16 file."""
    base = FILE_TYPES[mmproj_type].base
    if len(shape) < 2 or not gguf_name.endswith("weight") or gguf_name in ("v.position_embd.weight",):
        return T.F32
    if gguf_name == "v.patch_embd.weight":
        return T.F16 if base == T.F16 else T.F32
    return base if base in FLOAT_TYPES else fit_row(base, shape[-1])
