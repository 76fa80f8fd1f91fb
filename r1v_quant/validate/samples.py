"""The reference's prompts, rebuilt for an artifact without its tokenizer.

Token ids come from the reference itself (``seq.input_ids``), so an artifact that
ships no tokenizer (a GGUF pair) runs the very same sequences.  Which positions are
image slots follows from the reference too: a position is scored exactly when the
next token is not an image slot (:func:`~r1v_quant.validate.reference_file.scored_positions`),
so the slots are the tokens after the unscored positions.  The images are read from
the eval data (its hash must match the reference's) and tiled with the artifact's own
preprocessing; each sample must come out with the reference's number of tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..calibrate.dataset import data_hash, default_data_path, load_samples
from ..engine.image import load_image, normalize_tile, tile_image
from ..engine.prompt import Prepared
from ..errors import InputError
from ..read.config import ModelConfig
from ..read.sources import WeightSource
from .reference_file import Reference


@dataclass
class RebuiltSamples:
    prepared: list[Prepared]
    tiles: list[list[Image.Image]]  # per sample, the RGB tiles in slot order (for llama.cpp's mtmd)
    rows: list[slice]  # per sample, its rows in the reference's position table


def check_same_model(ref: Reference, source: WeightSource) -> dict[str, Any]:
    """Refuse a reference made from another model; say how sure the check is."""
    want = ref.meta["model"]["fingerprint"]
    vocab = ref.meta["model"].get("vocab_size")
    if vocab is not None and vocab != source.config.llm.vocab_size:
        raise InputError(f"the reference is from another model: vocabulary {vocab}, "
                         f"the artifact's {source.config.llm.vocab_size}")
    got = source.provenance.get("fingerprint")
    if got is not None and got != want:
        raise InputError(f"the reference is from another model: its fingerprint is {want[:12]}..., "
                         f"the artifact was made from {got[:12]}...")
    return {"reference_fingerprint": want, "fingerprint_checked": got is not None}


def resolve_data(ref: Reference, data: Path | None) -> Path:
    """The eval data file the reference was computed from: given, or the shipped set when it matches."""
    want = ref.meta["data"]["sha256"]
    path = data
    if path is None:
        shipped = default_data_path("eval")
        if data_hash(shipped) != want:
            raise InputError(f"the reference was made from '{ref.meta['data']['file']}', not the shipped eval set; "
                             "pass that file with --data")
        return shipped
    if not Path(path).is_file():
        raise InputError(f"{path}: data file not found")
    if data_hash(Path(path)) != want:
        raise InputError(f"{path}: not the data the reference was made from (sha256 differs)")
    return Path(path)


def _sample_rows(ref: Reference) -> list[slice]:
    sample = ref.tensors["pos.sample"].long()
    n = len(ref.meta["samples"])
    counts = torch.bincount(sample, minlength=n).tolist()
    if not bool((sample[1:] >= sample[:-1]).all()):
        raise InputError("reference rows are not grouped by sample")
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    return [slice(starts[i], starts[i + 1]) for i in range(n)]


def rebuild_samples(ref: Reference, data: Path, cfg: ModelConfig) -> RebuiltSamples:
    by_id = {s.id: s for s in load_samples(data)}
    max_tiles = ref.meta["options"].get("max_tiles") or cfg.max_dynamic_patch
    t = ref.tensors
    rows = _sample_rows(ref)
    prepared, all_tiles = [], []
    for i, meta in enumerate(ref.meta["samples"]):
        ids = ref.sequence(i)
        n = len(ids)
        index = t["pos.index"][rows[i]].long()
        scored = torch.zeros(n, dtype=torch.bool)
        scored[index] = True
        image_mask = torch.zeros(n, dtype=torch.bool)
        image_mask[1:] = ~scored[:-1]
        answer_mask = torch.zeros(n, dtype=torch.bool)
        answer_mask[index + 1] = t["pos.is_answer"][rows[i]].bool()
        sample = by_id.get(meta["id"])
        if sample is None:
            raise InputError(f"{data}: sample '{meta['id']}' of the reference is missing")
        tiles = [tile for p in sample.images
                 for tile in (tile_image(load_image(p), cfg.image_size, cfg.min_dynamic_patch, max_tiles,
                                         cfg.use_thumbnail) if cfg.dynamic_image_size else [load_image(p)])]
        if len(tiles) != meta["tiles"]:
            raise InputError(f"sample '{meta['id']}': the artifact's preprocessing gives {len(tiles)} tiles, the "
                             f"reference has {meta['tiles']} (a reference from another model or tiling?)")
        slots = int(image_mask.sum())
        if slots != cfg.tokens_per_tile * len(tiles) or (slots and len(set(ids[image_mask].tolist())) != 1):
            raise InputError(f"sample '{meta['id']}': {slots} image slots in the reference, the artifact needs "
                             f"{cfg.tokens_per_tile} x {len(tiles)} tiles (a reference from another model?)")
        pixels = torch.stack([normalize_tile(x, cfg.image_size, cfg.image_mean, cfg.image_std)
                              for x in tiles]) if tiles else None
        prepared.append(Prepared(meta["id"], ids, image_mask, answer_mask, pixels, meta["kind"]))
        all_tiles.append([x if x.size == (cfg.image_size,) * 2 else x.resize((cfg.image_size,) * 2,
                                                                             Image.Resampling.BICUBIC)
                          for x in tiles])
    return RebuiltSamples(prepared, all_tiles, rows)
