"""``validate --runtime llama.cpp``: llama.cpp's logits on a GGUF pair against the forward engine's.

The tiny demo checkpoint, exported as an F32 language model and an F16 projector with the
position table rolled (what llama.cpp's InternVL graph needs, see ``write/gguf/compat.py``),
on samples of the shipped eval set.  Three comparisons, each against ``Engine.run``:

* text samples: nothing differs but float32 arithmetic;
* image samples with the engine fed llama.cpp's own image embeddings (``mtmd``, through the
  helper in ``llama_harness.py``, flash attention off as in the runtime): checks what this
  backend adds, how image slots and tiles are lined up and decoded, to float32 precision;
* image samples end to end: on top, the F16 projector and llama.cpp's tanh GELU in the vision
  tower (per-tile cosine 0.99996+ against the engine), which the demo model's outlier channels
  amplify to logit differences of a few units at worst: the figures are by the tolerances below.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from peers import require
import torch

from r1v_quant.calibrate.dataset import default_data_path, load_samples
from r1v_quant.engine import Engine, PromptBuilder
from r1v_quant.engine.image import load_image, tile_image
from r1v_quant.errors import InputError
from r1v_quant.pipelines.gguf import export_gguf
from r1v_quant.read import open_checkpoint
from r1v_quant.validate.llama_runtime import INSTALL_HINT, llama_cpp_logits

MAX_TILES = 2  # the first eval images: 2 tiles + thumbnail, and 1 tile
THREADS = 2

# Figures: every other position of eval-math-0000 + eval-science-0000 (text), eval-chart-0000
# (3 tiles) + eval-geometry-0000 (1 tile) (image); "max" is the largest abs logit difference over
# the positions, "mean" the mean over positions of each one's largest; logits reach ~80.
# Text samples, F32 language model: measured max 6.7e-3, mean 4.2e-4, top-1 1.0.
TEXT_TOL = 0.05
# Image samples, the engine fed mtmd's embeddings: measured max 1.8e-3 on image positions, 3.4e-3
# on the text after the image (3.9e-4 before it); top-1 1.0.
DECODE_TOL = 0.03
# Image samples end to end (F16 projector): measured on image positions max 2.23, mean 0.086,
# top-1 0.996; on the text after the image max 0.70, mean 0.043, top-1 1.0.  For scale: the
# tiles handed over in reverse order give max 67, mean 12.2, top-1 0.86.
E2E_MAX_TOL = 6.0
E2E_MEAN_TOL = 0.25
E2E_MIN_TOP1 = 0.98


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt: Path):
    return open_checkpoint(tiny_ckpt)


@pytest.fixture(scope="module")
def gguf_pair(ckpt, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require("llama_cpp")
    llm, mmproj = export_gguf(ckpt, tmp_path_factory.mktemp("gguf"), "f32", "f16", roll_position_embd=True)
    assert mmproj is not None
    return llm, mmproj


def prepare(ckpt, kind: str, n: int):
    """The first ``n`` image or text samples of the eval set, with their tiles as PIL images."""
    cfg = ckpt.config
    builder = PromptBuilder(ckpt.dir, cfg, max_tiles=MAX_TILES)
    chosen = [s for s in load_samples(default_data_path("eval")) if bool(s.images) == (kind == "image")][:n]
    samples = [builder.prepare(s.id, s.messages, s.images, s.kind) for s in chosen]
    tiles = [[t for p in s.images
              for t in tile_image(load_image(p), cfg.image_size, cfg.min_dynamic_patch, MAX_TILES, cfg.use_thumbnail)]
             for s in chosen]
    return samples, tiles


def every_other(samples) -> list[torch.Tensor]:
    """Every other position (more than 256 on the longer samples: several chunks, not contiguous)."""
    return [torch.arange(0, len(s.input_ids), 2) for s in samples]


class Collect:
    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int]]] = []
        self.logits: dict[int, list[torch.Tensor]] = {}

    def __call__(self, i: int, pos: torch.Tensor, logits: torch.Tensor) -> None:
        assert logits.dtype == torch.float32 and logits.shape[0] == len(pos)
        self.calls.append((i, pos.tolist()))
        self.logits.setdefault(i, []).append(logits)

    def sample(self, i: int) -> torch.Tensor:
        return torch.cat(self.logits[i])


def run_llama(pair, samples, tiles, positions, **kw) -> Collect:
    out = Collect()
    llama_cpp_logits(pair[0], pair[1], samples, tiles, positions, out, threads=THREADS, **kw)
    return out


def run_engine(engine: Engine, samples, positions) -> Collect:
    out = Collect()
    engine.run(samples, out, positions)
    return out


def compare(ours: Collect, ref: Collect, samples, positions, groups: dict[str, Sequence[torch.Tensor]]
            ) -> dict[str, dict[str, float]]:
    """Per group of positions: max and mean of the per-position max abs logit difference, max abs
    log-softmax difference, top-1 agreement."""
    assert ours.calls == ref.calls  # same samples, same chunks of positions, same order
    stats: dict[str, dict[str, list[torch.Tensor]]] = {}
    for i, s in enumerate(samples):
        a, b = ours.sample(i), ref.sample(i)
        assert a.shape == b.shape == (len(positions[i]), b.shape[1])
        diff = (a - b).abs().amax(-1)
        lsm = (a.log_softmax(-1) - b.log_softmax(-1)).abs().amax(-1)
        top1 = (a.argmax(-1) == b.argmax(-1)).float()
        for name, masks in groups.items():
            m = masks[i][positions[i]]
            if m.any():
                g = stats.setdefault(name, {"diff": [], "lsm": [], "top1": []})
                g["diff"].append(diff[m]), g["lsm"].append(lsm[m]), g["top1"].append(top1[m])
    out = {}
    for name, g in stats.items():
        diff, lsm, top1 = torch.cat(g["diff"]), torch.cat(g["lsm"]), torch.cat(g["top1"])
        out[name] = {"n": len(diff), "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                     "max_logsoftmax": float(lsm.max()), "top1": float(top1.mean())}
    print("\n" + "\n".join(f"{k}: {v}" for k, v in out.items()))
    return out


def image_groups(samples) -> dict[str, list[torch.Tensor]]:
    image = [s.image_mask for s in samples]
    after = [(torch.cumsum(s.image_mask, 0) > 0) & ~s.image_mask for s in samples]
    before = [torch.cumsum(s.image_mask, 0) == 0 for s in samples]
    return {"text before the image": before, "image": image, "text after the image": after}


# --------------------------------------------------------------------------- agreement


@pytest.mark.slow
def test_text_logits_match_engine(ckpt, gguf_pair, capfd: pytest.CaptureFixture[str]) -> None:
    samples, tiles = prepare(ckpt, "text", 2)
    positions = every_other(samples)
    messages: list[str] = []
    capfd.readouterr()
    ours = run_llama((gguf_pair[0], None), samples, tiles, positions, progress=messages.append)
    assert capfd.readouterr().err == ""  # llama.cpp's log is swallowed
    assert messages == ["llama.cpp sample 1/2", "llama.cpp sample 2/2"]
    ref = run_engine(Engine(ckpt), samples, positions)
    figures = compare(ours, ref, samples, positions, {"text": [torch.ones_like(s.image_mask) for s in samples]})
    assert figures["text"]["max_abs"] <= TEXT_TOL
    assert figures["text"]["top1"] >= 0.99


@pytest.fixture(scope="module")
def image_run(ckpt, gguf_pair):
    samples, tiles = prepare(ckpt, "image", 2)
    assert [len(t) for t in tiles] == [3, 1]
    positions = every_other(samples)
    return samples, tiles, positions, run_llama(gguf_pair, samples, tiles, positions)


@pytest.mark.slow
def test_image_decoding_matches_engine_fed_llama_cpp_image_embeddings(ckpt, gguf_pair, image_run,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles to slots, embedding batches, positions, causal attention: exact to float32."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd
    from llama_harness import mtmd_image_embeddings

    default_params = mtmd.mtmd_context_params_default

    def without_flash_attention():  # as the runtime encodes tiles
        params = default_params()
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        return params

    monkeypatch.setattr(mtmd, "mtmd_context_params_default", without_flash_attention)
    samples, tiles, positions, ours = image_run
    embeddings = torch.stack([torch.from_numpy(mtmd_image_embeddings(*gguf_pair, t)) for ts in tiles for t in ts])

    class MtmdEngine(Engine):
        def encode_images(self, pixels: torch.Tensor, hooks=None) -> torch.Tensor:
            assert pixels.shape[0] == embeddings.shape[0]
            return embeddings

    ref = run_engine(MtmdEngine(ckpt), samples, positions)
    figures = compare(ours, ref, samples, positions, image_groups(samples))
    for g in figures.values():
        assert g["max_abs"] <= DECODE_TOL and g["top1"] == 1.0, figures


@pytest.mark.slow
def test_image_logits_match_engine_end_to_end(ckpt, image_run) -> None:
    samples, tiles, positions, ours = image_run
    ref = run_engine(Engine(ckpt), samples, positions)
    figures = compare(ours, ref, samples, positions, image_groups(samples))
    assert figures["text before the image"]["max_abs"] <= TEXT_TOL
    for name in ("image", "text after the image"):
        g = figures[name]
        assert g["max_abs"] <= E2E_MAX_TOL and g["mean_abs"] <= E2E_MEAN_TOL and g["top1"] >= E2E_MIN_TOP1, figures


# --------------------------------------------------------------------------- errors


def test_missing_llama_cpp_is_an_input_error(ckpt, monkeypatch: pytest.MonkeyPatch) -> None:
    samples, tiles = prepare(ckpt, "text", 1)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    with pytest.raises(InputError) as e:
        llama_cpp_logits(Path("x.gguf"), None, samples, tiles, every_other(samples), lambda *a: None)
    assert str(e.value) == INSTALL_HINT == "--runtime llama.cpp needs llama-cpp-python: pip install 'r1v-quant[llama]'"


def test_image_sample_without_mmproj_is_an_input_error(ckpt, gguf_pair) -> None:
    samples, tiles = prepare(ckpt, "image", 1)
    with pytest.raises(InputError, match=rf"sample {samples[0].id} has images.*mmproj"):
        llama_cpp_logits(gguf_pair[0], None, samples, tiles, every_other(samples), lambda *a: None)


def test_missing_file_is_an_input_error(ckpt, gguf_pair, tmp_path: Path) -> None:
    samples, tiles = prepare(ckpt, "text", 1)
    with pytest.raises(InputError, match="nothing.gguf: file not found"):
        llama_cpp_logits(tmp_path / "nothing.gguf", None, samples, tiles, every_other(samples), lambda *a: None)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(InputError, match="junk.gguf: llama.cpp cannot load this model"):
        llama_cpp_logits(junk, None, samples, tiles, every_other(samples), lambda *a: None)


def test_tile_of_the_wrong_size_is_an_input_error(ckpt, gguf_pair) -> None:
    samples, tiles = prepare(ckpt, "image", 1)
    small = [[t.resize((224, 224)) for t in tiles[0]]]
    with pytest.raises(InputError, match=r"a 224x224 tile; mmproj-.*\.gguf encodes 448x448 tiles"):
        llama_cpp_logits(*gguf_pair, samples, small, every_other(samples), lambda *a: None)


def test_image_token_count_mismatch_is_an_input_error(ckpt, gguf_pair) -> None:
    """Slots for three tiles, one tile given: 768 slots per tile, llama.cpp makes 256."""
    samples, tiles = prepare(ckpt, "image", 1)
    assert len(tiles[0]) == 3
    called = []
    with pytest.raises(InputError, match=r"llama.cpp turns one 448x448 tile into 256 image tokens, but the sample "
                                         r"has 768 image slots per tile"):
        llama_cpp_logits(*gguf_pair, samples, [tiles[0][:1]], every_other(samples), lambda *a: called.append(a))
    assert called == []
    # everything was freed and the logger put back: a later call works
    one, _ = prepare(ckpt, "text", 1)
    out = Collect()
    llama_cpp_logits(*gguf_pair, one, [[]], [torch.tensor([0])], out)
    assert out.calls == [(0, [0])]
