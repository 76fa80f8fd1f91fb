"""The torch GGML encoders give exactly the bytes of ggml's own quantizer (``ggml_quantize_chunk``).

ggml comes from the ``llama-cpp-python`` build (CI installs it); ``tests/ggml_reference.py``
calls it through ctypes.  Every case is seeded.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from peers import require

require("llama_cpp")

import gguf  # noqa: E402
import torch  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

from r1v_quant.errors import InputError  # noqa: E402
from r1v_quant.quantize import ggml_encoders  # noqa: E402
from r1v_quant.quantize.ggml import iquants  # noqa: E402
from r1v_quant.quantize.ggml_encoders import (  # noqa: E402
    GGML_BLOCKS,
    QTYPES,
    fp32_to_bf16_bits,
    fp32_to_fp16_bits,
    quantize,
    row_nbytes,
)

from ggml_reference import GGML_TYPE, ggml_lib, reference_quantize  # noqa: E402

COLS = 1024  # four K-quant super-blocks, 32 legacy blocks per row


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The encoders run thousands of small element-wise ops; with intra-op threads on a busy
    2-core box (or beside xdist workers) each parallel region can wait on a descheduled thread,
    which made this file 20x slower.  One thread keeps it fast and its timing stable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rng(tag: str) -> np.random.Generator:
    return np.random.default_rng([ord(ch) for ch in tag])  # seeded by name: stable across runs


def _blockwise(rng: np.random.Generator, rows: int, block: int, lo: float, hi: float) -> np.ndarray:
    """10**U(lo, hi) constant over each ``block`` values."""
    exp = rng.uniform(lo, hi, (rows, COLS // block))
    return np.repeat(10.0**exp, block, axis=1)


def _cases() -> dict[str, np.ndarray]:
    c: dict[str, np.ndarray] = {}
    r = _rng("normal")
    c["normal"] = r.standard_normal((8, COLS))
    c["heavy_tailed"] = _rng("heavy").standard_t(1.5, (8, COLS))
    r = _rng("scaled")
    c["row_scales_1e-6_1e6"] = r.standard_normal((8, COLS)) * 10.0 ** r.uniform(-6, 6, (8, 1))
    z = np.zeros((4, COLS))
    z[1] = -0.0
    z[2, ::2] = -0.0
    z[3, 100:400] = 1.0  # zero blocks next to non-zero ones
    c["zeros"] = z
    c["constant_rows"] = np.array([0.37, -2.5, 1e-3, 7.0, -1e-20, 65504.0])[:, None] * np.ones((6, COLS))
    r = _rng("huge")
    h = r.standard_normal((6, COLS))
    h[0, r.integers(0, COLS, 9)] = 1e4
    h[1, r.integers(0, COLS, 9)] = -1e6
    h[2, ::97] = 3e5
    h[3, r.integers(0, COLS, 5)] = 7e7  # f16 scale overflows
    h[4, ::131] = 3e30  # squares overflow float32
    h[5, ::257] = -1e38
    c["single_huge_value"] = h
    r = _rng("tiny")
    c["tiny_1e-30_1e-8"] = r.standard_normal((6, COLS)) * 10.0 ** r.uniform(-30, -8, (6, COLS))
    c["tiny_per_block"] = r.standard_normal((8, COLS)) * _blockwise(r, 8, 32, -30, -7)
    c["subnormal"] = r.standard_normal((2, COLS)) * 1e-39
    r = _rng("mixed")
    m = r.uniform(-1, 1, (6, COLS))
    m[0, ::2] *= -1
    m[1] = np.where(r.random(COLS) < 0.5, -1.0, 1.0) * 3.0  # +a and -a tie for the largest magnitude
    m[2, ::32] = -m[2, ::32] * 10
    m[3] = r.laplace(size=COLS) * (r.random(COLS) < 0.3)  # sparse
    m[4] = r.standard_normal(COLS) + 4.0  # positive-only, offset
    m[5] = r.standard_normal(COLS) * _blockwise(r, 1, 16, -3, 3)[0]
    c["mixed_signs"] = m
    r = _rng("halves")
    grid = r.integers(-16, 17, (10, COLS)) / 2.0
    grid[:4] *= 2.0 ** r.integers(-6, 6, (4, 1))
    q8 = r.integers(-254, 255, (2, COLS)) / 2.0
    q8[:, ::32] = 127.0  # q8_0 scale 1: every .5 is a roundf tie
    q4 = r.integers(-16, 16, (2, COLS)) / 2.0
    q4[:, ::32] = -8.0  # q4_0 scale 1: x + 8.5 lands on integers
    q5 = r.integers(-32, 32, (2, COLS)) / 2.0
    q5[:, ::32] = -16.0
    ints = r.integers(-8, 8, (2, COLS)).astype(np.float64)
    few = r.integers(0, 3, (2, COLS)).astype(np.float64)
    c["rounding_boundaries"] = np.concatenate([grid, q8, q4, q5, ints, few])
    r = _rng("negative")
    neg = -np.abs(r.standard_normal((6, COLS)))
    neg[3] -= 5.0
    neg[4] = -1000.0 + r.standard_normal(COLS) * 1e-3  # narrow range far from zero
    neg[5] = -r.uniform(0.5, 1.0, COLS)
    c["negative_only"] = neg
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in c.items()}


CASES = _cases()


def assert_same_bytes(got: torch.Tensor, ref: np.ndarray, qtype: str, label: str) -> None:
    got_np = got.cpu().numpy()
    assert got_np.dtype == np.uint8 and got_np.shape == ref.shape, (got_np.shape, ref.shape)
    if np.array_equal(got_np, ref):
        return
    nbytes = GGML_BLOCKS[qtype][1]
    bad = np.nonzero((got_np.reshape(-1, nbytes) != ref.reshape(-1, nbytes)).any(1))[0]
    first = bad[0]
    cols = np.nonzero(got_np.reshape(-1, nbytes)[first] != ref.reshape(-1, nbytes)[first])[0]
    pytest.fail(
        f"{qtype}/{label}: {len(bad)} of {ref.size // nbytes} blocks differ; first block {first}, "
        f"bytes {cols[:12].tolist()}"
    )


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("qtype", QTYPES)
def test_bytes_match_ggml(qtype: str, case: str) -> None:
    x = CASES[case]
    assert_same_bytes(quantize(torch.from_numpy(x), qtype), reference_quantize(x, qtype), qtype, case)


@pytest.mark.parametrize("qtype", QTYPES)
def test_thousands_of_blocks(qtype: str) -> None:
    r = _rng("many" + qtype)
    x = (r.standard_normal((64, 4096)) * 10.0 ** r.uniform(-2, 2, (64, 1)) + r.uniform(-1, 1, (64, 1)))
    x = x.astype(np.float32)
    got = quantize(torch.from_numpy(x), qtype)
    assert got.numel() == 64 * row_nbytes(qtype, 4096)
    assert_same_bytes(got, reference_quantize(x, qtype), qtype, "64x4096")


@pytest.mark.parametrize("qtype", QTYPES)
def test_chunks_split_rows(qtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk boundaries in the middle of a row, a non-contiguous input and a 1-D row change nothing."""
    x = CASES["normal"]
    ref = reference_quantize(x, qtype)
    block = GGML_BLOCKS[qtype][0]
    monkeypatch.setitem(ggml_encoders._CHUNK_ELEMENTS, qtype, 3 * 256)
    monkeypatch.setattr(ggml_encoders, "_DEFAULT_CHUNK_ELEMENTS", 3 * block)
    t = torch.from_numpy(x.T.copy()).t()  # same values, column-major storage
    assert not t.is_contiguous()
    assert_same_bytes(quantize(t, qtype), ref, qtype, "chunked")
    one = quantize(torch.from_numpy(x[0]), qtype)
    assert_same_bytes(one, ref[: row_nbytes(qtype, COLS)], qtype, "1-D")


