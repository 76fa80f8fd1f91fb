"""What a GGUF export writes, decided from checkpoint metadata alone: names, tensors, types, sizes.

Tensor names come from :mod:`r1v_quant.formats.gguf_names`, types from
:mod:`r1v_quant.formats.gguf_mix`.  Tensor order is llama.cpp's: the converter's (shards in name
order, tensors by name within a shard) for the types it writes itself (f32, f16, bf16, q8_0),
llama-quantize's (by layer, then name) for the quantized mixes.  The same plan sizes the files
for ``inspect`` and the release's disk check (:mod:`r1v_quant.write.sizes`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from gguf import GGMLQuantizationType

from ...errors import InputError
from ...formats import gguf_mix
from ...formats.gguf_mix import (FILE_TYPES, MMPROJ_TYPES, llm_tensor_type, mmproj_tensor_type, tensor_bytes)
from ...formats.gguf_names import gguf_name
from ...read.checkpoint import Checkpoint
from .compat import POSITION_TABLE, mmproj_problems, roll_position_rows

LLM, MMPROJ = "llm", "mmproj"
# checkpoint tensors that carry no weights for llama.cpp (the converter drops them too)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


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

    @property
    def where(self) -> str:
        """How errors name it: source, part, GGUF name."""
        part = f" (part {self.part + 1} of {self.parts})" if self.parts > 1 else ""
        return f"{self.source}{part} -> {self.gguf_name}"

    @property
    def rows(self) -> int:
        """Length of its first dimension: the unit that its values and bytes are split along."""
        return self.shape[0] if self.shape else 1

    def source_rows(self, first: int, stop: int) -> tuple[int, int]:
        """Where its rows ``first:stop`` lie in the source tensor (a fused qkv holds the parts
        one after the other)."""
        base = self.part * self.rows
        return base + first, base + stop

    def splits(self, roll_position_embd: bool) -> bool:
        """Whether it may be encoded a block of rows at a time: a ggml row never straddles its
        first dimension's rows when it has two or more; the rolled table is rolled whole."""
        return len(self.shape) >= 2 and not self.rolls(roll_position_embd)

    def rolls(self, roll_position_embd: bool) -> bool:
        return roll_position_embd and self.gguf_name == POSITION_TABLE

    def finish_values(self, x: torch.Tensor, roll_position_embd: bool) -> torch.Tensor:
        """The values as stored, from its rows as read: the position table rolled when asked
        (see :mod:`.compat`)."""
        return roll_position_rows(x) if self.rolls(roll_position_embd) else x


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

    def fallbacks(self) -> list[PlannedTensor]:
        """Tensors whose row length forced another type than the mix asks for (as llama-quantize does)."""
        return [t for t in self.tensors if t.fell_back]


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


def converter_order(ckpt: Checkpoint) -> Iterator[str]:
    """Checkpoint tensors in the order llama.cpp's converter meets them: shard files by name,
    tensors by name within a shard."""
    for shard_name in sorted(ckpt.shards):
        yield from sorted(ckpt.shards[shard_name].tensors)


def _ignored(name: str) -> bool:
    return name.endswith(IGNORED_SUFFIXES)


def plan_llm(ckpt: Checkpoint, file_type: str, path: Path, has_imatrix: bool = False) -> FilePlan:
    """The language-model file; some mixes depend on whether an importance matrix is given."""
    if file_type not in FILE_TYPES:
        raise InputError(f"unknown --type '{file_type}' (choose from {', '.join(FILE_TYPES)})")
    n_layers = ckpt.config.llm.num_layers
    n_gqa = ckpt.config.llm.num_heads // ckpt.config.llm.num_kv_heads
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
        kw = {"tied_embeddings": tied, "n_gqa": n_gqa, "has_imatrix": has_imatrix}
        qtype = llm_tensor_type(file_type, name, shape, mapped.layer, n_layers, **kw)
        wanted = llm_tensor_type(file_type, name, shape, mapped.layer, n_layers, fit=False, **kw)
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


def plan_export(ckpt: Checkpoint, out_dir: str | Path, file_type: str = "q4_k_m", mmproj_type: str = "f16",
                name: str | None = None, mmproj: bool = True, allow_v1: bool = False, llm: bool = True,
                has_imatrix: bool = False) -> ExportPlan:
    """Everything about the outputs that metadata decides: names, tensors, types, sizes.
    Raises :class:`InputError` for a type name, a tensor or a config llama.cpp cannot take."""
    file_type, mmproj_type = file_type.lower(), mmproj_type.lower()
    name = name or ckpt.dir.resolve().name
    llm_file, mm_file = output_names(name, file_type, mmproj_type)
    out = Path(out_dir)
    if not (llm or mmproj):
        raise InputError("nothing to write: both the language model and the mmproj are switched off")
    llm_plan = plan_llm(ckpt, file_type, out / llm_file, has_imatrix) if llm else None
    mm = None
    if mmproj:
        problems = mmproj_problems(ckpt.config, allow_v1)
        if problems:
            raise InputError(f"{ckpt.dir}: cannot export the vision projector for llama.cpp: {problems[0]}")
        mm = plan_mmproj(ckpt, mmproj_type, out / mm_file)
    return ExportPlan(name, llm_plan, mm)
