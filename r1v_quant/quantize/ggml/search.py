"""ggml's shared scale searches (``ggml-quants.c`` helpers), for every group of a chunk at once.

Inputs are element-major: ``x[i, g]`` is element ``i`` of group ``g``.  Each C loop over a group's
elements becomes a Python loop over ``i`` whose body is one torch op on all groups; each C search
over trial scales becomes a loop over the trials.  A trial that wins replaces the state later
trials start from, so trials stay sequential.  Refinement passes that C ends per group (``if
(!n_changed) break``) go on here only for the groups that changed in the previous pass: a pass
that changes nothing leaves a group's state as it was, so every later pass would change nothing.

Rounding is ggml's ``nearest_int`` followed by a clamp.  Where a trial's values are provably
finite and below 2**22 in magnitude (bounded from each group's extremes), plain round-half-even
gives the same levels in fewer passes; otherwise the exact emulation (wrap-around, NaN -> 0) runs.

On a CPU, ``make_qkx``, ``make_qx`` and ``make_qp`` hand their groups to the C transcription in
``kernels/ggml_search.c`` (``native.py``) when it builds: same results, several times faster.
"""

from __future__ import annotations

import numpy as np
import torch

from ...read.finite import all_finite
from . import native
from .emulation import (
    GROUP_MAX_EPS,
    div,
    f32_consts,
    first_absmax,
    first_min_max,
    levels,
    levels_fast,
    nearest_int,
    seq_sum,
    within_round_range,
)

_REFINE_PASSES = 5  # the ``itry < 5`` loops of make_q3_quants and make_qp_quants


def _refine(x, w, wx, lvl, sumlx, suml2, step):
    """The ``for (itry = 0; itry < 5; ++itry) { for (i...) ...; if (!n_changed) break; }`` loop
    of make_q3_quants / make_qp_quants.  ``step`` moves element ``i``'s level of every group given
    and returns (level, candidate sumlx, candidate suml2, taken); ``lvl`` [n, G] is updated in
    place.  After the first pass only the groups that changed in the previous pass are carried on
    (gathered, then scattered back): the others would change nothing more.  Returns the sums."""
    active = None
    for _ in range(_REFINE_PASSES):
        if active is None:
            xs, ws, wxs, ls, slx, sl2 = x, w, wx, lvl, sumlx, suml2
        else:
            xs, ws, wxs, ls = (t.index_select(1, active) for t in (x, w, wx, lvl))
            slx, sl2 = sumlx.index_select(0, active), suml2.index_select(0, active)
        changed = torch.zeros(slx.shape, dtype=torch.bool, device=slx.device)
        for i in range(x.shape[0]):
            ls[i], slx_new, sl2_new, take = step(xs[i], ws[i], wxs[i], ls[i], slx, sl2)
            slx = torch.where(take, slx_new, slx)
            sl2 = torch.where(take, sl2_new, sl2)
            changed |= take
        if active is None:
            sumlx, suml2 = slx, sl2
            active = changed.nonzero().squeeze(1)
        else:
            lvl.index_copy_(1, active, ls)
            sumlx.index_copy_(0, active, slx)
            suml2.index_copy_(0, active, sl2)
            active = active[changed]
        if active.numel() == 0:
            break
    return sumlx, suml2


def make_qx(x: torch.Tensor, nmax: int, weights: torch.Tensor | None = None):
    """``make_qx_quants(n, nmax, x, L, rmse_type=1, weights)``: signed levels around one scale.

    ``weights`` None means ``x*x`` (ggml's rmse_type 1 without quant weights).  Returns
    (scale [G], L int32 [n, G] in ``0 .. 2*nmax-1``; all 0 for a group whose largest magnitude is
    below GROUP_MAX_EPS).  Run on scales (Q3_K's second level) the values can be infinite or NaN;
    then every trial rounds with the exact ``nearest_int`` emulation.
    """
    if native.usable(x):
        return native.make_qx(x, nmax, weights)
    amax, mx = first_absmax(x, 0)
    zero = amax < GROUP_MAX_EPS
    # For finite x every value a trial rounds is |fl(c/max) * x| <= ~|c| <= nmax + 1 (|x| <= |max|,
    # and |max| >= GROUP_MAX_EPS keeps c/max finite), so plain rounding is exact.  Non-finite x
    # (scales that overflowed) take the exact emulation.
    fast = all_finite(x)
    mx = torch.where(zero, torch.ones_like(mx), mx)  # zero groups are discarded: keep them finite
    f32 = np.float32
    # iscale = -nmax/max, then -(nmax + 0.1f*is)/max for is = -9..9, is != 0
    cands = [f32(-nmax)] + [-(f32(nmax) + f32(0.1) * f32(i)) for i in range(-9, 10) if i != 0]
    consts = f32_consts(cands, x.device)[:, None].expand(-1, x.shape[1]).contiguous()  # [C, G]
    w = x * x if weights is None else weights
    wx = w * x  # w*x[i]*l evaluates (w*x[i])*l
    terms = torch.empty((2,) + x.shape, dtype=torch.float32, device=x.device)
    t = torch.empty_like(x)
    lf = torch.empty_like(x)
    scale = best = best_iscale = None
    for c in range(len(cands)):
        iscale = div(consts[c], mx)
        levels_fast(torch.mul(x, iscale, out=t), -nmax, nmax - 1, fast, out=lf)
        torch.mul(wx, lf, out=terms[0])
        torch.mul(w, lf, out=terms[1]).mul_(lf)
        acc = seq_sum(terms, dim=1)
        sumlx, suml2 = acc[0], acc[1]
        if c == 0:
            scale = torch.where(suml2 != 0, div(sumlx, suml2), torch.zeros_like(sumlx))
            best = scale * sumlx
            best_iscale = iscale
            continue
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        scale = torch.where(better, div(sumlx, suml2), scale)
        best = torch.where(better, scale * sumlx, best)
        best_iscale = torch.where(better, iscale, best_iscale)
    picked = levels(best_iscale * x, -nmax, nmax - 1).to(torch.int32) + nmax
    scale = torch.where(zero, torch.zeros_like(scale), scale)
    picked = torch.where(zero[None], torch.zeros_like(picked), picked)
    return scale, picked


