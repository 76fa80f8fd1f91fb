"""Size of each output a checkpoint would give, from its metadata alone: the writers' own plans.

``inspect`` and the release's disk preflight both ask here, and here asks the plans the writers
write from (:func:`~r1v_quant.write.awq_export.plan_awq`, :mod:`r1v_quant.write.gguf.plan`), so an
estimate cannot drift from what is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..read.checkpoint import Checkpoint
from .awq_export import plan_awq
from .gguf.plan import plan_llm, plan_mmproj

GB = 1e9
AWQ_GROUP = 128
# Tokenizer strings and merges of a 152k vocabulary, measured on the demo checkpoint's GGUF metadata.
GGUF_METADATA_BYTES = 6_000_000
# CUDA context, activations and allocator slack on top of weights and KV cache (an estimate).
RUNTIME_OVERHEAD_BYTES = int(1.5 * GB)
ESTIMATED_LLM_TYPES = ("f16", "q8_0", "q4_k_m", "q5_k_m")
ESTIMATED_MMPROJ_TYPES = ("f16", "q8_0")
_NOWHERE = Path("-")  # plans need a path; sizes do not


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


def source_bytes(ckpt: Checkpoint, bytes_per_value: int = 2) -> int:
    return sum(ckpt.info(n).numel * bytes_per_value for n in ckpt.tensor_names)


def awq_bytes(ckpt: Checkpoint, group_size: int = AWQ_GROUP) -> int:
    """AWQ GEMM 4-bit: decoder linears packed (qweight, qzeros, fp16 scales); everything else fp16."""
    return sum(t.nbytes for t in plan_awq(ckpt, group_size))


def gguf_llm_bytes(ckpt: Checkpoint, file_type: str) -> int:
    return GGUF_METADATA_BYTES + plan_llm(ckpt, file_type, _NOWHERE).nbytes


def gguf_mmproj_bytes(ckpt: Checkpoint, mmproj_type: str) -> int:
    return plan_mmproj(ckpt, mmproj_type, _NOWHERE).nbytes


def estimate_outputs(ckpt: Checkpoint, context: int) -> list[OutputEstimate]:
    kv = kv_cache_bytes(ckpt, context)

    def est(name: str, file_bytes: int, with_llm: bool = True) -> OutputEstimate:
        cache = kv if with_llm else 0  # the KV cache belongs to the language model
        return OutputEstimate(name, file_bytes, file_bytes, cache, file_bytes + cache + RUNTIME_OVERHEAD_BYTES)

    out = [est("BF16 (source layout)", source_bytes(ckpt))]
    out.append(est("AWQ 4-bit g128 (vision fp16)", awq_bytes(ckpt)))
    mmproj = {t: gguf_mmproj_bytes(ckpt, t) for t in ESTIMATED_MMPROJ_TYPES}
    for t in ESTIMATED_LLM_TYPES:
        out.append(est(f"GGUF {t.upper()} + mmproj F16", gguf_llm_bytes(ckpt, t) + mmproj["f16"]))
    for t in ESTIMATED_MMPROJ_TYPES:
        out.append(est(f"mmproj {t.upper()} alone", mmproj[t], with_llm=False))
    return out
