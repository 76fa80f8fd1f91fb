"""A GGUF pair (llama.cpp language model + mmproj) read back as float weights.

The model's shape is rebuilt from the files' own keys (``qwen2.*``, ``clip.vision.*``)
into the same typed config a checkpoint gives, through the same parser; tensor names
map back through the table the exporter uses (:mod:`r1v_quant.formats.gguf_names`,
InternViT's q/k/v joined again into ``qkv``); every tensor is dequantized from its
ggml blocks by gguf-py (``gguf.quants.dequantize``, an implementation independent of
ours) after a positioned read of just its bytes, so walking the model never maps a
whole file into memory.

What the keys cannot say, the tensors do: the vision norm is LayerNorm when the
norms carry a bias (RMSNorm otherwise), q/k norms and the qkv bias exist when their
tensors do, the LM head is tied when there is no ``output.weight``.  Tiling is
InternVL's: dynamic with a thumbnail, tile limits from ``clip.vision.preproc_*_tiles``.

A file exported with ``--roll-pos-embd`` stores the position table rolled for
llama.cpp's graph; its side file (``<name>.r1v.json``, written by ``r1v-quant gguf``)
says so and the table is rolled back here.  Without a side file the table is taken
as stored (the converter's order).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..formats.gguf_names import gguf_name, sidecar_path
from .checkpoint import Place, Unit
from .config import ModelConfig, parse_config
from .files import read_json_object
from .layout import LLM, classify, expected_tensors, walk_order
from .finite import check_finite
from .sources import GGUF

POSITION_TABLE = "vision_model.embeddings.position_embedding"


def _reader(path: Path, arch: str) -> Any:
    from gguf import GGUFReader

    try:
        r = GGUFReader(path, "r")
    except (ValueError, OSError, IndexError) as e:
        raise InputError(f"{path}: not a readable GGUF file ({e})") from None
    got = _value(r, "general.architecture", path)
    if got != arch:
        raise InputError(f"{path}: general.architecture is {got!r}, expected {arch!r}")
    return r


def _value(r: Any, key: str, path: Path, default: Any = ...) -> Any:
    field = r.fields.get(key)
    if field is None:
        if default is ...:
            raise InputError(f"{path}: key '{key}' is missing")
        return default
    return field.contents()


def find_mmproj(llm_path: Path) -> Path | None:
    found = sorted(llm_path.parent.glob("mmproj-*.gguf"))
    return found[0] if len(found) == 1 else None


def _config(llm: Any, llm_path: Path, mm: Any, mm_path: Path, tensors: dict[str, Any]) -> ModelConfig:
    def g(key: str, default: Any = ...) -> Any:
        return _value(llm, key, llm_path, default)

    def v(key: str, default: Any = ...) -> Any:
        return _value(mm, key, mm_path, default)

    if v("clip.projector_type", "") != "internvl":
        raise InputError(f"{mm_path}: clip.projector_type is {v('clip.projector_type', None)!r}, expected 'internvl'")
    if "token_embd.weight" not in tensors:
        raise InputError(f"{llm_path}: tensor 'token_embd.weight' is missing")
    heads = g("qwen2.attention.head_count")
    hidden = g("qwen2.embedding_length")
    llm_cfg = {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": hidden, "num_hidden_layers": g("qwen2.block_count"),
        "num_attention_heads": heads, "num_key_value_heads": g("qwen2.attention.head_count_kv", heads),
        "head_dim": g("qwen2.attention.key_length", hidden // heads),
        "intermediate_size": g("qwen2.feed_forward_length"),
        "vocab_size": int(tensors["token_embd.weight"].shape[-1]),
        "rms_norm_eps": g("qwen2.attention.layer_norm_rms_epsilon"), "rope_theta": g("qwen2.rope.freq_base"),
        "max_position_embeddings": g("qwen2.context_length"),
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    image_size = v("clip.vision.image_size")
    vision_cfg = {
        "architectures": ["InternVisionModel"], "hidden_size": v("clip.vision.embedding_length"),
        "num_hidden_layers": v("clip.vision.block_count"), "num_attention_heads": v("clip.vision.attention.head_count"),
        "intermediate_size": v("clip.vision.feed_forward_length"), "patch_size": v("clip.vision.patch_size"),
        "image_size": image_size, "layer_norm_eps": v("clip.vision.attention.layer_norm_epsilon"),
        "norm_type": "layer_norm" if "v.blk.0.ln1.bias" in tensors else "rms_norm",
        "qk_normalization": "v.blk.0.attn_q_norm.weight" in tensors,
        "qkv_bias": "v.blk.0.attn_q.bias" in tensors,
    }
    raw = {
        "architectures": ["InternVLChatModel"], "llm_config": llm_cfg, "vision_config": vision_cfg,
        "ps_version": "v2",  # the only pixel-shuffle order llama.cpp's InternVL graph has
        "downsample_ratio": 1.0 / v("clip.vision.projector.scale_factor"), "force_image_size": image_size,
        "dynamic_image_size": True, "use_thumbnail": True,
        "min_dynamic_patch": v("clip.vision.preproc_min_tiles", 1),
        "max_dynamic_patch": v("clip.vision.preproc_max_tiles", 12),
    }
    # stored as float32: the shortest decimal that rounds to it is what preprocessor_config.json said
    normalisation = {k: [float(str(np.float32(x))) for x in v(f"clip.vision.{k}")] for k in ("image_mean", "image_std")}
    return parse_config(raw, llm_path, normalisation)


class GgufArtifact:
    kind = GGUF

    def __init__(self, llm_path: Path, mmproj_path: Path | None = None):
        self.llm_path = Path(llm_path)
        self.mmproj_path = Path(mmproj_path) if mmproj_path else find_mmproj(self.llm_path)
        if self.mmproj_path is None:
            raise InputError(f"{self.llm_path}: no mmproj given and not exactly one mmproj-*.gguf beside it "
                             "(pass --mmproj)")
        if not self.mmproj_path.is_file():
            raise InputError(f"{self.mmproj_path}: no such file")
        self.dir = self.llm_path.parent
        llm = _reader(self.llm_path, "qwen2")
        mm = _reader(self.mmproj_path, "clip")
        self._tensors: dict[str, tuple[Path, Any]] = {}
        for path, r in ((self.llm_path, llm), (self.mmproj_path, mm)):
            for t in r.tensors:
                self._tensors[t.name] = (path, t)
        self.config = _config(llm, self.llm_path, mm, self.mmproj_path,
                              {k: t for k, (_, t) in self._tensors.items()})
        sides = {p: read_json_object(sidecar_path(p)) for p in (self.llm_path, self.mmproj_path)}
        self.rolled = bool(sides[self.mmproj_path].get("options", {}).get("roll_position_embd", False))
        self.provenance = sides[self.llm_path].get("source", {})
        self.names: dict[str, tuple[str, ...]] = {}  # checkpoint name -> GGUF name(s)
        self.units: dict[str, list[str]] = {}
        for name, shape in expected_tensors(self.config).items():
            file = "llm" if classify(name).component == LLM else "mmproj"
            g = gguf_name(name, file)
            if g is None:
                raise AssertionError(f"no GGUF name for {name}")
            for part in g.names:
                if part not in self._tensors:
                    where = self.llm_path if file == "llm" else self.mmproj_path
                    raise InputError(f"{where}: tensor '{part}' is missing")
            count = sum(int(np.prod(self._tensors[p][1].shape)) for p in g.names)
            if count != int(np.prod(shape)):
                raise InputError(f"{self._tensors[g.names[0]][0]}: tensor '{g.names[0]}' has {count} values, "
                                 f"the model's keys imply {list(shape)}")
            self.names[name] = g.names
            self.units.setdefault(classify(name).name, []).append(name)
        self._shapes = expected_tensors(self.config)

    def unit_names(self) -> list[str]:
        return [u for u in walk_order(self.config) if u in self.units]

    def _dequantize(self, gguf: str) -> torch.Tensor:
        from gguf.quants import dequantize

        path, t = self._tensors[gguf]
        raw = np.empty(int(t.n_bytes), dtype=np.uint8)
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < raw.nbytes:
                n = os.preadv(fd, [memoryview(raw)[done:]], int(t.data_offset) + done)
                if n <= 0:
                    raise InputError(f"{path}: truncated while reading tensor '{gguf}'")
                done += n
        finally:
            os.close(fd)
        blocks = raw.view(t.data.dtype).reshape(t.data.shape)
        x = torch.from_numpy(np.ascontiguousarray(dequantize(blocks, t.tensor_type), dtype=np.float32))
        check_finite(path, gguf, x)
        return x

    def load_unit(self, unit: str, place: Place | None = None) -> Unit:
        info = classify(self.units[unit][0])
        out = Unit(unit, info.component, info.layer)
        for name in self.units[unit]:
            shape = self._shapes[name]
            parts = [self._dequantize(g).reshape(-1, *shape[1:]) if len(shape) > 1 else self._dequantize(g).reshape(-1)
                     for g in self.names[name]]
            x = (torch.cat(parts) if len(parts) > 1 else parts[0]).reshape(shape)
            if name == POSITION_TABLE and self.rolled:
                x = torch.cat([x[:, -1:], x[:, :-1]], dim=1)  # class row back in front
            out.tensors[name] = place(x) if place else x
            del parts, x  # before the next read
        return out

    def files(self) -> list[Path]:
        return [self.llm_path, self.mmproj_path]

