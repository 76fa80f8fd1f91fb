"""AutoAWQ GEMM 4-bit format: group quantization, packing, and bit-exact agreement with AutoAWQ."""

from __future__ import annotations

import warnings

import pytest
from peers import require
import torch

from r1v_quant.formats.awq_gemm import ORDER, dequantize, pack_gemm, quantize_groups, unpack_gemm

G = 128
# fp16 round-to-nearest may store a scale up to 2**-11 (relative) below the float32 one, so the top of
# a group can sit 15 * 2**-11 steps past the grid (see the module docstring).
FP16_SLACK = 15 * 2.0**-11 / (1 - 2.0**-11)


def _weights(n: int, k: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g).to(dtype)


def _checkpoint_like(n: int, k: int, seed: int) -> torch.Tensor:
    """BF16 weight with LLM-ish statistics: std ~0.02, a few large outlier input channels."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 0.02
    cols = torch.randperm(k, generator=g)[:4]
    w[:, cols] *= 20
    return w.to(torch.bfloat16)


def _random_layout(n: int, k: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    z = torch.randint(0, 16, (n, k // G), generator=g, dtype=torch.uint8)
    s = (torch.rand(n, k // G, generator=g) * 0.01 + 1e-4).to(torch.float16).to(torch.float32)
    return q, z, s


# --- bit layout ---------------------------------------------------------------------------------


def test_bit_layout_hand_built():
    # Columns 0..7 hold 0..7.  Nibble j holds column ORDER[j] = 0,2,4,6,1,3,5,7, so reading nibbles
    # from the top (j=7) down: 7 5 3 1 6 4 2 0 -> 0x75316420.
    q = torch.arange(8, dtype=torch.uint8).reshape(1, 8).repeat_interleave(G, dim=0).t().contiguous()
    # q is [N=8, K=128]; every input row k of W^T holds columns 0..7 = 0..7.
    z = torch.arange(8, dtype=torch.uint8).reshape(8, 1)
    s = torch.ones(8, 1)
    p = pack_gemm(q, z, s)
    assert p["qweight"].dtype == torch.int32 and p["qweight"].shape == (G, 1)
    assert p["qzeros"].dtype == torch.int32 and p["qzeros"].shape == (1, 1)
    assert p["scales"].dtype == torch.float16 and p["scales"].shape == (1, 8)
    assert torch.all(p["qweight"] == 0x75316420)  # 1966171168
    assert int(p["qzeros"][0, 0]) == 0x75316420


def test_bit_layout_negative_words():
    # Columns hold 8..15: nibbles from the top 15 13 11 9 14 12 10 8 -> 0xFDB9ECA8, bit 31 set, which
    # as int32 is 0xFDB9ECA8 - 2**32 = -38146904.
    q = (torch.arange(8, dtype=torch.uint8) + 8).reshape(8, 1).expand(8, G).contiguous()
    z = (torch.arange(8, dtype=torch.uint8) + 8).reshape(8, 1)
    p = pack_gemm(q, z, torch.ones(8, 1))
    assert torch.all(p["qweight"] == -38146904)
    assert int(p["qzeros"][0, 0]) == -38146904
    back_q, back_z, _ = unpack_gemm(p["qweight"], p["qzeros"], p["scales"])
    assert torch.equal(back_q, q) and torch.equal(back_z, z)
    # All ones: every nibble 15 -> int32 -1.
    p = pack_gemm(torch.full((8, G), 15, dtype=torch.uint8), torch.full((8, 1), 15, dtype=torch.uint8), torch.ones(8, 1))
    assert torch.all(p["qweight"] == -1) and torch.all(p["qzeros"] == -1)


def test_order_matches_unpack_rule():
    # Unpacking reads shifts 0,4,...,28 and reorders with [0,4,1,5,2,6,3,7]: the inverse of ORDER.
    reverse = [0, 4, 1, 5, 2, 6, 3, 7]
    assert [ORDER[r] for r in reverse] == list(range(8))


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(8, 128), (256, 128), (640, 256), (256, 640)])
def test_pack_unpack_exact(n, k):
    q, z, s = _random_layout(n, k, seed=n + k)
    p = pack_gemm(q, z, s)
    assert p["qweight"].shape == (k, n // 8) and p["qzeros"].shape == (k // G, n // 8)
    assert p["scales"].shape == (k // G, n)
    assert (p["qweight"] < 0).any()  # bit 31 occurs in random data and must survive
    q2, z2, s2 = unpack_gemm(**p)
    assert q2.dtype == torch.uint8 and z2.dtype == torch.uint8 and s2.dtype == torch.float32
    assert torch.equal(q2, q) and torch.equal(z2, z) and torch.equal(s2, s)
    p2 = pack_gemm(q2, z2, s2)
    assert all(torch.equal(p[key], p2[key]) for key in p)


def test_unpack_pack_exact_from_random_words():
    g = torch.Generator().manual_seed(7)
    qweight = torch.randint(-(2**31), 2**31 - 1, (256, 16), generator=g, dtype=torch.int64).to(torch.int32)
    qzeros = torch.randint(-(2**31), 2**31 - 1, (2, 16), generator=g, dtype=torch.int64).to(torch.int32)
    scales = torch.rand(2, 128, generator=g).to(torch.float16)
    q, z, s = unpack_gemm(qweight, qzeros, scales)
    p = pack_gemm(q, z, s)
    assert torch.equal(p["qweight"], qweight) and torch.equal(p["qzeros"], qzeros)
    assert torch.equal(p["scales"], scales)


# --- quantization -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n,k,dtype", [(128, 256, torch.float32), (64, 640, torch.bfloat16)])
def test_quantize_error_bound(n, k, dtype):
    w = _weights(n, k, seed=k, dtype=dtype)
    q, z, s = quantize_groups(w, G)
    assert q.dtype == torch.uint8 and z.dtype == torch.uint8 and s.dtype == torch.float32
    assert q.shape == (n, k) and z.shape == (n, k // G) and s.shape == (n, k // G)
    assert int(q.max()) <= 15 and int(z.max()) <= 15
    # scales are exactly float16 values: the stored artifact dequantizes to what dequantize() reports
    assert torch.equal(s.to(torch.float16).to(torch.float32), s)
    err = (dequantize(q, z, s, G) - w.float()).abs().reshape(n, k // G, G)
    bound = (s * (0.5 + FP16_SLACK) * (1 + 1e-6)).unsqueeze(-1)
    assert torch.all(err <= bound)
    # everything but the top element of a group is within s/2 (plus float32 rounding of w / s)
    top = w.float().reshape(n, k // G, G) == w.float().reshape(n, k // G, G).amax(-1, keepdim=True)
    assert torch.all(err[~top] <= (s * 0.5 * (1 + 1e-6)).unsqueeze(-1).expand_as(err)[~top])


def test_quantize_exact_scale_strict_half_step():
    # Range exactly 15 * 2**-6 -> scale 2**-6 is a float16 value: strict |err| <= s/2 everywhere.
    g = torch.Generator().manual_seed(3)
    w = (torch.rand(16, 256, generator=g) * 15 - 5) * 2.0**-6
    w[:, 0::G] = -5 * 2.0**-6
    w[:, 1::G] = 10 * 2.0**-6
    q, z, s = quantize_groups(w, G)
    assert torch.all(s == 2.0**-6) and torch.all(z == 5)
    err = (dequantize(q, z, s, G) - w).abs()
    assert torch.all(err <= 2.0**-7)


def test_quantize_uses_fp16_scale():
    # max - min = 0.3 -> float32 scale 0.02 is not a float16 value; the stored one is fp16(0.02).
    w = torch.linspace(-0.1, 0.2, G).reshape(1, G).repeat(8, 1)
    q, z, s = quantize_groups(w, G)
    s16 = torch.tensor(0.3 / 15).to(torch.float16).to(torch.float32)
    assert torch.all(s == s16)
    expect_z = (-torch.round(torch.tensor(-0.1) / s16)).clamp(0, 15)
    assert torch.all(z == expect_z.to(torch.uint8))
    expect_q = (torch.round(w / s16) + expect_z).clamp(0, 15).to(torch.uint8)
    assert torch.equal(q, expect_q)


def test_quantize_clip_max_val():
    w = _weights(16, 256, seed=11)
    mv = w.abs().reshape(16, 2, G).amax(-1) * 0.8
    q, z, s = quantize_groups(w, G, max_val=mv)
    clipped = torch.maximum(torch.minimum(w.reshape(16, 2, G), mv[..., None]), -mv[..., None]).reshape(16, 256)
    q2, z2, s2 = quantize_groups(clipped, G)
    assert torch.equal(q, q2) and torch.equal(z, z2) and torch.equal(s, s2)
    # AWQ's clip search returns [N, K/G, 1]; accepted as well
    q3, z3, s3 = quantize_groups(w, G, max_val=mv[..., None])
    assert torch.equal(q, q3) and torch.equal(z, z3) and torch.equal(s, s3)
    with pytest.raises(ValueError, match="max_val"):
        quantize_groups(w, G, max_val=mv[:, :1])


def test_quantize_constant_group():
    w = torch.zeros(8, G)
    q, z, s = quantize_groups(w, G)
    assert torch.all(s > 0)  # 1e-5/15 survives float16 as a subnormal
    assert torch.equal(dequantize(q, z, s, G), w)


def test_shape_errors():
    with pytest.raises(ValueError, match="not divisible by the group size"):
        quantize_groups(torch.zeros(8, 100), G)
    with pytest.raises(ValueError, match="not divisible by the group size"):
        dequantize(torch.zeros(8, 100, dtype=torch.uint8), torch.zeros(8, 1), torch.ones(8, 1), G)
    q, z, s = _random_layout(12, 128, seed=1)
    with pytest.raises(ValueError, match="not divisible by 8"):
        pack_gemm(q, z, s)
    q, z, s = _random_layout(8, 256, seed=1)
    with pytest.raises(ValueError, match="groups"):
        pack_gemm(q[:, :255], z, s)  # 255 columns are not 2 whole groups
    with pytest.raises(ValueError, match="float16"):
        pack_gemm(q, z, s + 1e-7)
    with pytest.raises(ValueError, match="0..15"):
        pack_gemm(q.to(torch.int32) + 1, z, s)
    with pytest.raises(ValueError, match="inconsistent"):
        p = pack_gemm(q, z, s)
        unpack_gemm(p["qweight"], p["qzeros"], p["scales"][:, :4])


# --- compatibility proof against AutoAWQ ------------------------------------------------------------


@pytest.mark.slow
def test_autoawq_dequantize_gemm_matches():
    """AutoAWQ's own unpacker reads our packed tensors as exactly the weights we report.

    ``awq.utils.packing_utils.dequantize_gemm`` returns float16 W^T [K, N]: it computes the integer
    difference ``q - z`` (int8) times the float16 scale in float16.  Our ``dequantize`` computes the
    same product in float32, where it is exact (|q - z| <= 15 has 4 bits, the scale an 11-bit
    significand).  A single IEEE multiply rounds the exact product once, so "exactly" means:
    torch.equal(AutoAWQ's float16 result, our float32 result rounded to float16), bit for bit, for
    every element — and likewise against our dequantization done in float16 in AutoAWQ's order.
    The float32 value we report is the exact mathematical value of the stored artifact; a float16
    runtime sees it rounded to the nearest float16.
    """
    # awq/__init__ calls warnings.simplefilter("default", DeprecationWarning) and warns about its own
    # deprecation; record=True swallows that and restores the filters so the change does not leak.
    with warnings.catch_warnings(record=True):
        packing = require("awq.utils.packing_utils")

    cases = [
        _weights(128, 256, seed=1),
        _weights(640, 256, seed=2),
        _weights(256, 640, seed=3),
        _checkpoint_like(896, 512, seed=4),  # bf16, like a Qwen2 projection slice
    ]
    for w in cases:
        n, k = w.shape
        q, z, s = quantize_groups(w, G)
        ours = dequantize(q, z, s, G)
        p = pack_gemm(q, z, s)
        theirs = packing.dequantize_gemm(p["qweight"], p["qzeros"], p["scales"], 4, G)
        assert theirs.dtype == torch.float16 and theirs.shape == (k, n)
        assert torch.equal(theirs.float(), ours.to(torch.float16).float().t())
        ours16 = (q.to(torch.int16) - z.to(torch.int16).repeat_interleave(G, dim=1)).to(torch.float16) * (
            s.to(torch.float16).repeat_interleave(G, dim=1)
        )
        assert torch.equal(theirs, ours16.t())

    # With a clip (max_val) and on raw random words (not produced by our quantizer).
    w = _checkpoint_like(256, 256, seed=5)
    mv = w.float().abs().reshape(256, 2, G).amax(-1) * 0.7
    q, z, s = quantize_groups(w, G, max_val=mv)
    p = pack_gemm(q, z, s)
    theirs = packing.dequantize_gemm(p["qweight"], p["qzeros"], p["scales"], 4, G)
    assert torch.equal(theirs.float(), dequantize(q, z, s, G).to(torch.float16).float().t())
