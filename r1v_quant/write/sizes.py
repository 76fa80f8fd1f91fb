"""Size of each output a checkpoint would give, and what GPU it needs, from its metadata alone.

``inspect``, the release's disk preflight and the model cards all ask here, and here asks the plans
the writers write from (:func:`~r1v_quant.write.awq_export.plan_awq`, :mod:`r1v_quant.write.gguf.plan`),
so an estimate cannot drift from what is written.

A variant's GPU need at a context length is its weights (every byte of the files: language model,
vision tower, projector) + the KV cache for that many tokens (2 x layers x KV heads x head size per
token, in the runtime's cache type: 16-bit, or llama.cpp's ``q8_0`` at 34 bytes per 32 values) + a
fixed runtime overhead (CUDA context, activations, allocator slack: an estimate, not a measurement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..read.checkpoint import Checkpoint
from ..read.config import ModelConfig
from .awq_export import AWQLayout, plan_awq
from .gguf.plan import plan_llm, plan_mmproj

GB = 1e9
# Tokenizer strings and merges of a 152k vocabulary, measured on the demo checkpoint's GGUF metadata.
GGUF_METADATA_BYTES = 6_000_000
# CUDA context, activations and allocator slack on top of weights and KV cache (an estimate).
RUNTIME_OVERHEAD_BYTES = int(1.5 * GB)
GPUS_GB = (24, 30, 40, 48, 80)
CONTEXTS = (4096, 8192, 16384, 32768)
KV_BYTES_PER_VALUE = {"f16": 2.0, "q8_0": 34 / 32}  # llama.cpp's -ctk/-ctv q8_0: 32 values in 34 bytes
# The low-bit types are here to answer "what fits a 24 GB card at 8k" (issue 15).
FIT_LLM_TYPES = ("q8_0", "q5_k_m", "q4_k_m", "iq4_xs", "q3_k_m", "q3_k_s", "q2_k")
FIT_MMPROJ_TYPES = ("f16", "q8_0")
FILE_LLM_TYPES = ("f16", "q8_0", "q4_k_m", "q5_k_m")
_NOWHERE = Path("-")  # plans need a path; sizes do not


def kv_cache_bytes(cfg: ModelConfig, context: int, kv_type: str = "f16") -> int:
    llm = cfg.llm
    return kv_bytes(2 * llm.num_layers * llm.num_kv_heads * llm.head_dim * 2, context, kv_type)


def kv_bytes(f16_bytes_per_token: int, context: int, kv_type: str) -> int:
    """The KV cache of ``context`` tokens in ``kv_type``, from its 16-bit size per token."""
    return int(f16_bytes_per_token * context * KV_BYTES_PER_VALUE[kv_type] / 2)


def gpu_need(weights_bytes: int, f16_kv_bytes_per_token: int, context: int, kv_type: str = "f16") -> tuple[int, int]:
    """(KV cache bytes, total GPU bytes) of a variant at ``context`` tokens."""
    kv = kv_bytes(f16_kv_bytes_per_token, context, kv_type)
    return kv, weights_bytes + kv + RUNTIME_OVERHEAD_BYTES


def smallest_gpu(total_bytes: int, gpus: tuple[float, ...] = GPUS_GB) -> float | None:
    return next((g for g in gpus if total_bytes <= g * GB), None)


def source_bytes(ckpt: Checkpoint, bytes_per_value: int = 2) -> int:
    return sum(ckpt.info(n).numel * bytes_per_value for n in ckpt.tensor_names)


def awq_bytes(ckpt: Checkpoint, layout: AWQLayout | None = None) -> int:
    """AWQ GEMM 4-bit: the packed layers' linears as qweight, qzeros and fp16 scales; everything else fp16."""
    return sum(t.nbytes for t in plan_awq(ckpt, layout or AWQLayout()))


def gguf_llm_bytes(ckpt: Checkpoint, file_type: str) -> int:
    return GGUF_METADATA_BYTES + plan_llm(ckpt, file_type, _NOWHERE).nbytes


def gguf_mmproj_bytes(ckpt: Checkpoint, mmproj_type: str) -> int:
    return plan_mmproj(ckpt, mmproj_type, _NOWHERE).nbytes


@dataclass(frozen=True)
class Variant:
    """One way to run the model: its files' bytes (all on the GPU), the runtime, the KV cache type."""

    name: str
    runtime: str
    weights_bytes: int
    kv_type: str = "f16"


def gpu_key(gb: float) -> str:
    """A GPU size as a JSON key: 30 and 30.0 are both "30"."""
    return f"{gb:g}"


def fit(cfg: ModelConfig, v: Variant, contexts: tuple[int, ...] = CONTEXTS,
        gpus: tuple[int, ...] = GPUS_GB) -> dict[str, Any]:
    """``v``'s need at each context, and which of ``gpus`` (GB, decimal) it fits."""
    out: dict[str, Any] = {**asdict(v), "overhead_bytes": RUNTIME_OVERHEAD_BYTES, "contexts": {}}
    per_token = kv_cache_bytes(cfg, 1)
    for ctx in contexts:
        kv, total = gpu_need(v.weights_bytes, per_token, ctx, v.kv_type)
        out["contexts"][str(ctx)] = {"kv_bytes": kv, "total_bytes": total,
                                     "fits": {gpu_key(g): total <= g * GB for g in gpus},
                                     "smallest_gpu_gb": smallest_gpu(total, gpus)}
    return out


def variants(ckpt: Checkpoint, llm_types: tuple[str, ...] = FIT_LLM_TYPES,
             mmproj_types: tuple[str, ...] = FIT_MMPROJ_TYPES) -> list[Variant]:
    """The variants ``inspect`` compares: the source, both AWQ layouts, GGUF pairs with either KV cache."""
    out = [Variant("BF16 (source)", "vLLM, transformers", source_bytes(ckpt)),
           Variant("AWQ 4-bit, vision 4-bit", "vLLM", awq_bytes(ckpt, AWQLayout(vision=True))),
           Variant("AWQ 4-bit, vision fp16", "vLLM, LMDeploy", awq_bytes(ckpt, AWQLayout(vision=False)))]
    mmproj = {t: gguf_mmproj_bytes(ckpt, t) for t in mmproj_types}
    for t in llm_types:
        llm = gguf_llm_bytes(ckpt, t)
        for m in mmproj_types:
            for kv in ("f16", "q8_0"):
                out.append(Variant(f"GGUF {t.upper()} + mmproj {m.upper()}", "llama.cpp", llm + mmproj[m], kv))
    return out


@dataclass(frozen=True)
class OutputEstimate:
    name: str
    file_bytes: int  # on disk


def file_sizes(ckpt: Checkpoint) -> list[OutputEstimate]:
    """Every output's size on disk."""
    out = [OutputEstimate("BF16 (source layout)", source_bytes(ckpt)),
           OutputEstimate("AWQ 4-bit g128, vision 4-bit", awq_bytes(ckpt, AWQLayout(vision=True))),
           OutputEstimate("AWQ 4-bit g128, vision fp16", awq_bytes(ckpt, AWQLayout(vision=False)))]
    out += [OutputEstimate(f"GGUF {t.upper()}", gguf_llm_bytes(ckpt, t)) for t in FILE_LLM_TYPES]
    out += [OutputEstimate(f"mmproj {t.upper()}", gguf_mmproj_bytes(ckpt, t)) for t in FIT_MMPROJ_TYPES]
    return out
