"""``reference``: the eval set through the source (BF16) model, reduced to what validation needs.

Samples are prepared (:mod:`r1v_quant.calibrate.prompts`), run through the engine one unit at a
time, and each scored position's distribution is reduced as it arrives to the compact form of
:mod:`r1v_quant.validate.reference_file` (top-k, a sampled tail, log-sum-exp, the target)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import __version__
from ..calibrate.dataset import Sample, data_hash
from ..calibrate.prompts import prepare_samples
from ..engine import Engine, EngineOptions, Prepared
from ..engine.runner import COMPUTE_DTYPES
from ..read.checkpoint import Checkpoint
from ..read.fingerprint import fingerprint
from ..validate.metrics import sample_tail
from ..validate.reference_file import Reference, scored_positions


@dataclass
class ReferenceOptions:
    device: str = "cpu"
    dtype: str = "float32"
    top_k: int = 64
    tail_samples: int = 64  # tokens drawn from each position's tail (see validate.metrics)
    max_tiles: int | None = None  # None: the checkpoint's max_dynamic_patch
    batch_size: int = 0  # samples per pass over the weights; 0 = all at once


def compute_reference(ckpt: Checkpoint, samples: Sequence[Sample], data_path: Path, opt: ReferenceOptions,
                      on_sample: Callable[[], None] | None = None,
                      on_unit: Callable[[str], None] | None = None) -> Reference:
    prepared = prepare_samples(ckpt, samples, opt.max_tiles, on_sample)
    positions = [scored_positions(p) for p in prepared]
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in
                                           ("sample", "index", "target", "target_lp", "lse", "answer", "ids", "lps",
                                            "tail_ids", "tail_lps", "tail_mass")}
    engine = Engine(ckpt, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype]), progress=on_unit)
    for batch_start, batch in _indexed_batches(prepared, opt.batch_size):

        def on_logits(i: int, pos: torch.Tensor, logits: torch.Tensor, base: int = batch_start) -> None:
            p = prepared[base + i]
            logits = logits.float()
            lp = torch.log_softmax(logits, dim=-1)
            lse = logits[:, 0] - lp[:, 0]  # log-softmax is logits - lse: no second pass over the vocabulary
            lp = lp.cpu()
            top = lp.topk(opt.top_k, dim=-1)
            # seeded by sample and position, so batching and chunking do not change the draw
            tail = sample_tail(lp, top.indices, opt.tail_samples, seed=(base + i) * 1_000_003 + int(pos[0]))
            target = p.input_ids[pos + 1]
            cols["sample"].append(torch.full_like(pos, base + i))
            cols["index"].append(pos)
            cols["target"].append(target)
            cols["target_lp"].append(lp.gather(-1, target[:, None])[:, 0])
            cols["lse"].append(lse.cpu())
            cols["answer"].append(p.answer_mask[pos + 1])
            cols["ids"].append(top.indices)
            cols["lps"].append(top.values)
            cols["tail_ids"].append(tail[0])
            cols["tail_lps"].append(tail[1])
            cols["tail_mass"].append(tail[2])

        engine.run(batch, on_logits, positions[batch_start: batch_start + len(batch)])

    cat = {k: torch.cat(v) for k, v in cols.items()}
    lengths = [len(p.input_ids) for p in prepared]
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int64)
    tensors = {
        "pos.sample": cat["sample"].to(torch.int32),
        "pos.index": cat["index"].to(torch.int32),
        "pos.target": cat["target"].to(torch.int32),
        "pos.target_logprob": cat["target_lp"].float(),
        "pos.lse": cat["lse"].float(),
        "pos.is_answer": cat["answer"].to(torch.uint8),
        "topk.ids": cat["ids"].to(torch.int32),
        "topk.logprobs": cat["lps"].float(),
        "tail.ids": cat["tail_ids"].to(torch.int32),
        "tail.logprobs": cat["tail_lps"].float(),
        "pos.tail_mass": cat["tail_mass"].float(),
        "seq.input_ids": torch.cat([p.input_ids for p in prepared]).to(torch.int32),
        "seq.offsets": offsets,
    }
    meta = {
        "tool": f"r1v-quant {__version__}",
        "model": {"name": ckpt.dir.name, "fingerprint": fingerprint(ckpt), "vocab_size": ckpt.config.llm.vocab_size},
        "data": {"file": data_path.name, "sha256": data_hash(data_path)},
        "samples": [{"id": p.id, "kind": p.kind, "has_image": p.has_image, "tokens": len(p.input_ids),
                     "tiles": 0 if p.pixels is None else int(p.pixels.shape[0])} for p in prepared],
        "options": asdict(opt),
        "counts": {"samples": len(prepared), "tokens": int(sum(lengths)), "positions": int(len(cat["target"])),
                   "answer_positions": int(cat["answer"].sum())},
    }
    return Reference(meta, tensors)


def _indexed_batches(prepared: Sequence[Prepared], size: int) -> list[tuple[int, Sequence[Prepared]]]:
    """(first index, samples) per pass over the weights; size 0 means one pass."""
    size = size if size > 0 else max(1, len(prepared))
    return [(i, prepared[i: i + size]) for i in range(0, len(prepared), size)]
