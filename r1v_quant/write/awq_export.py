"""The AWQ output folder, and the resumable work folder it is built from.

Layout, as Skywork's own AWQ release and vLLM / LMDeploy expect it: the source
``config.json`` plus a top-level ``quantization_config``; each quantized linear
as ``<name>.qweight`` / ``.qzeros`` / ``.scales`` (AutoAWQ GEMM packing) and
``.bias``; everything else (vision tower, projector, embeddings, norms,
``lm_head``) in float16; shards of at most 5 GB with an index; tokenizer,
preprocessor, generation config and remote-code files copied.

While the run goes, every finished decoder layer is saved in a work folder next
to the output (``.<out>.awq-work``) with the calibration activations that feed
the next layer, so ``--resume`` continues from the last finished layer and gives
the same bytes as an uninterrupted run.  The output folder itself appears only
when whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..formats.awq_gemm import PACK, pack_gemm
from ..read.awq_artifact import SUMMARY_FILE
from ..read.checkpoint import Checkpoint
from ..read.layout import LLM_LINEARS, classify
from .atomic import atomic_dir
from .safetensors_writer import PlannedTensor, write_sharded

MAX_SHARD_BYTES = 5 * 10**9
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                "added_tokens.json", "generation_config.json", "preprocessor_config.json", "chat_template.json",
                "chat_template.jinja")
NOT_CONVERTED = ["vision_model", "mlp1", "language_model.lm_head"]


__all__ = ["SUMMARY_FILE", "WorkDir", "assemble", "pack_layer", "plan_awq", "quantization_config"]


def pack_layer(prefix: str, quantized: dict[str, Any], norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One quantized layer as stored: each linear's GEMM triple (and bias) in float16, the folded norms."""
    out = {k: v.to(torch.float16).cpu() for k, v in norms.items()}
    for name, ql in quantized.items():
        base = prefix + name
        packed = pack_gemm(ql.q.cpu(), ql.zeros.cpu(), ql.scales.cpu())
        out[base + ".qweight"] = packed["qweight"]
        out[base + ".qzeros"] = packed["qzeros"]
        out[base + ".scales"] = packed["scales"]
        if ql.bias is not None:
            out[base + ".bias"] = ql.bias.to(torch.float16).cpu()
    return out


def quantization_config(group_size: int) -> dict[str, Any]:
    return {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True, "version": "gemm",
            "modules_to_not_convert": list(NOT_CONVERTED)}


class WorkDir:
    """Per-layer results and the activations between layers, for ``--resume``."""

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
        self._write_state({"key": key, "done": 0})

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
        tmp = self.path / (name + ".tmp")
        save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, self.path / name)

    def layer_done(self, layer: int, tensors: dict[str, torch.Tensor], hidden: list[torch.Tensor],
                   report: dict[str, Any]) -> None:
        """Persist layer ``layer``; the state flips to the next layer only once both files are whole."""
        self._save(self.layer_path(layer).name, tensors)
        self._save("hidden.safetensors", {f"h{i:06d}": h for i, h in enumerate(hidden)})
        state = self.state() or {}
        state["done"] = layer + 1
        state.setdefault("reports", []).append(report)
        self._write_state(state)

    def hidden(self, device: str) -> list[torch.Tensor]:
        data = load_file(str(self.path / "hidden.safetensors"))
        return [data[k].to(device) for k in sorted(data)]

    def layer_path(self, layer: int) -> Path:
        return self.path / f"layer-{layer:05d}.safetensors"

    def layer_tensors(self, layer: int) -> dict[str, torch.Tensor]:
        return load_file(str(self.layer_path(layer)))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _is_packed(name: str, linears: tuple[str, ...]) -> bool:
    return name.endswith(".weight") and name.removesuffix(".weight").endswith(linears)


def plan_awq(ckpt: Checkpoint, group_size: int) -> list[PlannedTensor]:
    """Every tensor of the AWQ folder, in file order, from the checkpoint's metadata alone: each decoder
    linear as its GEMM triple (``qweight`` int32 [K, N/8], ``qzeros`` int32 [K/G, N/8], ``scales`` float16
    [K/G, N]; a packed layer's tensors sorted by name), everything else float16 in its own shape."""
    plan: list[PlannedTensor] = []
    for unit in ckpt.unit_names():
        if not unit.startswith("llm.layer."):
            plan += [PlannedTensor(n, torch.float16, ckpt.info(n).shape) for n in ckpt.units[unit]]
            continue
        layer: list[PlannedTensor] = []
        for name in ckpt.units[unit]:
            shape = ckpt.info(name).shape
            if not _is_packed(name, LLM_LINEARS):
                layer.append(PlannedTensor(name, torch.float16, shape))
                continue
            n, k = shape
            base = name.removesuffix(".weight")
            layer += [PlannedTensor(base + ".qweight", torch.int32, (k, n // PACK)),
                      PlannedTensor(base + ".qzeros", torch.int32, (k // group_size, n // PACK)),
                      PlannedTensor(base + ".scales", torch.float16, (k // group_size, n))]
        plan += sorted(layer, key=lambda t: t.name)
    return plan


def assemble(ckpt: Checkpoint, work: WorkDir, out: Path, group_size: int, overwrite: bool,
             on_tensor: Callable[[PlannedTensor], None] | None = None,
             extra_files: dict[str, str] | None = None) -> list[str]:
    """Write the final folder from the source (float16 parts) and the work folder (decoder layers)."""
    plan = plan_awq(ckpt, group_size)
    cache: dict[int, dict[str, torch.Tensor]] = {}

    def produce(t: PlannedTensor) -> torch.Tensor:
        layer = classify(t.name).layer if t.name.startswith("language_model.model.layers.") else None
        if layer is not None:
            if layer not in cache:
                cache.clear()  # one layer in memory at a time
                cache[layer] = work.layer_tensors(layer)
            return cache[layer][t.name]
        return ckpt.read_tensor(t.name).to(torch.float16)

    with atomic_dir(out, overwrite=overwrite) as tmp:
        shards = write_sharded(tmp, plan, produce, MAX_SHARD_BYTES, on_tensor)
        config = dict(ckpt.config.raw)
        config["torch_dtype"] = "float16"
        config["quantization_config"] = quantization_config(group_size)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for f in sorted(ckpt.dir.iterdir()):
            if f.is_file() and (f.name in COPIED_FILES or f.suffix == ".py"):
                shutil.copyfile(f, tmp / f.name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return shards
