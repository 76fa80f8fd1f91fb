"""Full-size checkpoints with real headers and sparse (all-zero, unallocated) tensor data.

They let metadata-only commands (``inspect``) run on the real 38B geometry (77 GB
of logical size) in a test, without the disk space.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from r1v_quant.demo.build import config_dict
from r1v_quant.demo.presets import LLMPreset, Preset, VisionPreset
from r1v_quant.read.config import load_config
from r1v_quant.read.layout import expected_tensors
from r1v_quant.write.safetensors_writer import PlannedTensor, encode_header, plan_shards, shard_file_names

R1V_38B = Preset(
    "r1v-38b",
    VisionPreset(3200, 45, 25, 12800, norm_type="rms_norm", qk_normalization=True, qkv_bias=False),
    LLMPreset(hidden_size=5120, num_layers=64, num_heads=40, num_kv_heads=8, intermediate_size=27648),
    shard_bytes=5 * 10**9,
    ps_version="v1",
)


def write_sparse_checkpoint(out: Path, preset: Preset = R1V_38B) -> Path:
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config_dict(preset, 0), indent=2))
    cfg = load_config(out)
    plan = [PlannedTensor(n, torch.bfloat16, s) for n, s in expected_tensors(cfg).items()]
    shards = plan_shards(plan, preset.shard_bytes)
    names = shard_file_names(len(shards))
    for name, shard in zip(names, shards):
        header = encode_header(shard, {"format": "pt"})
        with open(out / name, "wb") as f:
            f.write(header)
            f.truncate(len(header) + sum(t.nbytes for t in shard))
    index = {"metadata": {}, "weight_map": {t.name: n for n, s in zip(names, shards) for t in s}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return out
