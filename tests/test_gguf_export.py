"""GGUF export against llama.cpp itself.

(a) Same files as llama.cpp's own pipeline: ``convert_hf_to_gguf.py`` (with and without
    ``--mmproj``, ``--outtype f16`` / ``q8_0``) and, for Q4_K_M, Q5_K_M, Q6_K, Q4_0, Q4_1,
    Q5_0 and Q5_1, ``llama_model_quantize`` on its F16 file.  Tensor names, shapes, types,
    order and bytes are compared, and the metadata key by key; the only difference is the
    documented one (``JUSTIFIED_DIFFERENCES``).
(b) llama.cpp (``llama_cpp.Llama``) runs the language-model files; its logits are compared
    with our engine run on the file's dequantized weights.
(c) llama.cpp's ``mtmd`` encodes an image with the mmproj file; per-tile cosine similarity
    with ``Engine.encode_images``, with and without ``roll_position_embd``.
(d) Determinism, a NaN weight, a ``v1`` checkpoint, interrupted writes.

llama.cpp itself (converter, llama-quantize, mtmd) is driven through ``llama_harness.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import json
import os
import shutil
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
from peers import require
import torch
from gguf.quants import dequantize
from images import make_image
from llama_harness import (F32_KV, GGUFFile, convert, llama_quantize, mtmd_image_embeddings, read_gguf)
from transformed import TransformedSource

from r1v_quant.demo import PRESETS, build_demo_checkpoint
from r1v_quant.demo.tokenizer import (R1_DISTILL_BOS, TOKENIZER_FILES, write_tokenizer_files)
from r1v_quant.engine import Engine, PromptBuilder
from r1v_quant.engine.image import preprocess
from r1v_quant.errors import InputError, OutputError
from r1v_quant.formats.gguf_mix import FILE_TYPES
from r1v_quant.pipelines.gguf import export_gguf
from r1v_quant.read import Checkpoint, open_checkpoint
from r1v_quant.write.gguf.plan import plan_export

# The metadata keys in which our files differ from llama.cpp's converter, with the reason.
# With ``name`` given as the converter's own guess, there is none: the files are identical.
JUSTIFIED_DIFFERENCES = {
    # The converter guesses general.name from config.json's _name_or_path or the model card
    # ("r1v-quant-demo-tiny" -> "R1V Quant Demo Tiny"); we take --name, else the folder's name,
    # which also names the files.
    "general.name": "default name is the checkpoint folder's name",
}


def metadata_differences(ours: GGUFFile, ref: GGUFFile) -> dict[str, list[str]]:
    a, b = ours.metadata, ref.metadata
    return {"only_ours": sorted(set(a) - set(b)), "only_llama_cpp": sorted(set(b) - set(a)),
            "different": sorted(k for k in set(a) & set(b) if a[k] != b[k])}


NO_DIFFERENCE = {"only_ours": [], "only_llama_cpp": [], "different": []}


def assert_same_file(ours_path: Path, ref_path: Path, expected_diff: dict[str, list[str]] = NO_DIFFERENCE) -> None:
    """Same tensor names, shapes, types and order, the same bytes for every tensor (padding
    included), and exactly ``expected_diff`` in the metadata; identical files when that is empty."""
    ours, ref = read_gguf(ours_path), read_gguf(ref_path)
    assert ours.infos == ref.infos
    assert ours.data() == ref.data()
    diff = metadata_differences(ours, ref)
    assert diff == expected_diff, diff
    if expected_diff == NO_DIFFERENCE:
        assert ours_path.read_bytes() == ref_path.read_bytes()


# --------------------------------------------------------------------------- (a) same files as llama.cpp


# every --outtype llama.cpp's converter writes itself, for the language model and the mmproj alike
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")


@pytest.fixture(scope="module")
def reference_files(tiny_ckpt: Path, llama_sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require("llama_cpp")
    d = tmp_path_factory.mktemp("llama-cpp-reference")
    ref = {}
    for outtype in CONVERTER_TYPES:
        ref[f"llm-{outtype}"] = convert(llama_sdist, tiny_ckpt, d / f"llm-{outtype}.gguf", outtype, mmproj=False)
        ref[f"mmproj-{outtype}"] = convert(llama_sdist, tiny_ckpt, d / f"mmproj-{outtype}.gguf", outtype, mmproj=True)
    ref["llm-q4_k_m"] = llama_quantize(ref["llm-f16"], d / "llm-q4_k_m.gguf", int(gguf.LlamaFileType.MOSTLY_Q4_K_M))
    return ref


@pytest.fixture(scope="module")
def our_files(tiny_ckpt: Path, reference_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, Path]:
    ckpt = open_checkpoint(tiny_ckpt)
    name = read_gguf(reference_files["llm-f16"]).metadata["general.name"][1]  # the converter's guess
    d = tmp_path_factory.mktemp("ours")
    files = {}
    for file_type, mm in [(t, t) for t in CONVERTER_TYPES] + [("q4_k_m", None)]:
        llm, mmproj = export_gguf(ckpt, d, file_type, mm or "f16", name=name, mmproj=mm is not None)
        files[f"llm-{file_type}"] = llm
        if mmproj is not None:
            files[f"mmproj-{mm}"] = mmproj
    return files


@pytest.mark.slow
@pytest.mark.parametrize("key", [f"{kind}-{t}" for t in CONVERTER_TYPES for kind in ("llm", "mmproj")])
def test_same_bytes_as_llama_cpp_converter(key: str, our_files: dict[str, Path],
                                           reference_files: dict[str, Path]) -> None:
    assert_same_file(our_files[key], reference_files[key])


@pytest.mark.slow
def test_q4_k_m_same_bytes_as_llama_quantize(our_files: dict[str, Path], reference_files: dict[str, Path],
                                             tiny_ckpt: Path) -> None:
    ours, ref = read_gguf(our_files["llm-q4_k_m"]), read_gguf(reference_files["llm-q4_k_m"])
    assert ours.infos == ref.infos
    # llama-quantize's mix on 3 layers of 640-wide MLP rows: Q6_K where use_more_bits (layer 2),
    # ffn_down falls back (Q4_K -> Q5_0, Q6_K -> Q8_0), output Q6_K, norms and biases F32
    types = {n: t for n, _, t in ours.infos}
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert [types[f"blk.{i}.attn_v.weight"] for i in range(3)] == ["Q4_K", "Q4_K", "Q6_K"]
    assert [types[f"blk.{i}.ffn_down.weight"] for i in range(3)] == ["Q5_0", "Q5_0", "Q8_0"]
    assert types["blk.0.attn_norm.weight"] == "F32" and types["blk.0.attn_q.bias"] == "F32"
    assert_same_as_llama_quantize(our_files["llm-q4_k_m"], reference_files["llm-q4_k_m"], tiny_ckpt, "q4_k_m")


def assert_same_as_llama_quantize(ours_path: Path, ref_path: Path, model: Path, file_type: str) -> None:
    """``assert_same_file`` for llama-quantize run on the converter's F16 file, which explains a
    difference where there is one: we encode from BF16 directly, llama.cpp's route rounds to F16
    first, so blocks may differ only where they hold a BF16 value F16 cannot represent (F16
    subnormals below 2**-14, or above 65504; none changes in the tiny checkpoint)."""
    ours, ref = read_gguf(ours_path), read_gguf(ref_path)
    assert ours.infos == ref.infos
    if ours.data() != ref.data():
        ckpt = open_checkpoint(model)
        source = {t.gguf_name: t.source for t in plan_export(ckpt, ".", file_type, mmproj=False).llm.tensors}
        for name, *_ in ours.infos:
            (a, qtype, _), (b, _, _) = ours.tensor(name), ref.tensor(name)
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            bad = np.nonzero((a.reshape(-1, size) != b.reshape(-1, size)).any(-1))[0]
            src = ckpt.read_tensor(source[name]).float().reshape(-1, block)[bad]
            assert bool((src.half().float() != src).any(-1).all()), f"{name}: blocks differ beyond F16 rounding"
        pytest.fail("data differs from llama-quantize's only in F16-rounded blocks (update this test)")
    assert_same_file(ours_path, ref_path)


# The other mixes llama-quantize makes, each with the ggml types of the tiny checkpoint's 39 tensors
# (16 norms and biases F32; output.weight Q6_K; 640-wide ffn_down rows are not whole 256-blocks, so
# the K-quants fall back: Q5_K -> Q5_1, Q6_K -> Q8_0; use_more_bits gives layer 2's attn_v and
# ffn_down Q6_K in q5_k_m).  Like Q4_K_M above, the reference is llama-quantize on the converter's
# F16 file, llama.cpp's usual route; on its BF16 file every one of these is identical as well.
MORE_QUANTIZED_MIXES = {
    "q5_k_m": {"F32": 16, "Q5_K": 18, "Q5_1": 2, "Q6_K": 2, "Q8_0": 1},
    "q6_k": {"F32": 16, "Q6_K": 20, "Q8_0": 3},
    "q4_0": {"F32": 16, "Q4_0": 22, "Q6_K": 1},
    "q4_1": {"F32": 16, "Q4_1": 22, "Q6_K": 1},
    "q5_0": {"F32": 16, "Q5_0": 22, "Q6_K": 1},
    "q5_1": {"F32": 16, "Q5_1": 22, "Q6_K": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("file_type", list(MORE_QUANTIZED_MIXES))
def test_quantized_mix_same_bytes_as_llama_quantize(file_type: str, tiny_ckpt: Path,
                                                    reference_files: dict[str, Path], tmp_path: Path) -> None:
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type.upper()}")  # q5_k_m 17, q6_k 18, q4_0 2, ...
    assert ftype == int(FILE_TYPES[file_type].llama_ftype)
    ref = llama_quantize(reference_files["llm-f16"], tmp_path / f"ref-{file_type}.gguf", ftype)
    name = read_gguf(reference_files["llm-f16"]).metadata["general.name"][1]  # the converter's guess
    ours, _ = export_gguf(open_checkpoint(tiny_ckpt), tmp_path / "ours", file_type, name=name, mmproj=False)
    types = collections.Counter(t for _, _, t in read_gguf(ours).infos)
    assert types == MORE_QUANTIZED_MIXES[file_type]
    assert_same_as_llama_quantize(ours, ref, tiny_ckpt, file_type)


@pytest.mark.slow
def test_default_name_is_the_only_metadata_difference(tiny_ckpt: Path, reference_files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    llm, mmproj = export_gguf(open_checkpoint(tiny_ckpt), tmp_path, "f16", "f16")
    assert llm.name == "tiny-F16.gguf" and mmproj.name == "mmproj-tiny-F16.gguf"
    expected = {"only_ours": [], "only_llama_cpp": [], "different": sorted(JUSTIFIED_DIFFERENCES)}
    assert_same_file(llm, reference_files["llm-f16"], expected)
    assert_same_file(mmproj, reference_files["mmproj-f16"], expected)
    assert read_gguf(llm).metadata["general.name"][1] == "tiny"


@pytest.mark.slow
def test_r1_distill_tokenizer_gets_the_converters_pre_tokenizer_name(tiny_ckpt: Path, llama_sdist: Path,
                                                                     tmp_path: Path) -> None:
    """A tokenizer like that of DeepSeek-R1-Distill-Qwen (Skywork-R1V's backbone), which puts
    <｜begin▁of▁sentence｜> (151646) before every text: llama.cpp's converter then names the
    pre-tokenizer ``deepseek-r1-qwen`` and sets add_bos.  Our file is the converter's, byte for byte."""
    require("llama_cpp")
    model = tmp_path / "r1-distill"
    shutil.copytree(tiny_ckpt, model, copy_function=os.link)
    for name in TOKENIZER_FILES:
        (model / name).unlink()  # hard links: never write through them into tiny_ckpt
    write_tokenizer_files(model, 32768, bos=R1_DISTILL_BOS)
    ref = convert(llama_sdist, model, tmp_path / "ref.gguf", "f16", mmproj=False)
    name = read_gguf(ref).metadata["general.name"][1]
    ours, _ = export_gguf(open_checkpoint(model), tmp_path / "ours", "f16", name=name, mmproj=False)
    meta = read_gguf(ours).metadata
    assert meta["tokenizer.ggml.pre"][1] == "deepseek-r1-qwen"
    assert meta["tokenizer.ggml.bos_token_id"][1] == 151646 and meta["tokenizer.ggml.add_bos_token"][1]
    assert_same_file(ours, ref)
    # and the plain Qwen2 tokenizer of the demo checkpoints (the byte tests above compare it too)
    assert read_gguf(export_gguf(open_checkpoint(tiny_ckpt), tmp_path / "plain", "f16", mmproj=False)[0]
                     ).metadata["tokenizer.ggml.pre"][1] == "qwen2"


# --------------------------------------------------------------------------- (b) llama.cpp's logits


PROMPT = [{"role": "user", "content": "What is 17 * 23? Think it through."},
          {"role": "assistant", "content": "<think>\n17*23 = 391.\n</think>\n\n391"}]


def llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=256, n_batch=256, n_threads=2,
                          verbose=False, **F32_KV)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def engine_logits_on_file(ckpt: Checkpoint, path: Path | None, sample) -> np.ndarray:
    """Our engine with every language-model tensor replaced by the file's tensor, dequantized."""
    source = ckpt
    if path is not None:
        f = read_gguf(path)
        plan = plan_export(ckpt, ".", "f16", mmproj=False).llm
        gguf_of = {t.source: t.gguf_name for t in plan.tensors}

        def transform(unit):
            for n, v in unit.tensors.items():
                if n in gguf_of:
                    raw, qtype, shape = f.tensor(gguf_of[n])
                    assert shape == tuple(v.shape)
                    unit.tensors[n] = torch.from_numpy(np.array(dequantize(raw, qtype))).reshape(shape)
            return unit

        source = TransformedSource(ckpt, transform)
    out: list[torch.Tensor] = []
    Engine(source).run([sample], lambda i, pos, logits: out.append(logits))
    return torch.cat(out).numpy()


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset with its outlier channels switched off.  llama.cpp quantizes the activations
    of its matrix products (F16 for F16 weights, Q8_0 / Q8_K blocks for quantized ones); with the
    demo's massive activations that rounding alone moves logits by several units, which would
    drown what (b) is about."""
    return build_demo_checkpoint(tmp_path_factory.mktemp("ckpt") / "plain", PRESETS["tiny"], outlier_scale=0.0)


@pytest.mark.slow
def test_llama_cpp_f32_logits_match_engine(tiny_ckpt: Path, tmp_path: Path) -> None:
    """An F32 file leaves llama.cpp nothing to round but its own float32 arithmetic."""
    require("llama_cpp")
    ckpt = open_checkpoint(tiny_ckpt)
    llm, _ = export_gguf(ckpt, tmp_path, "f32", mmproj=False)
    sample = PromptBuilder(ckpt.dir, ckpt.config).prepare("t", PROMPT, [])
    ref = llama_logits(llm, sample.input_ids.tolist())
    ours = engine_logits_on_file(ckpt, None, sample)
    diff = float(np.abs(ours - ref).max())
    print(f"\nf32: max abs logit diff {diff:.3g} (logits up to {np.abs(ref).max():.1f})")
    assert diff <= 5e-3, diff  # measured 9.9e-4 with logits up to 66.5


# max abs logit difference allowed, llama.cpp vs our engine on the file's dequantized weights
# (F32 KV cache; logits of plain_ckpt reach ~6).  Measured: f16 0.0036, q8_0 0.100, q4_k_m 0.136.
# All of it is llama.cpp's activation rounding: an F32 file holding the dequantized Q8_0 weights
# gives 4.5e-6 against the same engine run, and 0.0996 against the Q8_0 file itself.
LOGIT_TOL = {"f16": 0.02, "q8_0": 0.3, "q4_k_m": 0.4}


@pytest.mark.slow
@pytest.mark.parametrize("file_type", list(LOGIT_TOL))
def test_llama_cpp_logits_match_engine_on_dequantized_weights(file_type: str, plain_ckpt: Path,
                                                              tmp_path: Path) -> None:
    require("llama_cpp")
    ckpt = open_checkpoint(plain_ckpt)
    llm, _ = export_gguf(ckpt, tmp_path, file_type, mmproj=False)
    sample = PromptBuilder(ckpt.dir, ckpt.config).prepare("t", PROMPT, [])
    ref = llama_logits(llm, sample.input_ids.tolist())
    ours = engine_logits_on_file(ckpt, llm, sample)
    diff = float(np.abs(ours - ref).max())
    unquantized = float(np.abs(engine_logits_on_file(ckpt, None, sample) - ref).max())
    print(f"\n{file_type}: max abs logit diff {diff:.3g} on the file's weights, {unquantized:.3g} on the "
          f"checkpoint's (logits up to {np.abs(ref).max():.2f})")
    assert diff <= LOGIT_TOL[file_type], diff
    if file_type == "q4_k_m":  # llama.cpp computes with the 4-bit weights we think it does
        assert diff < unquantized / 4, (diff, unquantized)


# --------------------------------------------------------------------------- (c) mtmd image embeddings


@pytest.mark.slow
def test_mtmd_image_embeddings_and_the_position_order_quirk(tiny_ckpt: Path, our_files: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """896x448: two tiles and a thumbnail, in the same order in both.  llama.cpp 0c1e57098's
    InternVL graph appends the class token after the patches but adds the position table in
    checkpoint order, so as the converter writes it every patch gets its left neighbour's
    position.  If a llama.cpp update fixes that, the first assertion fails: drop the roll then."""
    require("llama_cpp")
    ckpt = open_checkpoint(tiny_ckpt)
    cfg = ckpt.config
    image = make_image(896, 448, box=(60, 50, 300, 260), disc=(480, 40, 820, 400))
    pixels = preprocess(image, cfg.image_size, cfg.min_dynamic_patch, cfg.max_dynamic_patch, cfg.use_thumbnail,
                        cfg.dynamic_image_size)
    ref = Engine(ckpt).encode_images(pixels)
    assert ref.shape[0] == 3
    _, rolled_f16 = export_gguf(ckpt, tmp_path, mmproj_type="f16", llm=False, roll_position_embd=True)
    _, rolled_q8 = export_gguf(ckpt, tmp_path, mmproj_type="q8_0", llm=False, roll_position_embd=True)
    cos = {}
    for label, mmproj in (("f16", our_files["mmproj-f16"]), ("f16 rolled", rolled_f16),
                          ("q8_0", our_files["mmproj-q8_0"]), ("q8_0 rolled", rolled_q8)):
        emb = torch.from_numpy(mtmd_image_embeddings(our_files["llm-f16"], mmproj, image))
        assert emb.shape == (ref.shape[0] * ref.shape[1], ref.shape[2])
        cos[label] = torch.nn.functional.cosine_similarity(emb.reshape(ref.shape), ref, dim=-1).mean(-1).tolist()
    print("\nper-tile mean cosine, llama.cpp vs engine:", json.dumps(cos))
    # measured: f16 [0.782, 0.728, 0.749], q8_0 [0.784, 0.737, 0.749]: the class-token order quirk
    assert max(cos["f16"] + cos["q8_0"]) < 0.95
    # measured: f16 rolled [0.999998, 0.999998, 0.999998] (left: tanh GELU, F16 weights and activations);
    # q8_0 rolled [0.9952, 0.9924, 0.9949] (8-bit weights, and llama.cpp's Q8_0 activations)
    assert min(cos["f16 rolled"]) > 0.9999 and min(cos["q8_0 rolled"]) > 0.98


# --------------------------------------------------------------------------- (d) behaviour


@pytest.mark.slow
def test_export_is_deterministic(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    a = export_gguf(ckpt, tmp_path / "a", "f16", "q8_0")
    b = export_gguf(ckpt, tmp_path / "b", "f16", "q8_0")
    for x, y in zip(a, b):
        assert x.name == y.name and x.read_bytes() == y.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("file_type,mmproj_type", [("iq4_xs", "q8_0"), ("q4_0", "f16"), ("q3_k_m", "f32")])
def test_threads_and_blocks_of_rows_do_not_change_the_bytes(file_type: str, mmproj_type: str, tiny_ckpt: Path,
                                                             tiny_imatrix: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The export encodes blocks of rows on its threads and writes each at its place.  With small
    blocks (rows cut at odd places; in the mmproj a few hundred values, so each of a fused qkv's
    parts spans several blocks) on 3 threads, the files are those of one thread and whole tensors
    (which the tests above prove equal to llama.cpp's), with an importance matrix and the rolled
    position table too."""
    import r1v_quant.pipelines.gguf as pipeline
    from r1v_quant.read.imatrix_file import load_imatrix

    ckpt, im = open_checkpoint(tiny_ckpt), load_imatrix(tiny_imatrix)
    whole = export_gguf(ckpt, tmp_path / "whole", file_type, mmproj_type, imatrix=im, roll_position_embd=True)
    plan = plan_export(ckpt, tmp_path / "plan", file_type, mmproj_type)
    before = torch.get_num_threads()
    # the LLM's 152064-row tensors in ~300 blocks each (tiny values per block would take minutes)
    for kind, values in (("llm", 1 << 17), ("mmproj", 700)):
        blocks = list(pipeline._blocks(getattr(plan, kind), values, True))
        assert len({b.tensor.gguf_name for b in blocks if b.first > 0}) >= 3 and len(blocks) > len(getattr(plan, kind).tensors)
        monkeypatch.setattr(pipeline, "BLOCK_VALUES", values)
        cut = export_gguf(ckpt, tmp_path / kind, file_type, mmproj_type, imatrix=im, roll_position_embd=True,
                          threads=3, llm=kind == "llm", mmproj=kind == "mmproj")
        got = cut[0] if kind == "llm" else cut[1]
        want = whole[0] if kind == "llm" else whole[1]
        assert got.name == want.name and got.read_bytes() == want.read_bytes()
    assert torch.get_num_threads() == before  # the workers' setting does not leak out


