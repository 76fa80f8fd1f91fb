"""``config.json`` of an InternVL-style chat checkpoint, parsed into typed objects.

Every size the tool uses is read from here; nothing assumes the 38B widths.
Skywork's releases have been seen with ``architectures`` ``SkyworkR1VChatModel``
(model_type ``skywork_chat``) and, patched, ``InternVLChatModel``
(``internvl_chat``).  The language-model block is ``llm_config`` in the original
code and ``text_config`` in some converted copies; both are accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # InternVL's normalisation, when preprocessor_config.json has none
IMAGENET_STD = (0.229, 0.224, 0.225)

CHAT_ARCHITECTURES = {"SkyworkR1VChatModel", "InternVLChatModel"}
CHAT_MODEL_TYPES = {"skywork_chat", "internvl_chat"}
LLM_ARCHITECTURES = {"Qwen2ForCausalLM"}
VISION_ARCHITECTURES = {"InternVisionModel"}
VISION_NORMS = {"rms_norm", "layer_norm"}
PS_VERSIONS = {"v1", "v2"}


@dataclass(frozen=True)
class LLMConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool


@dataclass(frozen=True)
class VisionConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    patch_size: int
    image_size: int
    num_channels: int
    norm_type: str  # "rms_norm" (InternViT-6B) or "layer_norm" (smaller InternViTs)
    layer_norm_eps: float
    qk_normalization: bool
    qkv_bias: bool

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class ModelConfig:
    path: Path
    raw: dict[str, Any]
    architecture: str
    model_type: str
    llm: LLMConfig
    vision: VisionConfig
    downsample_ratio: float
    image_size: int  # force_image_size, else the tower's own
    select_layer: int
    ps_version: str
    dynamic_image_size: bool
    use_thumbnail: bool
    min_dynamic_patch: int
    max_dynamic_patch: int
    template: str | None
    image_mean: tuple[float, float, float] = IMAGENET_MEAN  # preprocessor_config.json's, ImageNet's by default
    image_std: tuple[float, float, float] = IMAGENET_STD

    @property
    def llm_key(self) -> str:
        return "llm_config" if "llm_config" in self.raw else "text_config"

    @property
    def shuffle_scale(self) -> int:
        """Pixel-shuffle factor: 2 for downsample_ratio 0.5."""
        return round(1 / self.downsample_ratio)

    @property
    def projector_in(self) -> int:
        return self.vision.hidden_size * self.shuffle_scale**2

    @property
    def tokens_per_tile(self) -> int:
        side = self.image_size // self.vision.patch_size // self.shuffle_scale
        return side * side


class _Fields:
    """Typed access to one JSON object, errors naming ``config.json`` and the key."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]):
        self.path, self.where, self.data = path, where, data

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.path}: {self._name(key)} {problem}")

    def get(self, key: str, kind: type, default: Any = ..., *aliases: str) -> Any:
        for k in (key, *aliases):
            if k in self.data and self.data[k] is not None:
                value = self.data[k]
                break
        else:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"should be {kind.__name__}, got {value!r}")
        if kind in (int, float) and not isinstance(value, bool) and key not in ("select_layer",) and value <= 0:
            raise self.fail(key, f"should be positive, got {value!r}")
        return value


def _architectures(obj: dict[str, Any]) -> list[str]:
    arch = obj.get("architectures") or []
    return [arch] if isinstance(arch, str) else list(arch)


def _parse_llm(path: Path, where: str, data: dict[str, Any]) -> LLMConfig:
    f = _Fields(path, where, data)
    arch = _architectures(data)
    # architectures decide when given; model_type only when they are absent
    if not (set(arch) & LLM_ARCHITECTURES if arch else data.get("model_type") == "qwen2"):
        shown = ", ".join(arch) or data.get("model_type") or "unknown"
        raise InputError(
            f"{path}: unsupported language model '{shown}' in {where} (expected Qwen2ForCausalLM)"
        )
    hidden = f.get("hidden_size", int)
    heads = f.get("num_attention_heads", int)
    kv_heads = f.get("num_key_value_heads", int, heads)
    head_dim = f.get("head_dim", int, hidden // heads)
    if heads % kv_heads:
        raise f.fail("num_key_value_heads", f"({kv_heads}) does not divide num_attention_heads ({heads})")
    rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
    rope_theta = data.get("rope_theta", rope.get("rope_theta", 10000.0) if isinstance(rope, dict) else 10000.0)
    return LLMConfig(
        hidden_size=hidden,
        num_layers=f.get("num_hidden_layers", int),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=f.get("intermediate_size", int),
        vocab_size=f.get("vocab_size", int),
        rms_norm_eps=f.get("rms_norm_eps", float, 1e-6),
        rope_theta=float(rope_theta),
        max_position_embeddings=f.get("max_position_embeddings", int, 32768),
        tie_word_embeddings=bool(data.get("tie_word_embeddings", False)),
    )


def _parse_vision(path: Path, data: dict[str, Any]) -> VisionConfig:
    f = _Fields(path, "vision_config", data)
    arch = _architectures(data)
    if arch and not set(arch) & VISION_ARCHITECTURES:
        raise InputError(
            f"{path}: unsupported vision tower '{', '.join(arch)}' in vision_config (expected InternVisionModel)"
        )
    norm = f.get("norm_type", str, "rms_norm")
    if norm not in VISION_NORMS:
        raise f.fail("norm_type", f"should be one of {sorted(VISION_NORMS)}, got {norm!r}")
    hidden = f.get("hidden_size", int)
    heads = f.get("num_attention_heads", int)
    if hidden % heads:
        raise f.fail("num_attention_heads", f"({heads}) does not divide hidden_size ({hidden})")
    return VisionConfig(
        hidden_size=hidden,
        num_layers=f.get("num_hidden_layers", int),
        num_heads=heads,
        intermediate_size=f.get("intermediate_size", int),
        patch_size=f.get("patch_size", int),
        image_size=f.get("image_size", int),
        num_channels=f.get("num_channels", int, 3),
        norm_type=norm,
        layer_norm_eps=f.get("layer_norm_eps", float, 1e-6),
        qk_normalization=bool(data.get("qk_normalization", False)),
        qkv_bias=bool(data.get("qkv_bias", False)),
    )


def load_config(model_dir: Path) -> ModelConfig:
    """Parse ``model_dir/config.json``; raise :class:`InputError` on anything unusable."""
    path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config.json not found (is this a model folder?)") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a JSON object")
    return parse_config(raw, path, _preprocessor(Path(model_dir) / "preprocessor_config.json"))


