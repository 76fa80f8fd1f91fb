"""Write a demo checkpoint with the real Skywork-R1V layout.

Same config keys and nesting as Skywork's ``config.json``, sharded safetensors
with an index, the real Qwen2 tokenizer, generation and preprocessor configs,
and the custom-code file names a real checkpoint carries (as placeholders).
The tensor list comes from the reader's own layout table, so demo checkpoints
and the reader cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..read.config import IMAGENET_MEAN, IMAGENET_STD, load_config
from ..read.layout import expected_tensors
from ..write.atomic import atomic_dir
from ..write.safetensors_writer import PlannedTensor, write_sharded
from .presets import Preset
from .tokenizer import added_tokens, token_id, write_tokenizer_files
from .weights import make_tensor

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
CUSTOM_CODE_FILES = [
    "configuration_intern_vit.py",
    "configuration_skywork_chat.py",
    "modeling_intern_vit.py",
    "modeling_skywork_chat.py",
    "conversation.py",
]
PLACEHOLDER_CODE = (
    '"""Placeholder written by r1v-quant demo-checkpoint.\n\n'
    "A real Skywork-R1V checkpoint carries its remote-code file of this name here;\n"
    "r1v-quant never executes it, it only copies it into the outputs.\n"
    '"""\n'
)


def config_dict(preset: Preset, seed: int) -> dict[str, Any]:
    v, l = preset.vision, preset.llm
    dtype = TORCH_DTYPE_NAMES[preset.dtype]
    endoftext = token_id("<|endoftext|>")
    return {
        "_name_or_path": f"r1v-quant-demo-{preset.name}",
        "architectures": ["SkyworkR1VChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_skywork_chat.SkyworkChatConfig",
            "AutoModel": "modeling_skywork_chat.SkyworkR1VChatModel",
            "AutoModelForCausalLM": "modeling_skywork_chat.SkyworkR1VChatModel",
        },
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": v.image_size,
        "llm_config": {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": endoftext,
            "eos_token_id": endoftext,
            "hidden_act": "silu",
            "hidden_size": l.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": l.intermediate_size,
            "max_position_embeddings": 32768,
            "max_window_layers": l.num_layers,
            "model_type": "qwen2",
            "num_attention_heads": l.num_heads,
            "num_hidden_layers": l.num_layers,
            "num_key_value_heads": l.num_kv_heads,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": False,
            "torch_dtype": dtype,
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": l.vocab_size,
        },
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "model_type": "skywork_chat",
        "ps_version": preset.ps_version,
        "select_layer": -1,
        "template": "skywork-r1v-chat",
        "torch_dtype": dtype,
        "transformers_version": "4.51.3",
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "attention_dropout": 0.0,
            "drop_path_rate": 0.0,
            "dropout": 0.0,
            "hidden_act": "gelu",
            "hidden_size": v.hidden_size,
            "image_size": v.image_size,
            "initializer_factor": 0.1,
            "initializer_range": 1e-10,
            "intermediate_size": v.intermediate_size,
            "layer_norm_eps": 1e-06,
            "model_type": "intern_vit_6b",
            "norm_type": v.norm_type,
            "num_attention_heads": v.num_heads,
            "num_channels": 3,
            "num_hidden_layers": v.num_layers,
            "patch_size": v.patch_size,
            "qk_normalization": v.qk_normalization,
            "qkv_bias": v.qkv_bias,
            "torch_dtype": dtype,
            "use_flash_attn": False,
        },
        # Marks a generated checkpoint; real ones have no such key.
        "r1v_quant_demo": {"preset": preset.name, "seed": seed},
    }


def _side_files(out: Path, preset: Preset) -> None:
    im_end, endoftext = token_id("<|im_end|>"), token_id("<|endoftext|>")
    generation = {"bos_token_id": endoftext, "eos_token_id": [im_end, endoftext], "pad_token_id": endoftext,
                  "do_sample": True, "temperature": 0.6, "top_p": 0.95}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    size = preset.vision.image_size
    preprocessor = {"crop_size": size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                    "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD), "resample": 3, "size": size}
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    for name in CUSTOM_CODE_FILES:
        (out / name).write_text(PLACEHOLDER_CODE)
    write_tokenizer_files(out, model_max_length=32768)


def build_demo_checkpoint(out: Path, preset: Preset, seed: int = 0, outlier_scale: float = 1.0,
                          overwrite: bool = False, logit_scale: float = 1.0,
                          on_tensor: Callable[[PlannedTensor], None] | None = None,
                          weights: Callable[[str], torch.Tensor] | None = None,
                          demo_info: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint to ``out`` (atomically) and return its path.  ``weights(name)``: the
    tensors to write instead of the seeded random ones (a trained checkpoint), cast to the preset's
    dtype; ``demo_info``: more keys for the config's ``r1v_quant_demo`` entry (how they were made)."""
    if preset.llm.vocab_size < added_tokens()[-1][0] + 1:
        raise ValueError("vocab_size smaller than the tokenizer")
    dtype = DTYPES[preset.dtype]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        config = config_dict(preset, seed)
        config["r1v_quant_demo"].update(demo_info or {})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        cfg = load_config(tmp)
        plan = [PlannedTensor(name, dtype, shape) for name, shape in expected_tensors(cfg).items()]

        def tensor(t: PlannedTensor) -> torch.Tensor:
            if weights is not None:
                return weights(t.name).to(t.dtype)
            return make_tensor(t.name, t.shape, t.dtype, seed, outlier_scale, logit_scale)

        write_sharded(tmp, plan, tensor, preset.shard_bytes, on_tensor)
        _side_files(tmp, preset)
    return Path(out)


def planned_bytes(preset: Preset) -> int:
    """Size of the weights a preset writes, without writing them (for progress bars)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(config_dict(preset, 0)))
        cfg = load_config(Path(d))
    size = DTYPES[preset.dtype].itemsize
    total = 0
    for shape in expected_tensors(cfg).values():
        n = size
        for s in shape:
            n *= s
        total += n
    return total