def make_q3(x: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``make_q3_quants(n, nmax, x, L, do_rmse=true)`` (Q3_K without importance).

    One rounding pass at ``-nmax/max``, then up to five passes that move single levels to their
    least-squares optimum (weights ``x*x``) when that improves ``sumlx^2 / suml2``.  Returns
    (scale [G], L int32 [n, G] in ``0 .. 2*nmax-1``; all 0 for an all-zero group).
    """
    amax, mx = first_absmax(x, 0)
    zero = amax < GROUP_MAX_EPS
    w = x * x
    wx = w * x
    lvl = levels(x * div(float(-nmax), mx), -nmax, nmax - 1)  # [n, G] float, changed per element
    sumlx = seq_sum(wx * lvl)
    suml2 = seq_sum(w * lvl * lvl)

    def step(xi, wi, wxi, li, sumlx, suml2):
        slx = sumlx - wxi * li
        sl2 = suml2 - wi * li * li
        new = levels(div(xi * sl2, slx), -nmax, nmax - 1)
        slx_new = slx + wxi * new
        sl2_new = sl2 + wi * new * new
        take = (slx > 0) & (new != li) & (sl2_new > 0)
        take &= slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new
        return torch.where(take, new, li), slx_new, sl2_new, take

    sumlx, suml2 = _refine(x, w, wx, lvl, sumlx, suml2, step)
    scale = torch.where(suml2 > 0, div(sumlx, suml2), torch.zeros_like(sumlx))
    picked = lvl.to(torch.int32) + nmax
    scale = torch.where(zero, torch.zeros_like(scale), scale)
    picked = torch.where(zero[None], torch.zeros_like(picked), picked)
    return scale, picked


def make_qkx(
    x: torch.Tensor, w: torch.Tensor, nmax: int, rmin: float, rdelta: float, nstep: int, use_mad: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``make_qkx2_quants`` / ``make_qkx3_quants`` (identical for given weights and finite ``x``).

    Scale and offset levels ``L in 0..nmax`` minimizing ``sum w * err`` (``err`` squared, or
    absolute with ``use_mad``) over ``nstep + 1`` trial scales.  Returns (scale [G], the_min [G]
    (the negated offset, >= 0), L int32 [n, G]).
    """
    if native.usable(x):
        return native.make_qkx(x, w, nmax, rmin, rdelta, nstep, use_mad)
    x_lo, mx = first_min_max(x, 0)
    mn = x_lo
    sums = seq_sum(torch.stack([w, w * x], dim=1), start_from_zero=False)  # sum_w = w[0]; ...
    sum_w, sum_x = sums[0], sums[1]
    mn = torch.where(mn > 0, torch.zeros_like(mn), mn)
    flat = mx == mn  # qkx3 tests max <= min: the same for finite values

    iscale = div(float(nmax), mx - mn)
    scale = div(1.0, iscale)
    lvl = levels(iscale * (x - mn), 0, nmax)
    diff = scale * lvl + mn - x
    best_error = seq_sum(w * (diff.abs() if use_mad else diff * diff))

    # The search is sequential: a winning trial replaces ``min`` and later trials scale from the
    # new one, so trials run one after another (each over all groups at once).  Only the winning
    # trial's (iscale, min) are kept; its levels are recomputed at the end.
    f32 = np.float32
    steps = [f32(f32(f32(rmin) + f32(rdelta) * f32(i)) + f32(nmax)) for i in range(nstep + 1)]
    consts = f32_consts(steps, x.device)[:, None].expand(-1, x.shape[1]).contiguous()  # [S, G]
    best_iscale, best_from = iscale, mn
    cur_min = mn
    # Scratch tensors are allocated once: fresh large CPU tensors cost page faults every time.
    terms = torch.empty((3,) + x.shape, dtype=torch.float32, device=x.device)
    t = torch.empty_like(x)
    laux = torch.empty_like(x)
    for s in range(nstep + 1):
        iscale = div(consts[s], mx - cur_min)
        # fl(iscale * fl(x - min)) is monotonic in x: the group's extremes bound every value.
        fast = within_round_range((x_lo - cur_min) * iscale, (mx - cur_min) * iscale)
        levels_fast(torch.sub(x, cur_min, out=t).mul_(iscale), 0, nmax, fast, out=laux)
        wl = torch.mul(w, laux, out=terms[0])
        torch.mul(wl, laux, out=terms[1])
        torch.mul(wl, x, out=terms[2])
        acc = seq_sum(terms, dim=1)  # [3, G]
        sum_l, sum_l2, sum_xl = acc[0], acc[1], acc[2]
        big_d = sum_w * sum_l2 - sum_l * sum_l
        this_scale = div(sum_w * sum_xl - sum_x * sum_l, big_d)
        this_min = div(sum_l2 * sum_x - sum_l * sum_xl, big_d)
        pos = this_min > 0
        this_min = torch.where(pos, torch.zeros_like(this_min), this_min)
        this_scale = torch.where(pos, div(sum_xl, sum_l2), this_scale)
        diff = laux.mul_(this_scale).add_(this_min).sub_(x)  # laux is recomputed next trial
        err = diff.abs_() if use_mad else diff.mul_(diff)
        cur_error = seq_sum(err.mul_(w))
        better = (big_d > 0) & (cur_error < best_error)
        best_error = torch.where(better, cur_error, best_error)
        scale = torch.where(better, this_scale, scale)
        best_iscale = torch.where(better, iscale, best_iscale)
        best_from = torch.where(better, cur_min, best_from)
        cur_min = torch.where(better, this_min, cur_min)

    lvl = levels(best_iscale * (x - best_from), 0, nmax).to(torch.int32)
    scale = torch.where(flat, torch.zeros_like(scale), scale)
    cur_min = torch.where(flat, mn, cur_min)
    lvl = torch.where(flat[None], torch.zeros_like(lvl), lvl)
    return scale, -cur_min, lvl


def make_qp(x: torch.Tensor, nmax: int, qw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``make_qp_quants(n, nmax, x, L, quant_weights)``: non-negative levels for sub-block scales.

    Used on the 8 (Q4_K, Q5_K) or 16 (Q2_K) scales or mins of each super-block, weighted by the
    sub-blocks' summed weights.  C stores the levels in ``uint8_t`` while its sums use the ``int``
    before the store; both are kept (a negative level wraps in the store).  Returns
    (scale [G], L int32 [n, G] in 0..255 as stored).
    """
    if native.usable(x):
        return native.make_qp(x, nmax, qw)
    mx = torch.zeros_like(x[0])
    for i in range(x.shape[0]):
        mx = torch.where(mx > x[i], mx, x[i])  # MAX(max, x[i]): a NaN x[i] replaces max
    zero = mx < GROUP_MAX_EPS
    iscale = div(float(nmax), mx)
    stored = (nearest_int(iscale * x) & 0xFF).to(torch.float32)  # no clamp: the first L is raw
    diff = x - div(1.0, iscale) * stored
    best_mse = seq_sum(qw * diff * diff)
    f32 = np.float32
    for k in [k for k in range(-4, 5) if k != 0]:
        iscale_k = div(f32_consts([f32(f32(0.1) * f32(k)) + f32(nmax)], x.device).expand_as(mx), mx)
        lk = nearest_int(iscale_k * x).clamp_max_(nmax).to(torch.float32)
        diff = x - div(1.0, iscale_k) * lk
        mse = seq_sum(qw * diff * diff)
        better = mse < best_mse
        best_mse = torch.where(better, mse, best_mse)
        iscale = torch.where(better, iscale_k, iscale)
    lint = nearest_int(iscale * x).clamp_max_(nmax)
    lf = lint.to(torch.float32)
    wx = qw * x
    sumlx = seq_sum(wx * lf)
    suml2 = seq_sum(qw * lf * lf)
    stored = (lint & 0xFF).to(torch.float32)

    def step(xi, wi, wxi, li, sumlx, suml2):
        slx = sumlx - wxi * li
        sl2 = suml2 - wi * li * li
        new = nearest_int(div(xi * sl2, slx)).clamp_max_(nmax)
        newf = new.to(torch.float32)
        slx_new = slx + wxi * newf
        sl2_new = sl2 + wi * newf * newf
        take = (slx > 0) & (sl2 > 0) & (newf != li)
        take &= slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new
        return torch.where(take, (new & 0xFF).to(torch.float32), li), slx_new, sl2_new, take

    sumlx, suml2 = _refine(x, qw, wx, stored, sumlx, suml2, step)
    scale = torch.where(suml2 > 0, div(sumlx, suml2), torch.zeros_like(sumlx))
    scale = torch.where(zero, torch.zeros_like(scale), scale)
    lvl = torch.where(zero[None], torch.zeros_like(stored), stored).to(torch.int32)
    return scale, lvl