def _preprocessor(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def _normalization(path: Path, pre: dict[str, Any], key: str, default: tuple[float, float, float]
                   ) -> tuple[float, float, float]:
    value = pre.get(key, default)
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{path.with_name('preprocessor_config.json')}: {key} should be 3 numbers, got {value!r}")
    if key == "image_std" and not all(v > 0 for v in value):
        raise InputError(f"{path.with_name('preprocessor_config.json')}: {key} should be positive, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


# What the forward engine implements, as (where, key, accepted values, default): a checkpoint asking for
# anything else is refused by every command, rather than run silently wrong.
SUPPORTED: list[tuple[str, str, tuple[Any, ...], Any]] = [
    ("llm", "rope_scaling", (None, "default"), None),  # the rope type; scaled RoPE is not implemented
    ("llm", "rope_parameters", (None, "default"), None),
    ("llm", "hidden_act", ("silu",), "silu"),
    ("llm", "use_sliding_window", (False,), False),
    ("vision", "hidden_act", ("gelu",), "gelu"),  # exact (erf) GELU
    ("", "select_layer", (-1,), -1),  # the tower's last layer feeds the projector
]


def _rope_type(value: Any) -> Any:
    return value.get("rope_type", value.get("type")) if isinstance(value, dict) else value


def check_supported(raw: dict[str, Any], path: Path) -> None:
    """One line naming the first key whose value the engine does not implement."""
    llm_key = "llm_config" if "llm_config" in raw else "text_config"
    where = {"llm": (llm_key, raw.get(llm_key) or {}), "vision": ("vision_config", raw.get("vision_config") or {}),
             "": ("", raw)}
    for part, key, accepted, default in SUPPORTED:
        name, obj = where[part]
        value = obj.get(key, default)
        shown = _rope_type(value) if key.startswith("rope_") else value
        if shown not in accepted:
            full = f"{name}.{key}" if name else key
            raise InputError(f"{path}: {full} is {value!r}, which r1v-quant does not implement "
                             f"(supported: {', '.join(repr(a) for a in accepted)})")


def parse_config(raw: dict[str, Any], path: Path, preprocessor: dict[str, Any] | None = None) -> ModelConfig:
    """Check and type a config dict (``config.json``, or one rebuilt from a GGUF file's keys) and the image
    normalisation (``preprocessor_config.json``'s, or a GGUF file's); ``path`` is what errors name."""
    arch = _architectures(raw)
    model_type = raw.get("model_type", "")
    if not (set(arch) & CHAT_ARCHITECTURES if arch else model_type in CHAT_MODEL_TYPES):
        shown = ", ".join(arch) or model_type or "none given"
        raise InputError(
            f"{path}: unsupported architecture '{shown}' "
            f"(expected {' or '.join(sorted(CHAT_ARCHITECTURES))})"
        )
    llm_key = "llm_config" if "llm_config" in raw else "text_config"
    for key in (llm_key, "vision_config"):
        if not isinstance(raw.get(key), dict):
            raise InputError(f"{path}: {key} is missing (llm_config or text_config, and vision_config, are required)")

    llm = _parse_llm(path, llm_key, raw[llm_key])
    vision = _parse_vision(path, raw["vision_config"])
    check_supported(raw, path)
    pre = preprocessor or {}
    top = _Fields(path, "", raw)
    ps_version = top.get("ps_version", str, "v1")
    if ps_version not in PS_VERSIONS:
        raise top.fail("ps_version", f"should be v1 or v2, got {ps_version!r}")
    downsample = top.get("downsample_ratio", float, 0.5)
    scale = 1 / downsample
    if abs(scale - round(scale)) > 1e-6:
        raise top.fail("downsample_ratio", f"must be 1/integer, got {downsample}")
    image_size = top.get("force_image_size", int, vision.image_size)
    side = image_size // vision.patch_size
    if image_size % vision.patch_size or side % round(scale):
        raise top.fail("force_image_size", f"({image_size}) does not tile into patches and pixel-shuffle groups")
    return ModelConfig(
        path=path,
        raw=raw,
        architecture=arch[0] if arch else model_type,
        model_type=model_type,
        llm=llm,
        vision=vision,
        downsample_ratio=downsample,
        image_size=image_size,
        select_layer=top.get("select_layer", int, -1),
        ps_version=ps_version,
        dynamic_image_size=bool(raw.get("dynamic_image_size", False)),
        use_thumbnail=bool(raw.get("use_thumbnail", False)),
        min_dynamic_patch=top.get("min_dynamic_patch", int, 1),
        max_dynamic_patch=top.get("max_dynamic_patch", int, 6),
        template=raw.get("template"),
        image_mean=_normalization(path, pre, "image_mean", IMAGENET_MEAN),
        image_std=_normalization(path, pre, "image_std", IMAGENET_STD),
    )