# Expected RMS error of a decoded N(0, 1) tensor, ~1.3x what these encoders give.
RMSE_BOUND = {"f16": 3e-4, "bf16": 2.5e-3, "q4_0": 0.11, "q4_1": 0.10, "q5_0": 0.055, "q5_1": 0.05,
              "q8_0": 0.007, "q4_k": 0.09, "q5_k": 0.047, "q6_k": 0.023, "q2_k": 0.39, "q3_k": 0.2,
              "iq4_nl": 0.1, "iq4_xs": 0.1}


@pytest.mark.parametrize("qtype", QTYPES)
def test_decodes_near_input(qtype: str) -> None:
    """gguf-py's decoder reads the bytes back to values close to the input."""
    x = CASES["normal"]
    raw = quantize(torch.from_numpy(x), qtype).numpy().reshape(x.shape[0], -1)
    back = dequantize(raw, gguf.GGMLQuantizationType[qtype.upper()])
    assert back.shape == x.shape
    assert float(np.sqrt(np.mean((back - x) ** 2))) < RMSE_BOUND[qtype]


def test_f16_bf16_every_kind_of_float() -> None:
    """Random bit patterns: normals, subnormals, overflow to inf, ties; NaN and inf via the helpers."""
    r = _rng("bits")
    bits = r.integers(0, 2**32, (64, 1024), dtype=np.uint64).astype(np.uint32)
    f16_subnormal = r.integers(0x3300_0000, 0x3880_0000, (64, 64))  # 2**-25 .. 2**-14
    bits[:, :64] = (bits[:, :64] & 0x8000_0000) | f16_subnormal
    bits[:, 64:96] = (bits[:, 64:96] & 0xFFFF_0000) | 0x8000  # bf16 ties
    bits[:, 96:128] = (bits[:, 96:128] & 0xFFFF_E000) | 0x1000  # f16 ties
    everything = bits.view(np.float32)
    finite = np.where(np.isfinite(everything), everything, np.float32(1.0))
    for qtype in ("f16", "bf16"):
        got = quantize(torch.from_numpy(finite), qtype)
        assert_same_bytes(got, reference_quantize(finite, qtype), qtype, "bits")
    special = [np.nan, -np.nan, np.inf, -np.inf, 65504, 65520, -65519.996, 1e-8, -0.0]
    special = np.array(special, np.float32)
    special = np.concatenate([special, everything[~np.isfinite(everything)][:50]])
    n = len(special) // 32 * 32 + 32
    special = np.resize(special, n)[None]
    for qtype, fn in (("f16", fp32_to_fp16_bits), ("bf16", fp32_to_bf16_bits)):
        ref = reference_quantize(special, qtype).view(np.uint16)
        got = fn(torch.from_numpy(special)).numpy().astype(np.uint16)
        np.testing.assert_array_equal(got, ref[None])


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_is_input_error(qtype: str, bad: float) -> None:
    x = torch.from_numpy(CASES["normal"].copy())
    x[5, 700] = bad
    with pytest.raises(InputError, match=r"blk\.3\.ffn_down\.weight.*row 5, column 700"):
        quantize(x, qtype, name="blk.3.ffn_down.weight")


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError, match="'w'.*multiple of the q4_k block size 256"):
        quantize(torch.zeros(2, 320), "q4_k", name="w")
    with pytest.raises(InputError, match="2-D"):
        quantize(torch.zeros(2, 2, 32), "q8_0")
    with pytest.raises(ValueError):
        quantize(torch.zeros(2, 32), "iq2_xxs")  # a GGML type without an encoder here
    with pytest.raises(InputError, match="multiple of the q3_k block size 256"):
        quantize(torch.zeros(2, 32), "q3_k")


