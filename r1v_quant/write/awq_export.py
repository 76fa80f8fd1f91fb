"""The AWQ output folder, and the resumable work folder it is built from.

Layout, as vLLM and (with a float16 vision tower) LMDeploy load it: the source ``config.json`` plus a
top-level ``quantization_config``; each quantized linear as ``<name>.qweight`` / ``.qzeros`` /
``.scales`` (AutoAWQ GEMM packing) and ``.bias``; everything else (projector, embeddings, norms,
``lm_head``, and the vision tower unless it is quantized too) in float16; shards of at most 5 GB with
an index; tokenizer, preprocessor, generation config and remote-code files copied.  Which layers are
packed is an :class:`AWQLayout`; ``quantization_config.modules_to_not_convert`` names exactly the
modules with linears left in float (vLLM skips a module whose name contains an entry of that list).

While the run goes, every finished layer is saved in a work folder next to the output
(``.<out>.awq-work``) with the calibration activations that feed the next layer, so ``--resume``
continues from the last finished layer and gives the same bytes as an uninterrupted run.  The output
folder itself appears only when whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..formats.awq_gemm import PACK, pack_gemm
from ..read.awq_artifact import SUMMARY_FILE
from ..read.checkpoint import Checkpoint
from ..read.config import ModelConfig
from ..read.layout import LLM, LLM_LINEARS, VISION, VISION_LAYER_PREFIX, VISION_LINEARS, classify
from ..read.safetensors_file import SafetensorsFile
from .atomic import atomic_dir
from .safetensors_writer import PlannedTensor, write_shard, write_sharded

MAX_SHARD_BYTES = 5 * 10**9
# float16 tensors are converted and written in blocks of about this size.  Small, because glibc keeps
# up to twice its largest recently freed block before trimming: with 16 MB blocks, writing the 1.5 GB
# embeddings held ~115 MB above the layer it started from; with 4 MB, a quarter of that.
BLOCK_BYTES = 4 << 20
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                "added_tokens.json", "generation_config.json", "preprocessor_config.json", "chat_template.json",
                "chat_template.jinja")
LINEARS = {LLM: LLM_LINEARS, VISION: VISION_LINEARS}

__all__ = ["SUMMARY_FILE", "AWQLayout", "WorkDir", "as_float16", "assemble", "pack_linear", "plan_awq",
           "quantization_config"]


@dataclass(frozen=True)
class AWQLayout:
    """Which layers of an AWQ folder are packed: every decoder layer, and the vision tower's layers when
    ``vision`` (but those in ``vision_fp16_layers``)."""

    group_size: int = 128
    vision: bool = True
    vision_fp16_layers: tuple[int, ...] = ()

    def packed_units(self, cfg: ModelConfig) -> list[str]:
        """Units whose linears are quantized, in the order calibration visits them."""
        vision = [f"vision.layer.{i}" for i in range(cfg.vision.num_layers)
                  if self.vision and i not in self.vision_fp16_layers]
        return vision + [f"llm.layer.{i}" for i in range(cfg.llm.num_layers)]

    def not_converted(self, cfg: ModelConfig) -> list[str]:
        """``modules_to_not_convert``: every module with linears that stays float."""
        vision = ["vision_model"] if not self.vision else \
            [VISION_LAYER_PREFIX.format(i) for i in sorted(self.vision_fp16_layers) if i < cfg.vision.num_layers]
        return vision + ["mlp1", "language_model.lm_head"]


def pack_linear(base: str, q: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor) -> dict[str, torch.Tensor]:
    """One quantized linear as stored: ``<base>.qweight`` / ``.qzeros`` / ``.scales`` (AutoAWQ GEMM)."""
    packed = pack_gemm(q.cpu(), zeros.cpu(), scales.cpu())
    return {f"{base}.{k}": v for k, v in packed.items()}


def as_float16(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors a quantized layer keeps in float (norms, biases, layer scales), as stored."""
    return {k: v.to(torch.float16).cpu() for k, v in tensors.items()}


def quantization_config(cfg: ModelConfig, layout: AWQLayout) -> dict[str, Any]:
    return {"quant_method": "awq", "bits": 4, "group_size": layout.group_size, "zero_point": True,
            "version": "gemm", "modules_to_not_convert": layout.not_converted(cfg)}


