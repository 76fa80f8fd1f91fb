"""Divergence of a model's next-token distributions from the reference's, from a compact reference.

Per position the reference keeps P's top-k log-probabilities with their ids,
the mass of the rest (the tail), and ``s`` tail tokens drawn from P restricted
to the tail (with their log-probabilities).  Then, for a model Q with full
log-probabilities,

    KL(P||Q) = sum_top p (log p - log q)  +  tail_mass * E_{i ~ P_tail}[log p_i - log q_i]

The first term is exact; the expectation is estimated by the mean over the
drawn tokens, which is unbiased whatever the shape of either tail.  (Treating
the tail as one bucket instead is biased: on the tiny demo model it missed the
exact KL by 1-4%; the sampled tail misses by under 0.05%, see the tests.)
"""

from __future__ import annotations

import torch


def kl_estimate(top_ids: torch.Tensor, top_logprobs: torch.Tensor, tail_ids: torch.Tensor,
                tail_logprobs: torch.Tensor, tail_mass: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """Per-position KL(P||Q): reference rows [P, k] / [P, s] / [P]; ``logprobs`` Q's log-softmax [P, V]."""
    q = logprobs.double()
    p_top = top_logprobs.double().exp()
    head = (p_top * (top_logprobs.double() - q.gather(-1, top_ids.long()))).sum(-1)
    tail = (tail_logprobs.double() - q.gather(-1, tail_ids.long())).mean(-1) * tail_mass.double()
    return head + tail


def kl_full(ref_logprobs_full: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """Exact per-position KL(P||Q) from both full log-softmaxes (the check for :func:`kl_estimate`)."""
    p = ref_logprobs_full.double().exp()
    return (p * (ref_logprobs_full.double() - logprobs.double())).sum(-1)


def sample_tail(logprobs: torch.Tensor, top_ids: torch.Tensor, count: int, seed: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``count`` tokens per row from P restricted to outside ``top_ids``; (ids, logprobs, tail mass).

    Drawn on the CPU with a seeded generator, so the reference is the same on every device."""
    lp = logprobs.double().cpu()
    p = lp.exp().scatter(-1, top_ids.cpu().long(), 0.0)
    mass = p.sum(-1)
    weights = torch.where(mass[:, None] > 0, p, torch.ones_like(p).scatter(-1, top_ids.cpu().long(), 0.0))
    g = torch.Generator().manual_seed(seed)
    ids = torch.multinomial(weights, count, replacement=True, generator=g)
    return ids, lp.gather(-1, ids).float(), mass.float()