@pytest.mark.parametrize("victim,file_type", [
    ("language_model.model.layers.1.mlp.up_proj.weight", "q8_0"),  # encoded
    ("language_model.model.layers.0.input_layernorm.weight", "f16"),  # kept F32
    ("vision_model.encoder.layers.2.attn.qkv.weight", "f16"),  # split into q, k, v; fails in the second file
])
@pytest.mark.parametrize("threads", [1, 3])
def test_nan_weight_is_an_input_error_naming_the_tensor(victim: str, file_type: str, threads: int, tiny_ckpt: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One NaN near the end of the victim (the last part of a split tensor); with 3 threads and small
    blocks, later blocks are in flight when it is met, and the same error is raised."""
    import r1v_quant.pipelines.gguf as pipeline

    if threads > 1:
        monkeypatch.setattr(pipeline, "BLOCK_VALUES", 1 << 15)
    ckpt = open_checkpoint(tiny_ckpt)
    read = ckpt.read_rows
    rows = ckpt.info(victim).shape[0]

    def poisoned(name: str, start: int, stop: int, into: torch.Tensor | None = None) -> torch.Tensor:
        t = read(name, start, stop, into=into)
        if name == victim and start <= rows - 1 < stop:
            t = t.clone()
            t.view(-1)[t.numel() - 3] = float("nan")
        return t

    ckpt.read_rows = poisoned
    with pytest.raises(InputError, match=rf"{victim}.*(nan|non-finite)") as e:
        export_gguf(ckpt, tmp_path, file_type, "f16", threads=threads)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # the finished language model went too


def test_v1_checkpoint_mmproj_is_refused_unless_allowed(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    ckpt.config = dataclasses.replace(ckpt.config, ps_version="v1")
    with pytest.raises(InputError, match=r"v1.*v2 pixel-shuffle.*transposed") as e:
        export_gguf(ckpt, tmp_path, "f16")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
    assert plan_export(ckpt, tmp_path, "f16", allow_v1=True).mmproj is not None
    assert plan_export(ckpt, tmp_path, "f16", mmproj=False).mmproj is None


def test_tower_whose_norm_llama_cpp_would_get_wrong_is_refused(tiny_rms_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_rms_ckpt)
    with pytest.raises(InputError, match=r"norm_type is rms_norm.*LayerNorm"):
        plan_export(ckpt, tmp_path, "f16")
    assert plan_export(ckpt, tmp_path, "f16", mmproj=False).llm is not None


@pytest.mark.parametrize("stop_in", ["llm", "mmproj"])
@pytest.mark.parametrize("threads", [1, 2])
def test_interrupted_export_leaves_nothing(stop_in: str, threads: int, tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    seen = []

    def progress(kind: str, name: str, nbytes: int) -> None:
        seen.append(kind)
        if kind == stop_in and seen.count(kind) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_gguf(ckpt, tmp_path / "out", "f16", "f16", progress=progress, threads=threads)
    assert not (tmp_path / "out").exists()  # no partial file, no half of the pair, no empty folder
    assert not [t for t in threading.enumerate() if t.name.startswith(("r1v-gguf", "r1v-vocab"))]  # none left


@pytest.mark.parametrize("threads", [1, 2])
def test_a_broken_tokenizer_stops_the_export_and_leaves_nothing(threads: int, tiny_ckpt: Path, tmp_path: Path) -> None:
    """The vocabulary is read first on one thread and beside the mmproj's blocks on more; either way a
    tokenizer.json that is not JSON is one line saying the tokenizer cannot be loaded, the mmproj goes
    too, and no thread is left."""
    model = tmp_path / "model"
    model.mkdir()
    for f in tiny_ckpt.iterdir():
        (model / f.name).symlink_to(f)
    (model / "tokenizer.json").unlink()
    (model / "tokenizer.json").write_text('{"version": "1.0", "model": {')
    kinds = []
    with pytest.raises(InputError, match=r"tokenizer") as e:
        export_gguf(open_checkpoint(model), tmp_path / "out", "q8_0", "f16", threads=threads,
                    progress=lambda kind, name, n: kinds.append(kind))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
    assert "llm" not in kinds  # no language-model tensor is written without its vocabulary
    assert not [t for t in threading.enumerate() if t.name.startswith(("r1v-gguf", "r1v-vocab"))]


def test_a_tensor_missing_a_block_is_never_finished(tiny_ckpt: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is written at offsets, so a block that never ran would leave zeros, not a short file:
    the writer counts each tensor's bytes and refuses to finish one that is not whole."""
    import r1v_quant.pipelines.gguf as pipeline

    blocks = pipeline._blocks

    def one_lost(plan, values, roll):
        got = list(blocks(plan, 1 << 16, roll))
        return [b for b in got if not (b.tensor.gguf_name == "token_embd.weight" and b.first > 0 and not b.last)]

    monkeypatch.setattr(pipeline, "_blocks", one_lost)
    with pytest.raises(AssertionError, match=r"token_embd.weight: \d+ of its \d+ bytes written"):
        export_gguf(open_checkpoint(tiny_ckpt), tmp_path / "out", "q8_0", mmproj=False, threads=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EOPNOTSUPP])