def test_block_table_matches_ggml() -> None:
    lib = ggml_lib()
    for qtype, (block, nbytes) in GGML_BLOCKS.items():
        assert lib.ggml_row_size(GGML_TYPE[qtype], block) == nbytes
    assert GGML_BLOCKS["q4_k"] == (256, 144) and GGML_BLOCKS["q6_k"] == (256, 210)
    assert GGML_BLOCKS["q8_0"] == (32, 34) and GGML_BLOCKS["f16"] == (1, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("qtype", QTYPES)
def test_cuda_matches_ggml(qtype: str) -> None:
    for case in ("normal", "single_huge_value", "tiny_per_block", "rounding_boundaries", "zeros"):
        x = CASES[case]
        got = quantize(torch.from_numpy(x).cuda(), qtype)
        assert got.device.type == "cuda"
        assert_same_bytes(got, reference_quantize(x, qtype), qtype, case + "/cuda")


# --------------------------------------------------------------------------- importance matrix
#
# With an importance matrix ggml takes each type's ``_impl`` path (a weighted scale search) instead
# of ``_ref``; f16, bf16 and q8_0 ignore the matrix (ggml has no variant), and the encoders too.

WEIGHTED_QTYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")
IGNORES_IMPORTANCE = ("f16", "bf16", "q8_0")


def _importance(kind: str, cols: int) -> np.ndarray:
    """One weight per column, as llama.cpp's imatrix gives (mean squared activations): >= 0."""
    r = _rng("imp" + kind + str(cols))
    if kind == "uniform":
        w = np.ones(cols)
    elif kind == "lognormal":
        w = np.exp(r.standard_normal(cols) * 1.5)
    elif kind == "zeros":  # scattered zero columns, and whole 32- and 256-blocks weighted zero
        w = np.exp(r.standard_normal(cols)) * (r.random(cols) < 0.7)
        w[256:512] = 0.0
        w[32 * 3 : 32 * 4] = 0.0
    elif kind == "huge_range":
        w = 10.0 ** r.uniform(-20, 20, cols)
    elif kind == "spiky":  # a few dominant columns, the rest tiny
        w = np.full(cols, 1e-3)
        w[r.integers(0, cols, max(1, cols // 64))] = 1e4
    else:
        raise AssertionError(kind)
    return w.astype(np.float32)


IMPORTANCE_KINDS = ("uniform", "lognormal", "zeros", "huge_range", "spiky")


@pytest.mark.parametrize("kind", IMPORTANCE_KINDS)
@pytest.mark.parametrize("qtype", QTYPES)
def test_importance_bytes_match_ggml(qtype: str, kind: str) -> None:
    """Every edge case of ``CASES`` with every kind of importance vector."""
    imp = _importance(kind, COLS)
    for case in sorted(CASES):
        x = CASES[case]
        got = quantize(torch.from_numpy(x), qtype, importance=torch.from_numpy(imp))
        assert_same_bytes(got, reference_quantize(x, qtype, imp), qtype, f"{case}/{kind}")


def _random_rows(dist: str, rows: int, cols: int) -> np.ndarray:
    r = _rng("bulk" + dist)
    if dist == "gaussian":
        x = r.standard_normal((rows, cols))
    elif dist == "heavy_tailed":
        x = r.standard_t(2.0, (rows, cols))
    elif dist == "outlier_columns":  # as in LLM weights: a few input channels far larger
        x = r.standard_normal((rows, cols))
        x[:, r.integers(0, cols, cols // 100)] *= 40.0
    elif dist == "skewed":  # offset, one-sided rows and blocks of very different scale
        x = r.standard_normal((rows, cols)) + r.uniform(-2, 2, (rows, 1))
        x *= np.repeat(10.0 ** r.uniform(-2, 2, (rows, cols // 32)), 32, axis=1)
    else:
        raise AssertionError(dist)
    x *= 10.0 ** r.uniform(-3, 3, (rows, 1))  # row scales
    return x.astype(np.float32)


# Each distribution is paired with one kind of importance vector, so that the bulk runs cover
# every kind (the edge cases above meet every kind with every type).
DISTRIBUTIONS = {"gaussian": "lognormal", "heavy_tailed": "huge_range", "outlier_columns": "zeros",
                 "skewed": "uniform"}
BULK_COLS = 4096
# (qtype, with importance): the encoders and variants added with the importance matrix.
BULK = [(q, False) for q in ("q2_k", "q3_k", "iq4_nl", "iq4_xs")] + [(q, True) for q in WEIGHTED_QTYPES]
BULK_BLOCKS = 25_000  # per distribution: 4 x 25k = 1e5 blocks of each type and variant


def _bulk_case(qtype: str, weighted: bool, dist: str, nblocks: int) -> None:
    block = GGML_BLOCKS[qtype][0]
    rows = -(-nblocks * block // BULK_COLS)
    x = _random_rows(dist, rows, BULK_COLS)
    kind = DISTRIBUTIONS[dist] if weighted else None
    imp = None if kind is None else _importance(kind, BULK_COLS)
    ref = reference_quantize(x, qtype, imp)
    got = quantize(torch.from_numpy(x), qtype, importance=None if imp is None else torch.from_numpy(imp))
    assert_same_bytes(got, ref, qtype, f"{dist}/{kind or 'no importance'}/{rows}x{BULK_COLS}")


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize(("qtype", "weighted"), BULK)
def test_random_blocks_match_ggml(qtype: str, weighted: bool, dist: str) -> None:
    """A quick sample: 512 blocks of each type and variant per distribution."""
    _bulk_case(qtype, weighted, dist, 512)


@pytest.mark.slow
@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize(("qtype", "weighted"), BULK)
def test_many_random_blocks_match_ggml(qtype: str, weighted: bool, dist: str) -> None:
    """1e5 blocks of each new type and variant in all (25k per distribution)."""
    _bulk_case(qtype, weighted, dist, BULK_BLOCKS)


@pytest.mark.parametrize("qtype", WEIGHTED_QTYPES)
def test_importance_chunks_split_rows(qtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With importance too: chunks cutting rows, a non-contiguous input, a 1-D row, a float64
    importance vector (converted) and a numpy one give the same bytes."""
    x = CASES["normal"]
    imp = _importance("lognormal", COLS)
    ref = reference_quantize(x, qtype, imp)
    block = GGML_BLOCKS[qtype][0]
    monkeypatch.setitem(ggml_encoders._CHUNK_ELEMENTS, qtype, 3 * 256)
    monkeypatch.setattr(ggml_encoders, "_WEIGHTED_CHUNK_ELEMENTS", 3 * block)
    t = torch.from_numpy(x.T.copy()).t()
    assert_same_bytes(quantize(t, qtype, importance=torch.from_numpy(imp).double()), ref, qtype, "chunked")
    one = quantize(torch.from_numpy(x[1]), qtype, importance=imp)
    start = row_nbytes(qtype, COLS)
    assert_same_bytes(one, ref[start : 2 * start], qtype, "1-D")


@pytest.mark.parametrize("qtype", WEIGHTED_QTYPES)
def test_importance_changes_the_encoding(qtype: str) -> None:
    """The importance vector is used (not silently ignored) where ggml has a weighted variant."""
    x = CASES["normal"]
    plain = quantize(torch.from_numpy(x), qtype)
    weighted = quantize(torch.from_numpy(x), qtype, importance=torch.from_numpy(_importance("spiky", COLS)))
    assert not torch.equal(plain, weighted)


@pytest.mark.parametrize("qtype", IGNORES_IMPORTANCE)
def test_importance_ignored_without_a_weighted_variant(qtype: str) -> None:
    x = CASES["normal"]
    imp = torch.from_numpy(_importance("spiky", COLS))
    assert torch.equal(quantize(torch.from_numpy(x), qtype, importance=imp), quantize(torch.from_numpy(x), qtype))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.ones(COLS - 32), r"shape \(992,\).*\(1024,\)"),
        (torch.ones(2, COLS), r"shape \(2, 1024\)"),
        (torch.ones(COLS).index_fill_(0, torch.tensor([7]), float("nan")), "nan at column 7"),
        (torch.ones(COLS).index_fill_(0, torch.tensor([9]), float("inf")), "inf at column 9"),
        (torch.ones(COLS).index_fill_(0, torch.tensor([11]), -0.5), "-0.5 at column 11"),
        (torch.ones(COLS, dtype=torch.float64).index_fill_(0, torch.tensor([3]), 1e300), "inf at column 3"),
    ],
)
@pytest.mark.parametrize("qtype", ["q4_k", "q8_0"])
def test_bad_importance_is_input_error(qtype: str, bad: torch.Tensor, match: str) -> None:
    x = torch.from_numpy(CASES["normal"])
    with pytest.raises(InputError, match=r"blk\.0\.attn_q\.weight.*" + match):
        quantize(x, qtype, name="blk.0.attn_q.weight", importance=bad)


def test_importance_zero_weights_allowed() -> None:
    """Zeros (and -0.0) are valid weights: an unused column gets no say in its block's scale."""
    x = CASES["normal"]
    imp = _importance("zeros", COLS)
    imp[5] = -0.0
    got = quantize(torch.from_numpy(x), "q4_k", importance=torch.from_numpy(imp))
    assert_same_bytes(got, reference_quantize(x, "q4_k", imp), "q4_k", "zeros")


def _best_index_int8_scalar(x: np.float32) -> int:
    """ggml's best_index_int8(16, kvalues_iq4nl, x), one float32 at a time."""
    val = [np.float32(v) for v in iquants.KVALUES_IQ4NL]
    if x <= val[0]:
        return 0
    if x >= val[15]:
        return 15
    ml, mu = 0, 15
    while mu - ml > 1:
        mav = (ml + mu) // 2
        if x < val[mav]:
            mu = mav
        else:
            ml = mav
    return mu - 1 if np.float32(x - val[mu - 1]) < np.float32(val[mu] - x) else mu


def test_iq4_best_index_is_ggmls() -> None:
    """The table lookup equals the binary search with its float32 comparisons, at and next to
    every midpoint, at the ends, for infinities, NaN, zeros and random values."""
    vals = iquants.KVALUES_IQ4NL
    xs = [np.float32(v) for v in (0.0, -0.0, 1e-45, -1e-45, 1e30, -1e30, np.inf, -np.inf, np.nan)]
    for a, b in pairwise(vals):
        m = np.float32((a + b) / 2)
        xs += [m, np.nextafter(m, np.float32(-np.inf)), np.nextafter(m, np.float32(np.inf)), np.float32(a), np.float32(b)]
    xs += list(_rng("best_index").uniform(-140, 140, 4000).astype(np.float32))
    x = np.array(xs, dtype=np.float32)
    got = iquants.best_index(torch.from_numpy(x)).numpy()
    want = np.array([_best_index_int8_scalar(v) for v in x])
    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("qtype", WEIGHTED_QTYPES)
def test_cuda_importance_matches_ggml(qtype: str) -> None:
    for kind in ("lognormal", "zeros", "huge_range"):
        imp = _importance(kind, COLS)
        for case in ("normal", "single_huge_value", "tiny_per_block", "rounding_boundaries", "zeros"):
            x = CASES[case]
            got = quantize(torch.from_numpy(x).cuda(), qtype, importance=torch.from_numpy(imp).cuda())
            assert got.device.type == "cuda"
            assert_same_bytes(got, reference_quantize(x, qtype, imp), qtype, f"{case}/{kind}/cuda")


# --------------------------------------------------------------------------- NaN scales on a GPU
#
# Squares past float32's range (the single_huge_value case) make some scales NaN.  x86 and CUDA give
# such a NaN different sign bits, so on a GPU the rows holding one are found from the bytes and
# redone on the CPU.  Here, on the CPU: the rows are found, and bytes with the NaN signs flipped (what
# CUDA leaves) come back to ggml's.


# the types and matrices whose NaN scales the first GPU run (2026-12-04, H200) found with other signs
@pytest.mark.parametrize("qtype,imp_kind", [("iq4_nl", None), ("q4_0", "lognormal"), ("q5_0", "lognormal"),
                                            ("q2_k", "lognormal"), ("q4_k", "lognormal"), ("q5_k", "lognormal"),
                                            ("iq4_nl", "lognormal")])
def test_nan_scale_rows_are_found_and_redone(qtype: str, imp_kind: str | None) -> None:
    x = CASES["single_huge_value"]
    imp = None if imp_kind is None else _importance(imp_kind, COLS)
    want = reference_quantize(x, qtype, imp)
    data = torch.from_numpy(x)
    imp_t = None if imp is None else torch.from_numpy(imp)
    rows = ggml_encoders.nan_scale_rows(torch.from_numpy(want), qtype, x.shape[0]).tolist()
    assert rows and set(rows) <= {4, 5}  # only the rows with values past ~1e19
    flipped = want.copy()
    blocks = flipped.reshape(-1, GGML_BLOCKS[qtype][1])
    for o in ggml_encoders._F16_FIELDS[qtype]:
        h = blocks[:, o].astype(np.int32) | (blocks[:, o + 1].astype(np.int32) << 8)
        nan = ((h & 0x7C00) == 0x7C00) & ((h & 0x03FF) != 0)
        blocks[nan, o + 1] ^= 0x80
    assert not np.array_equal(flipped, want)
    got = torch.from_numpy(flipped)
    ggml_encoders._redo_nan_rows_on_cpu(got, data, qtype, imp_t)
    assert_same_bytes(got, want, qtype, "single_huge_value/nan-redone")
    assert ggml_encoders.nan_scale_rows(torch.from_numpy(reference_quantize(CASES["normal"], qtype, imp)), qtype,
                                        CASES["normal"].shape[0]).numel() == 0
