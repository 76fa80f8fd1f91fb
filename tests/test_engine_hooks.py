"""The engine's layer walk and its hooks (inputs, outputs, other weights), dtypes, and one unit at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from r1v_quant.engine import Engine, EngineOptions, LayerCall, LayerHooks, PromptBuilder
from r1v_quant.engine.image import choose_grid, preprocess
from r1v_quant.engine.linear import Linears
from r1v_quant.read import LLM, open_checkpoint
from r1v_quant.read.layout import LLM_LINEARS


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


def test_layer_walk_hooks_see_every_layer_of_both_stacks(tiny_rms_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_rms_ckpt)
    prepared = prepared_pair(ckpt, tmp_path)
    engine = Engine(ckpt)
    seen: list[tuple[str, int]] = []
    last: dict[str, list[torch.Tensor]] = {}

    def before(call: LayerCall) -> None:
        if call.stack in last:  # each layer's inputs are the previous layer's outputs
            assert all(torch.equal(a, b) for a, b in zip(call.inputs, last[call.stack]))
        seen.append((call.stack, call.index))

    def after(call: LayerCall, outputs: list[torch.Tensor]) -> None:
        assert [o.shape for o in outputs] == [x.shape for x in call.inputs]
        last[call.stack] = list(outputs)  # a copy: the projector consumes the tower's output list

    hooks = LayerHooks(before, after)
    with torch.no_grad():
        hidden = engine.walk(LLM, engine.embed(prepared, vision_hooks=hooks), hooks)
    assert seen == [("vision", i) for i in range(4)] + [("llm", i) for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(hidden, last["llm"]))
    assert [x.shape[0] for x in last["vision"]] == [3]  # one chunk: 2 tiles + thumbnail


def test_before_hook_runs_a_layer_with_other_weights_and_sees_its_linear_inputs(tiny_ckpt: Path,
                                                                                 tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    prepared = prepared_pair(ckpt, tmp_path)
    base = run(Engine(ckpt), prepared)

    class Recorded:  # a source that notes every unit it hands out
        config = ckpt.config
        loaded: list[str] = []

        def load_unit(self, name: str, place=None):
            self.loaded.append(name)
            return ckpt.load_unit(name, place)

    source = Recorded()
    engine = Engine(source)
    inputs: dict[str, list[tuple[int, ...]]] = {}

    def zero_down_proj_of_last_layer(call: LayerCall) -> Linears | None:
        if call.index != 2:
            return None
        t = {k: torch.zeros_like(v) if k.endswith("down_proj.weight") else v for k, v in call.weights.t.items()}
        return Linears(t, lambda name, x: inputs.setdefault(name, []).append(tuple(x.shape)))

    out: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    with torch.no_grad():
        hidden = engine.walk(LLM, engine.embed(prepared), LayerHooks(before=zero_down_proj_of_last_layer))
        engine.logits(hidden, lambda i, pos, logits: out[i].append(logits))
    changed = [torch.cat(out[i]) for i in (0, 1)]
    assert not torch.allclose(base[1], changed[1])
    assert source.loaded == ckpt.unit_names()  # each unit once, in walk order
    p = "language_model.model.layers.2."
    assert sorted(inputs) == sorted(p + n for n in LLM_LINEARS)
    assert all(len(v) == 2 for v in inputs.values())  # both samples
    assert inputs[p + "mlp.down_proj"][0][-1] == 640 and inputs[p + "self_attn.q_proj"][0][-1] == 256


@pytest.mark.slow
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