class WorkDir:
    """Per-layer results and the activations between layers, for ``--resume``.

    ``state.json`` holds the run's key, the finished units in order (``done``), their reports, and
    which stack the saved activations (``states.safetensors``) feed next."""

    def __init__(self, out: Path):
        self.path = out.with_name(f".{out.name}.awq-work")

    def state(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def start(self, key: dict[str, Any]) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self._write_state({"key": key, "done": [], "reports": []})

    def set_calibration(self, calibration: dict[str, Any]) -> None:
        """What the calibration inputs hold (samples, tokens), for the report."""
        state = self.state() or {}
        state["calibration"] = calibration
        self._write_state(state)

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.path / "state.json.tmp"
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.path / "state.json")

    def _save(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        """One tensor at a time (``safetensors.torch.save_file`` would hold a bytes copy of them all)."""
        tmp = self.path / (name + ".tmp")
        names = sorted(tensors)
        plan = [PlannedTensor(n, tensors[n].dtype, tuple(tensors[n].shape)) for n in names]
        write_shard(tmp, plan, lambda t: tensors[t.name])
        os.replace(tmp, self.path / name)

    def _load(self, name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
        f = SafetensorsFile(self.path / name)
        return {n: f.read(n).to(device) for n in sorted(f.tensors)}

    def layer_done(self, unit: str, tensors: dict[str, torch.Tensor] | None, states: list[torch.Tensor],
                   report: dict[str, Any]) -> None:
        """Persist ``unit`` (None: a layer kept in float, nothing to save) and the states it produced; the
        state moves on only once both files are whole."""
        if tensors is not None:
            self._save(self.layer_path(unit).name, tensors)
        self._save("states.safetensors", {f"s{i:06d}": x for i, x in enumerate(states)})
        state = self.state() or {}
        state["done"] = [*state.get("done", []), unit]
        state["states_of"] = unit
        state.setdefault("reports", []).append(report)
        self._write_state(state)

    def states(self, device: str) -> list[torch.Tensor]:
        """The activations the last finished unit produced."""
        return list(self._load("states.safetensors", device).values())

    def layer_path(self, unit: str) -> Path:
        return self.path / f"{unit}.safetensors"

    def layer_tensors(self, unit: str) -> dict[str, torch.Tensor]:
        return self._load(self.layer_path(unit).name)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def plan_awq(ckpt: Checkpoint, layout: AWQLayout) -> list[PlannedTensor]:
    """Every tensor of the AWQ folder, in file order, from the checkpoint's metadata alone: each packed
    linear as its GEMM triple (``qweight`` int32 [K, N/8], ``qzeros`` int32 [K/G, N/8], ``scales`` float16
    [K/G, N]; a packed layer's tensors sorted by name), everything else float16 in its own shape."""
    G = layout.group_size
    packed = set(layout.packed_units(ckpt.config))
    plan: list[PlannedTensor] = []
    for unit in ckpt.unit_names():
        if unit not in packed:
            plan += [PlannedTensor(n, torch.float16, ckpt.info(n).shape) for n in ckpt.units[unit]]
            continue
        linears = LINEARS[ckpt.unit_info[unit].component]
        layer: list[PlannedTensor] = []
        for name in ckpt.units[unit]:
            shape = ckpt.info(name).shape
            base = name.removesuffix(".weight")
            if not (name.endswith(".weight") and base.endswith(linears)):
                layer.append(PlannedTensor(name, torch.float16, shape))
                continue
            n, k = shape
            layer += [PlannedTensor(base + ".qweight", torch.int32, (k, n // PACK)),
                      PlannedTensor(base + ".qzeros", torch.int32, (k // G, n // PACK)),
                      PlannedTensor(base + ".scales", torch.float16, (k // G, n))]
        plan += sorted(layer, key=lambda t: t.name)
    return plan


def assemble(ckpt: Checkpoint, work: WorkDir, out: Path, layout: AWQLayout, overwrite: bool,
             on_tensor: Callable[[PlannedTensor], None] | None = None,
             extra_files: dict[str, str] | None = None) -> list[str]:
    """Write the final folder from the source (float16 parts) and the work folder (packed layers)."""
    plan = plan_awq(ckpt, layout)
    packed = set(layout.packed_units(ckpt.config))
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def source_blocks(t: PlannedTensor) -> Iterator[torch.Tensor]:
        """The source tensor in float16, in blocks of rows (the embeddings are 1.5 GB a copy)."""
        rows = t.shape[0]
        step = max(1, BLOCK_BYTES // max(1, t.nbytes // max(1, rows)))
        for r0 in range(0, rows, step):
            yield ckpt.read_rows(t.name, r0, r0 + step).to(torch.float16)

    def produce(t: PlannedTensor) -> torch.Tensor | Iterator[torch.Tensor]:
        unit = classify(t.name).name
        if unit in packed:
            if unit not in cache:
                cache.clear()  # one layer in memory at a time
                cache[unit] = work.layer_tensors(unit)
            return cache[unit][t.name]
        if not t.shape:
            return ckpt.read_tensor(t.name).to(torch.float16)
        return source_blocks(t)

    with atomic_dir(out, overwrite=overwrite) as tmp:
        shards = write_sharded(tmp, plan, produce, MAX_SHARD_BYTES, on_tensor)
        config = dict(ckpt.config.raw)
        config["torch_dtype"] = "float16"
        config["quantization_config"] = quantization_config(ckpt.config, layout)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for f in sorted(ckpt.dir.iterdir()):
            if f.is_file() and (f.name in COPIED_FILES or f.suffix == ".py"):
                shutil.copyfile(f, tmp / f.name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return shards
