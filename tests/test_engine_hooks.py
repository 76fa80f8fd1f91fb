"""Engine hooks (linear inputs, weight replacement), dtypes, and one unit at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from r1v_quant.engine import Engine, EngineOptions, PromptBuilder
from r1v_quant.engine.image import choose_grid, preprocess
from r1v_quant.read import Unit, open_checkpoint
from PIL import Image


def prepared_pair(ckpt, tmp_path: Path):
    img = Image.new("RGB", (500, 300), (10, 200, 30))
    path = tmp_path / "g.png"
    img.save(path)
    b = PromptBuilder(ckpt.dir, ckpt.config, max_tiles=2)
    return [b.prepare("i", [{"role": "user", "content": "<image>\nColour?"},
                            {"role": "assistant", "content": "Green."}], [path]),
            b.prepare("t", [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}], [])]


def run(engine: Engine, prepared) -> list[torch.Tensor]:
    out: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    engine.run(prepared, lambda i, pos, logits: out[i].append(logits))
    return [torch.cat(out[i]) for i in (0, 1)]


def test_hook_sees_the_input_of_every_linear(tiny_rms_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_rms_ckpt)
    prepared = prepared_pair(ckpt, tmp_path)
    seen: dict[str, list[tuple[int, ...]]] = {}
    run(Engine(ckpt, on_linear_input=lambda name, x: seen.setdefault(name, []).append(tuple(x.shape))), prepared)
    linears = {n.removesuffix(".weight") for n in ckpt.tensor_names
               if n.endswith(".weight") and ckpt.info(n).shape.__len__() == 2 and "embed_tokens" not in n}
    assert set(seen) == linears
    # every decoder linear sees both samples, with the right input width
    q = seen["language_model.model.layers.1.self_attn.q_proj"]
    assert len(q) == 2 and all(s[-1] == 256 for s in q)
    assert seen["language_model.model.layers.0.mlp.down_proj"][0][-1] == 640
    assert seen["mlp1.1"][0][-1] == 256


def test_transform_replaces_weights_and_one_unit_is_loaded_at_a_time(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    prepared = prepared_pair(ckpt, tmp_path)
    base = run(Engine(ckpt), prepared)
    loaded: list[str] = []

    def zero_last_layer(unit: Unit) -> Unit:
        loaded.append(unit.name)
        if unit.name == "llm.layer.2":
            unit.tensors = {k: torch.zeros_like(v) if k.endswith("down_proj.weight") else v
                            for k, v in unit.tensors.items()}
        return unit

    changed = run(Engine(ckpt, transform_unit=zero_last_layer), prepared)
    assert not torch.allclose(base[1], changed[1])
    assert loaded == ckpt.unit_names()  # each unit once, in walk order


def test_bfloat16_compute_tracks_float32(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    prepared = prepared_pair(ckpt, tmp_path)
    f32 = run(Engine(ckpt), prepared)
    bf16 = run(Engine(ckpt, EngineOptions(dtype=torch.bfloat16)), prepared)
    for a, b in zip(f32, bf16):
        assert b.dtype == torch.bfloat16
        agree = (a.argmax(-1) == b.float().argmax(-1)).float().mean()
        assert agree > 0.9, agree


def test_tiling_follows_the_reference_rules() -> None:
    assert choose_grid(448, 448, 448, 1, 12) == (1, 1)
    assert choose_grid(1000, 500, 448, 1, 12) == (2, 1)
    assert choose_grid(500, 1000, 448, 1, 12) == (1, 2)
    # a square image larger than one tile: the tie among square grids goes to the larger one
    assert choose_grid(1344, 1344, 448, 1, 12) == (3, 3)
    assert choose_grid(1344, 1344, 448, 1, 6) == (2, 2)
    px = preprocess(Image.new("RGB", (1000, 500), (255, 0, 0)), 448, 1, 12, thumbnail=True)
    assert px.shape == (3, 3, 448, 448)  # 2 tiles + thumbnail
    red = (1.0 - 0.485) / 0.229
    assert torch.allclose(px[:, 0], torch.full_like(px[:, 0], red), atol=1e-5)
