"""Demo checkpoint presets, as data.

* ``tiny``: seconds to build; LayerNorm vision tower with qkv bias, the kind
  llama.cpp's InternVL graph runs at small widths, 128 wide so that AWQ's groups
  of 128 fit its linears as they fit InternViT-6B's 3200.  3 LLM layers with 640-wide
  MLP rows, so GGUF K-quant fallbacks are exercised.  4 vision layers, the
  fewest llama.cpp's converter accepts (it maps ``mlp1.N`` only for N < layers).
* ``tiny-rms``: same, but RMSNorm + q/k norm over the full width, no qkv bias,
  like InternViT-6B.
* ``slice``: the real 38B widths (vision 3200/25 heads/12800, LLM
  5120/40/8 heads/27648, real vocabulary) with 2 + 2 layers, for benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

QWEN2_PADDED_VOCAB = 152064  # embedding rows of the 32B Qwen2 models


@dataclass(frozen=True)
class VisionPreset:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    norm_type: str
    qk_normalization: bool
    qkv_bias: bool
    patch_size: int = 14
    image_size: int = 448


@dataclass(frozen=True)
class LLMPreset:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int = QWEN2_PADDED_VOCAB


@dataclass(frozen=True)
class Preset:
    name: str
    vision: VisionPreset
    llm: LLMPreset
    shard_bytes: int
    ps_version: str = "v2"
    dtype: str = "bf16"

    def with_overrides(self, vision_layers: int | None = None, llm_layers: int | None = None,
                       ps_version: str | None = None, dtype: str | None = None) -> Preset:
        vision = replace(self.vision, num_layers=vision_layers) if vision_layers else self.vision
        llm = replace(self.llm, num_layers=llm_layers) if llm_layers else self.llm
        return replace(self, vision=vision, llm=llm, ps_version=ps_version or self.ps_version,
                       dtype=dtype or self.dtype)


_TINY_LLM = LLMPreset(hidden_size=256, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=640)
_MB = 1 << 20

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        VisionPreset(128, 4, 4, 256, norm_type="layer_norm", qk_normalization=False, qkv_bias=True),
        _TINY_LLM,
        shard_bytes=48 * _MB,
    ),
    "tiny-rms": Preset(
        "tiny-rms",
        VisionPreset(128, 4, 4, 256, norm_type="rms_norm", qk_normalization=True, qkv_bias=False),
        _TINY_LLM,
        shard_bytes=48 * _MB,
    ),
    "slice": Preset(
        "slice",
        VisionPreset(3200, 2, 25, 12800, norm_type="rms_norm", qk_normalization=True, qkv_bias=False),
        LLMPreset(hidden_size=5120, num_layers=2, num_heads=40, num_kv_heads=8, intermediate_size=27648),
        shard_bytes=4 * 1024 * _MB,
    ),
}
