"""Size of each output a checkpoint would give, from its metadata alone.

Used by ``inspect`` and by the disk-space preflight: the same tables that the
writers use decide each tensor's type, so the estimate follows the writers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..read.checkpoint import Checkpoint
from ..read.layout import classify
from .gguf_mix import MMPROJ_TYPES, llm_tensor_type, mmproj_tensor_type, tensor_bytes
from .gguf_names import gguf_name

GB = 1e9
AWQ_GROUP = 128
AWQ_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Tokenizer strings and merges of a 152k vocabulary, measured on the demo checkpoint's GGUF metadata.
GGUF_METADATA_BYTES = 6_000_000
# CUDA context, activations and allocator slack on top of weights and KV cache (an estimate).
RUNTIME_OVERHEAD_BYTES = int(1.5 * GB)
ESTIMATED_LLM_TYPES = ("f16", "q8_0", "q4_k_m", "q5_k_m")
ESTIMATED_MMPROJ_TYPES = ("f16", "q8_0")


@dataclass(frozen=True)
class OutputEstimate:
    name: str
    file_bytes: int  # on disk
    gpu_bytes: int  # weights that must sit on the GPU: LLM, vision tower, projector
    kv_bytes: int
    gpu_need_bytes: int  # gpu_bytes + kv_bytes + runtime overhead

    def fits(self, gpu_mem_bytes: float) -> bool:
        return self.gpu_need_bytes <= gpu_mem_bytes

    def as_dict(self, gpu_mem_bytes: float) -> dict:
        return {**asdict(self), "fits": self.fits(gpu_mem_bytes)}


def kv_cache_bytes(ckpt: Checkpoint, context: int, bytes_per_value: int = 2) -> int:
    llm = ckpt.config.llm
    return 2 * llm.num_layers * llm.num_kv_heads * llm.head_dim * context * bytes_per_value


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def awq_bytes(ckpt: Checkpoint) -> int:
    """AWQ GEMM 4-bit: decoder linears packed (qweight, qzeros, fp16 scales); everything else fp16."""
    total = 0
    for name in ckpt.tensor_names:
        shape = ckpt.info(name).shape
        unit = classify(name)
        is_linear = unit.name.startswith("llm.layer.") and name.endswith(".weight") and any(
            f".{p}." in name for p in AWQ_LINEARS)
        if is_linear:
            n_out, k_in = shape
            groups = -(-k_in // AWQ_GROUP)
            total += k_in * n_out // 2 + groups * n_out * 2 + groups * n_out // 2
        else:
            total += _numel(shape) * 2
    return total


def gguf_llm_bytes(ckpt: Checkpoint, file_type: str) -> int:
    n_layers = ckpt.config.llm.num_layers
    total = GGUF_METADATA_BYTES
    for name in ckpt.tensor_names:
        g = gguf_name(name, "llm")
        if g is None:
            continue
        shape = ckpt.info(name).shape
        t = llm_tensor_type(file_type, g.names[0], shape, g.layer, n_layers)
        total += tensor_bytes(t, _numel(shape), shape[-1])
    return total


def gguf_mmproj_bytes(ckpt: Checkpoint, mmproj_type: str) -> int:
    total = 0
    for name in ckpt.tensor_names:
        g = gguf_name(name, "mmproj")
        if g is None:
            continue
        shape = ckpt.info(name).shape
        part = (shape[0] // len(g.names), *shape[1:])
        for n in g.names:
            t = mmproj_tensor_type(mmproj_type, n, part)
            total += tensor_bytes(t, _numel(part), part[-1])
    return total


def estimate_outputs(ckpt: Checkpoint, context: int) -> list[OutputEstimate]:
    kv = kv_cache_bytes(ckpt, context)

    def est(name: str, file_bytes: int, with_llm: bool = True) -> OutputEstimate:
        cache = kv if with_llm else 0  # the KV cache belongs to the language model
        return OutputEstimate(name, file_bytes, file_bytes, cache, file_bytes + cache + RUNTIME_OVERHEAD_BYTES)

    bf16 = sum(_numel(ckpt.info(n).shape) * 2 for n in ckpt.tensor_names)
    out = [est("BF16 (source layout)", bf16)]
    awq = awq_bytes(ckpt)
    out.append(est("AWQ 4-bit g128 (vision fp16)", awq))
    mmproj = {t: gguf_mmproj_bytes(ckpt, t) for t in ESTIMATED_MMPROJ_TYPES}
    for t in ESTIMATED_LLM_TYPES:
        llm = gguf_llm_bytes(ckpt, t)
        out.append(est(f"GGUF {t.upper()} + mmproj F16", llm + mmproj["f16"]))
    for t in ESTIMATED_MMPROJ_TYPES:
        out.append(est(f"mmproj {t.upper()} alone", mmproj[t], with_llm=False))
    return out


__all__ = ["GB", "MMPROJ_TYPES", "OutputEstimate", "estimate_outputs", "kv_cache_bytes"]