def test_each_file_is_reserved_whole_before_any_encoding(err: int, tiny_ckpt: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer claims each file's planned size first: a full disk is one line before any tensor
    is encoded, with nothing left; a file system that cannot reserve gets the same bytes anyway."""
    import r1v_quant.write.gguf.writer as writer

    ckpt = open_checkpoint(tiny_ckpt)
    want = export_gguf(ckpt, tmp_path / "want", "q4_k_m", "f16")
    asked, encoded = [], []

    def cannot(fd: int, offset: int, size: int) -> None:
        asked.append((offset, size))
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(writer.os, "posix_fallocate", cannot)
    progress = lambda kind, name, nbytes: encoded.append(name)  # noqa: E731
    if err == errno.ENOSPC:
        with pytest.raises(OutputError, match="disk full") as e:
            export_gguf(ckpt, tmp_path / "full", "q4_k_m", "f16", progress=progress)
        assert "\n" not in str(e.value) and not (tmp_path / "full").exists() and encoded == []
        assert asked == [(0, want[0].stat().st_size)]
    else:
        got = export_gguf(ckpt, tmp_path / "got", "q4_k_m", "f16", progress=progress)
        assert [a.read_bytes() == b.read_bytes() for a, b in zip(want, got)] == [True, True]
        assert asked == [(0, want[0].stat().st_size), (0, want[1].stat().st_size)]


def test_existing_output_needs_overwrite(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    plan = plan_export(ckpt, tmp_path, "f16")
    plan.mmproj.path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        export_gguf(ckpt, tmp_path, "f16")
    assert plan.mmproj.path.read_bytes() == b"keep me" and not plan.llm.path.exists()


@pytest.mark.slow
def test_cli_help_and_json_summary(tiny_ckpt: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from r1v_quant.cli import gguf_cmd

    app = typer.Typer()
    app.command("gguf")(gguf_cmd.gguf)
    app.command("other")(lambda: None)  # keep "gguf" a subcommand
    runner = CliRunner()
    result = runner.invoke(app, ["gguf", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for word in ("q4_k_m", "a third of the layers", "--mmproj-type", "--allow-v1",
                 "--no-mmproj", "--roll-pos-embd"):
        assert word in result.output, word
    result = runner.invoke(app, ["gguf", str(tiny_ckpt), "--type", "q6_k", "--out", str(tmp_path), "--json",
                                 "--no-mmproj", "--name", "Demo"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    (llm,) = summary["files"]
    assert llm["path"].endswith("Demo-Q6_K.gguf") and llm["tensors"] == 39
    # 640-wide ffn_down rows are not whole 256-blocks: Q6_K -> Q8_0, as llama-quantize does
    assert [(f["tensor"], f["got"]) for f in llm["fallbacks"]] == [(f"blk.{i}.ffn_down.weight", "Q8_0")
                                                                   for i in range(3)]
    assert llm["ggml_types"] == {"F32": 16, "Q6_K": 20, "Q8_0": 3}


@pytest.fixture(scope="module")
def tiny_imatrix(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``r1v-quant imatrix`` on the tiny checkpoint: images and text through the whole model."""
    from r1v_quant.pipelines.imatrix import ImatrixOptions, compute_imatrix

    path = tmp_path_factory.mktemp("imatrix") / "tiny.imatrix.gguf"
    compute_imatrix(open_checkpoint(tiny_ckpt), path, ImatrixOptions(samples=6, seq_len=256, max_tiles=1))
    return path


# The new low-bit types and those whose mixes an importance matrix changes (q4_0's ffn_down rule),
# each with and without a matrix.  llama.cpp's route: llama_model_quantize on the converter's F16 file,
# given the matrix as llama-quantize loads it (sum / count) and the four quantize.imatrix.* keys it adds.
# (Without a matrix, q4_k_m, q5_k_m and q4_0 are compared by the tests above.)
NEW_TYPES = ("q3_k_m", "q3_k_s", "q2_k", "iq4_xs", "iq4_nl")
IMATRIX_CASES = [(t, True) for t in ("q4_k_m", *NEW_TYPES, "q4_0", "q5_k_m")] + [(t, False) for t in NEW_TYPES]


@pytest.mark.slow
@pytest.mark.parametrize("file_type,with_imatrix", IMATRIX_CASES,
                         ids=[f"{t}-{'imatrix' if i else 'plain'}" for t, i in IMATRIX_CASES])
def test_same_bytes_as_llama_quantize_given_the_same_importance(file_type: str, with_imatrix: bool,
                                                                tiny_ckpt: Path, tiny_imatrix: Path,
                                                                reference_files: dict[str, Path],
                                                                tmp_path: Path) -> None:
    from r1v_quant.read.imatrix_file import load_imatrix

    im = load_imatrix(tiny_imatrix) if with_imatrix else None
    ftype = int(FILE_TYPES[file_type].llama_ftype)
    if im is not None:
        assert any(n.startswith("v.blk.") for n in im.sums) and "output.weight" in im.sums
    ref = llama_quantize(reference_files["llm-f16"], tmp_path / f"ref-{file_type}.gguf", ftype,
                         tiny_imatrix if with_imatrix else None)
    name = read_gguf(reference_files["llm-f16"]).metadata["general.name"][1]
    ours, _ = export_gguf(open_checkpoint(tiny_ckpt), tmp_path / "ours", file_type, name=name, mmproj=False,
                          imatrix=im)
    if im is not None:  # the matrix did change the rounding: the bytes differ from a run without it
        plain, _ = export_gguf(open_checkpoint(tiny_ckpt), tmp_path / "plain", file_type, name=name, mmproj=False)
        assert read_gguf(plain).data() != read_gguf(ours).data()
    assert_same_as_llama_quantize(ours, ref, tiny_ckpt, file_type)
