"""Per-position figures of an artifact against the reference, and their summaries per prompt kind.

Per scored position: KL(reference || artifact) (estimated from the reference's top-k
and sampled tail, see :mod:`.metrics`), whether the two most likely tokens agree,
whether the reference's most likely token is outside the artifact's top 5, and the
artifact's negative log-likelihood of the token that actually follows.  Summaries,
separately for samples with and without an image: mean and 99th-percentile KL, top-1
agreement, top-5 misses, and the perplexity of the reference answers (answer tokens
only) under the artifact divided by that under the reference.  Per sample: its mean KL and top-1
agreement, so two artifacts can be compared prompt by prompt (paired differences).
"""

from __future__ import annotations

import math

import torch

from .metrics import kl_estimate
from .reference_file import Reference

GROUPS = ("image", "text")


class PositionScores:
    def __init__(self, ref: Reference):
        self.ref = ref
        n = len(ref.tensors["pos.target"])
        self.kl = torch.full((n,), float("nan"), dtype=torch.float64)
        self.top1 = torch.zeros(n, dtype=torch.bool)
        self.top5_miss = torch.zeros(n, dtype=torch.bool)
        self.nll = torch.full((n,), float("nan"), dtype=torch.float64)
        self.filled = torch.zeros(n, dtype=torch.bool)

    def add(self, rows: torch.Tensor, logits: torch.Tensor) -> None:
        """``rows``: indices into the reference's position table; ``logits`` [len(rows), vocab]."""
        t = self.ref.tensors
        lp = torch.log_softmax(logits.float().cpu(), dim=-1)
        self.kl[rows] = kl_estimate(t["topk.ids"][rows], t["topk.logprobs"][rows], t["tail.ids"][rows],
                                    t["tail.logprobs"][rows], t["pos.tail_mass"][rows], lp)
        ref_top = t["topk.ids"][rows, 0].long()
        top5 = lp.topk(5, dim=-1).indices
        self.top1[rows] = top5[:, 0] == ref_top
        self.top5_miss[rows] = ~(top5 == ref_top[:, None]).any(-1)
        self.nll[rows] = -lp.gather(-1, t["pos.target"][rows].long()[:, None])[:, 0].double()
        self.filled[rows] = True

    def summary(self) -> dict[str, dict[str, float]]:
        if not bool(self.filled.all()):
            raise AssertionError(f"{int((~self.filled).sum())} positions were never scored")
        t = self.ref.tensors
        has_image = torch.tensor([s["has_image"] for s in self.ref.meta["samples"]], dtype=torch.bool)
        image_rows = has_image[t["pos.sample"].long()]
        answer = t["pos.is_answer"].bool()
        out: dict[str, dict[str, float]] = {}
        for group, mask in (("image", image_rows), ("text", ~image_rows)):
            if not bool(mask.any()):
                continue
            kl = self.kl[mask]
            ans = mask & answer
            ans = ans if bool(ans.any()) else mask  # no answer tokens: score every position
            ppl = math.exp(float(self.nll[ans].mean()))
            ref_ppl = math.exp(float(-t["pos.target_logprob"][ans].double().mean()))
            out[group] = {
                "positions": int(mask.sum()), "answer_positions": int((mask & answer).sum()),
                "kl_mean": float(kl.mean()), "kl_p99": float(torch.quantile(kl, 0.99)),
                "top1": float(self.top1[mask].double().mean()),
                "top5_miss": float(self.top5_miss[mask].double().mean()),
                "ppl": ppl, "ref_ppl": ref_ppl, "ppl_ratio": ppl / ref_ppl,
            }
        return out

    def per_sample(self) -> list[dict[str, object]]:
        """Per sample of the reference, in its order: id, prompt group, scored positions, mean KL, top-1."""
        sample = self.ref.tensors["pos.sample"].long()
        n = len(self.ref.meta["samples"])
        count = torch.bincount(sample, minlength=n)
        div = count.clamp_min(1).double()  # a sample with no scored position shows 0 positions, 0 KL
        kl = torch.zeros(n, dtype=torch.float64).index_add_(0, sample, self.kl) / div
        top1 = torch.zeros(n, dtype=torch.float64).index_add_(0, sample, self.top1.double()) / div
        return [{"id": m["id"], "group": "image" if m["has_image"] else "text", "positions": int(count[i]),
                 "kl_mean": float(kl[i]), "top1": float(top1[i])}
                for i, m in enumerate(self.ref.meta["samples"])]
