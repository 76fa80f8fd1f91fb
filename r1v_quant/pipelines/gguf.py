"""``gguf``: the Qwen2 language model and the InternVL vision projector ("mmproj") as GGUF files.

Each file in one streamed pass: every tensor's name, type and size is planned from metadata first
(:mod:`r1v_quant.write.gguf.plan`); then each tensor is read from the shards, its part selected,
encoded by the ggml block encoders (:mod:`r1v_quant.quantize.ggml_tensor`) and appended
(:mod:`r1v_quant.write.gguf.writer`), one at a time.  Peak memory is one tensor plus its
encoding; there is no intermediate F16 file.  Both files, and their ``<name>.r1v.json`` side
files, appear under their final names only when all are whole.

What goes in is what llama.cpp's own pipeline writes (``convert_hf_to_gguf.py``, then
``llama-quantize`` for the quantized mixes), checked byte for byte in ``tests/test_gguf_export.py``.
The quantized mixes are encoded from the checkpoint's own values (BF16 -> float32, exact);
llama.cpp's usual route goes through an F16 file first, which rounds the rare BF16 weights below
2**-14 in magnitude (F16 subnormals) or above 65504.  So our Q4_K_M equals ``llama-quantize`` run
on the converter's BF16 file byte for byte, and on its F16 file except in blocks that hold such
values.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..engine.runner import torch_threads
from ..errors import InputError
from ..formats.gguf_names import sidecar_path
from ..quantize.ggml_tensor import encode_tensor
from ..read.checkpoint import Checkpoint
from ..read.fingerprint import fingerprint
from ..read.files import sha256_file
from ..read.imatrix_file import Imatrix
from ..write.atomic import atomic_file
from ..write.gguf.metadata import add_file_keys
from ..write.gguf.plan import LLM, ExportPlan, FilePlan, PlannedTensor, plan_export
from ..write.gguf.vocab import read_vocab
from ..write.gguf.writer import ProgressFn, write_gguf


def _encoded(ckpt: Checkpoint, plan: FilePlan, device: str, roll_position_embd: bool, imatrix: Imatrix | None
             ) -> Iterator[tuple[PlannedTensor, np.ndarray]]:
    cached: tuple[str, torch.Tensor] | None = None  # a fused qkv is read once for its 3 parts
    for t in plan.tensors:
        if cached is None or cached[0] != t.source:
            cached = (t.source, ckpt.read_tensor(t.source))
        importance = imatrix.importance(t.gguf_name) if imatrix is not None else None
        try:
            data = encode_tensor(t.select(cached[1], roll_position_embd), t.qtype, t.where, device, importance)
        except InputError as e:
            raise InputError(f"{ckpt.dir}: {e}") from None
        if t.part == t.parts - 1:
            cached = None
        yield t, data


def export_gguf(ckpt: Checkpoint, out_dir: str | Path, file_type: str = "q4_k_m", mmproj_type: str = "f16",
                name: str | None = None, overwrite: bool = False, progress: ProgressFn | None = None, *,
                mmproj: bool = True, allow_v1: bool = False, llm: bool = True, roll_position_embd: bool = False,
                device: str = "cpu", threads: int | None = 1, plan: ExportPlan | None = None,
                imatrix: Imatrix | None = None) -> tuple[Path | None, Path | None]:
    """Write ``<Name>-<TYPE>.gguf`` (qwen2) and ``mmproj-<Name>-<MMTYPE>.gguf`` (clip/internvl)
    into ``out_dir``; return their paths (None for a file switched off with ``llm`` / ``mmproj``).

    ``progress(kind, tensor, nbytes)`` is called after each tensor is written.  ``threads``
    sets torch's thread count while encoding, which the encoders use to encode chunks side by side
    (1 by default; None leaves torch's setting; the bytes are the same for any count).  ``device``
    ("cuda") moves the encoding to a GPU (the encoders are written to give the same bytes there).
    ``roll_position_embd`` stores the mmproj's position table for llama.cpp's InternVL graph
    (:mod:`r1v_quant.write.gguf.compat`).  Beside each file, a side file ``<name>.r1v.json``
    records the source's fingerprint and the options that change how the file must be read back
    (``validate``), so the GGUF bytes stay exactly llama.cpp's.  ``imatrix`` (an importance
    matrix) weighs each tensor's rounding as ``llama-quantize --imatrix`` does, and records itself
    in the language model's keys as that tool does.
    """
    plan = plan or plan_export(ckpt, out_dir, file_type, mmproj_type, name, mmproj, allow_v1, llm,
                               has_imatrix=imatrix is not None)
    with contextlib.ExitStack() as stack, torch_threads(threads):
        # enter every output first: an existing file or unwritable folder fails before any work
        temps = [stack.enter_context(atomic_file(p.path, overwrite)) for p in plan.files]
        sides = [stack.enter_context(atomic_file(sidecar_path(p.path), overwrite)) for p in plan.files]
        source = {"fingerprint": fingerprint(ckpt)}
        for p, tmp, side in zip(plan.files, temps, sides):
            vocab = read_vocab(ckpt.dir, ckpt.config.llm.vocab_size) if p.kind == LLM else None
            write_gguf(tmp, p, lambda w, p=p, vocab=vocab: add_file_keys(
                w, p.kind, p.type_name, ckpt.config, ckpt.dir, plan.name, p.params, vocab, imatrix),
                _encoded(ckpt, p, device, roll_position_embd, imatrix), progress)
            record = {"tool": f"r1v-quant {__version__}", "source": source, "kind": p.kind, "type": p.type_name,
                      "options": {"roll_position_embd": roll_position_embd and p.kind != LLM},
                      "imatrix": None if imatrix is None else {"file": imatrix.path.name,
                                                               "sha256": sha256_file(imatrix.path)}}
            side.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return plan.llm.path if plan.llm else None, plan.mmproj.path if plan.mmproj else None
