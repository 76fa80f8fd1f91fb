"""The C scale searches against the torch ones they transcribe: the same bits on edge cases and on
random groups, for every parameter set the K-quant encoders use.  (The encoders' own tests compare
their bytes with ggml's, and on a CPU they run the C searches.)"""

from __future__ import annotations

import shutil

import pytest
import torch

from r1v_quant.quantize.ggml import native, search

# (nmax, rmin, rdelta, nstep, use_mad) as Q2_K, Q4_K and Q5_K call make_qkx (plain, then weighted)
QKX = [(3, -0.5, 0.1, 15, True), (15, -1.0, 0.1, 20, False), (31, -0.5, 0.1, 15, False),
       (3, -0.9, 0.05, 36, False), (15, -0.9, 0.05, 36, False), (31, -0.9, 0.05, 36, False)]


def groups(n: int, seed: int) -> torch.Tensor:
    """Element-major [n, G] groups: random scales and signs, then the edge cases."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3000, generator=g) * torch.rand(1, 3000, generator=g).pow(4) * 10
    x[:, 0] = 0  # all zero
    x[:, 1] = 0.75  # constant, positive
    x[:, 2] = -2.5  # constant, negative
    x[:, 3] = x[:, 3].abs() + 1  # all positive: the min clamps to 0
    x[:, 4] = -x[:, 4].abs()  # all negative
    x[:, 5] *= 1e-30  # tiny, near GROUP_MAX_EPS
    x[:, 6] *= 1e30  # huge: squares overflow to infinity
    x[0, 7] = 1e6  # one outlier
    x[:, 8] = torch.tensor([0.5, -0.5]).repeat(n // 2)  # ties in rounding
    x[:, 9] = torch.round(x[:, 9] * 4) / 4  # exact quarter steps
    return x


def torch_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "usable", lambda x: False)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.contiguous(), b.contiguous()
    if a.dtype == torch.float32:
        a, b = a.view(torch.int32), b.view(torch.int32)
    return torch.equal(a, b)


def test_the_kernel_builds_where_there_is_a_compiler() -> None:
    """No silent fallback on a machine that can build it (CI's can)."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: the torch searches run instead")
    assert native.available()


@pytest.mark.parametrize("params", QKX, ids=lambda p: f"nmax{p[0]}-nstep{p[3]}{'-mad' if p[4] else ''}")
@pytest.mark.parametrize("n", [16, 32])
def test_make_qkx_native_is_the_torch_search(params: tuple, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not native.available():
        pytest.skip("no C compiler here")
    nmax, rmin, rdelta, nstep, use_mad = params
    x = groups(n, seed=n + nmax)
    w = x.abs().mean(0, keepdim=True) + x.abs()
    w[:, 10] = 0  # weights of zero (an importance matrix may hold them)
    got = native.make_qkx(x, w, nmax, rmin, rdelta, nstep, use_mad)
    torch_search(monkeypatch)
    want = search.make_qkx(x, w, nmax, rmin, rdelta, nstep, use_mad)
    for name, a, b in zip(("scale", "the_min", "levels"), got, want):
        assert same_bits(a, b), name


@pytest.mark.parametrize("nmax", [4, 32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [16, 32])
def test_make_qx_native_is_the_torch_search(nmax: int, weighted: bool, n: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if not native.available():
        pytest.skip("no C compiler here")
    x = groups(n, seed=nmax * n)
    x[:, 11] = float("inf")  # Q3_K's second level runs on scales that may have overflowed
    x[3, 12] = float("nan")
    w = x.abs().nan_to_num(0, 1e30, 0) + 0.5 if weighted else None
    got = native.make_qx(x, nmax, w)
    torch_search(monkeypatch)
    want = search.make_qx(x, nmax, w)
    assert same_bits(got[0], want[0]) and same_bits(got[1], want[1])


@pytest.mark.parametrize("nmax", [15, 63])  # Q2_K's 16 scales and mins, Q4_K/Q5_K's 8
@pytest.mark.parametrize("n", [8, 16])
def test_make_qp_native_is_the_torch_search(nmax: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not native.available():
        pytest.skip("no C compiler here")
    x = groups(n, seed=nmax + n).abs()  # sub-block scales and mins: >= 0 as the encoders pass them
    x[:, 11] = -x[:, 11]  # negative levels wrap in the uint8_t store
    x[2, 12] = float("nan")
    w = x.abs().nan_to_num(0, 1e30, 0) + 0.25
    w[:, 10] = 0
    got = native.make_qp(x, nmax, w)
    torch_search(monkeypatch)
    want = search.make_qp(x, nmax, w)
    assert same_bits(got[0], want[0]) and same_bits(got[1], want[1])


@pytest.mark.parametrize("qtype", ["q4_k", "q6_k", "q8_0", "q4_0", "iq4_xs"])
def test_blocks_of_rows_encoded_apart_join_into_the_whole_tensors_bytes(qtype: str) -> None:
    """The GGUF export encodes a tensor a block of rows at a time, on several threads, and writes
    each block's bytes at its place: that is exact only if rows are encoded each on their own,
    with and without importance (Q4_0's row-weighted search included), at any block boundary."""
    from r1v_quant.quantize.ggml_encoders import quantize

    g = torch.Generator().manual_seed(5)
    x = torch.randn(600, 2048, generator=g) * 0.05  # several chunks
    imp = torch.rand(2048, generator=g)
    for importance in (None, imp):
        whole = quantize(x, qtype, importance=importance)
        cuts = [0, 1, 97, 300, 599, 600]
        joined = torch.cat([quantize(x[a:b], qtype, importance=importance) for a, b in zip(cuts, cuts[1:])])
        assert torch.equal(whole, joined)


def test_groups_split_over_threads_give_the_same_result() -> None:
    if not native.available():
        pytest.skip("no C compiler here")
    x = groups(32, seed=7).repeat(1, 4)  # 12000 groups: several threads' worth
    w = x.abs() + 0.1
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.make_qkx(x, w, 15, -1.0, 0.1, 20, False)
        torch.set_num_threads(4)
        four = native.make_qkx(x, w, 15, -1.0, 0.1, 20, False)
    finally:
        torch.set_num_threads(with_threads)
    assert all(same_bits(a, b) for a, b in zip(one, four))


@pytest.mark.parametrize("qtype", ["q4_k", "q6_k"])
@pytest.mark.parametrize("weighted", [False, True])
def test_block_finishers_give_the_torch_encoders_bytes(qtype: str, weighted: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole Q4_K / Q6_K blocks with the C end of the encoder against the torch one: zero blocks, a zero
    sub-block (its scale is 0, so its searched levels are kept), tiny and huge blocks, outliers."""
    if not native.available():
        pytest.skip("no C compiler here")
    from r1v_quant.quantize.ggml import kquants

    g = torch.Generator().manual_seed(11)
    x = torch.randn(700, 256, generator=g) * torch.rand(700, 1, generator=g).pow(3) * 4
    x[0] = 0
    x[1, :32] = 0
    x[2] *= 1e-20
    x[3] *= 1e25
    x[4, 7] = 1e4
    x[5] = x[5].abs()
    qw = torch.rand(700, 256, generator=g) + 0.001
    encode = getattr(kquants, f"encode_{qtype}_weighted" if weighted else f"encode_{qtype}")
    args = (x, qw) if weighted else (x,)
    got = encode(*args)
    monkeypatch.setattr(native, "usable_blocks", lambda x: False)
    want = encode(*args)
    assert torch.equal(got.reshape(-1), want.reshape(-1))
