"""The ``.r1vref`` file: what validation needs of the BF16 model, without the model.

A safetensors file (any safetensors reader opens it) whose ``__metadata__``
key ``r1vref`` holds JSON: format version, tool version, model fingerprint,
data path and hash, sample ids and kinds, options.  Tensors, one row per
scored position (every position whose next token is not inside an image slot):

=====================  =========  =============================================
``pos.sample``         int32 [P]  sample index
``pos.index``          int32 [P]  position in the sample's sequence
``pos.target``         int32 [P]  the next token (the one being predicted)
``pos.target_logprob`` f32 [P]    its log-probability (full softmax)
``pos.lse``            f32 [P]    log-sum-exp of the logits
``pos.is_answer``      u8 [P]     1 when the target is part of the final answer
``topk.ids``           int32 [P,k]
``topk.logprobs``      f32 [P,k]  log-softmax of the k most likely tokens
``pos.tail_mass``      f32 [P]    probability outside the top k
``tail.ids``           int32 [P,s] tokens drawn from P outside the top k (seeded)
``tail.logprobs``      f32 [P,s]  their log-softmax
``seq.input_ids``      int32 [T]  every sample's token ids, concatenated
``seq.offsets``        int64 [N+1]
=====================  =========  =============================================

Size: 8k + 8s + 21 bytes per scored position plus 4 bytes per token;
independent of the vocabulary size (1045 bytes a position at k = s = 64).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..engine.prompt import Prepared
from ..errors import InputError
from ..read.safetensors_file import SafetensorsFile
from ..write.atomic import atomic_file
from ..write.safetensors_writer import PlannedTensor, write_shard

FORMAT = "r1vref/1"
META_KEY = "r1vref"


def scored_positions(p: Prepared) -> torch.Tensor:
    """Positions whose next token is real text (:meth:`Prepared.predicts_text` but the last, which has no target)."""
    n = len(p.input_ids)
    return torch.arange(n - 1)[p.predicts_text()[: n - 1]]


@dataclass
class Reference:
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def top_k(self) -> int:
        return int(self.tensors["topk.ids"].shape[1])

    def sequence(self, i: int) -> torch.Tensor:
        off = self.tensors["seq.offsets"]
        return self.tensors["seq.input_ids"][int(off[i]): int(off[i + 1])].long()

    @property
    def tail_samples(self) -> int:
        return int(self.tensors["tail.ids"].shape[1])

    def bytes_per_position(self) -> int:
        return 8 * self.top_k + 8 * self.tail_samples + 21


def save_reference(path: Path, ref: Reference, overwrite: bool = False) -> None:
    meta = {"format": FORMAT, **ref.meta}
    names = sorted(ref.tensors)
    plan = [PlannedTensor(n, ref.tensors[n].dtype, tuple(ref.tensors[n].shape)) for n in names]
    with atomic_file(path, overwrite=overwrite) as tmp:
        write_shard(tmp, plan, lambda t: ref.tensors[t.name].contiguous(),
                    metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def load_reference(path: Path) -> Reference:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: reference file not found")
    f = SafetensorsFile(path)
    try:
        meta = json.loads(f.metadata[META_KEY])
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path}: not an r1v-quant reference file (no '{META_KEY}' metadata)") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: reference format {meta.get('format')!r}, this tool reads {FORMAT}")
    return Reference(meta, {name: f.read(name) for name in f.tensors})
