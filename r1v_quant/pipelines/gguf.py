"""``gguf``: the Qwen2 language model and the InternVL vision projector ("mmproj") as GGUF files.

Each file in one pass: every tensor's name, type and size is planned from metadata first
(:mod:`r1v_quant.write.gguf.plan`), which fixes where each tensor's bytes go in the file; then
every tensor is cut into blocks of rows, and each block is read from the shards
(``Checkpoint.read_rows``), encoded by the ggml block encoders
(:mod:`r1v_quant.quantize.ggml_tensor`) and written at its place (:mod:`r1v_quant.write.gguf.writer`),
on ``threads`` threads side by side.  Reading, the finiteness checks, encoding and writing all run
in the workers, so they all scale with the thread count; peak memory is a few blocks per thread,
not a whole tensor.  Both files, and their ``<name>.r1v.json`` side files, appear under their final
names only when all are whole.

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
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

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
from ..write.gguf.vocab import Vocab, read_vocab
from ..write.gguf.writer import GGUFData, ProgressFn


# Values encoded per block of rows: the unit of work handed to a thread, read, encoded and written
# on its own.  4M values keep a block's temporaries near the caches and give the LM head ~190
# blocks to share out; on a GPU a bigger block amortizes the transfers and kernel launches.
BLOCK_VALUES = 1 << 22
GPU_BLOCK_VALUES = 1 << 24


@dataclass(frozen=True)
class _Block:
    tensor: PlannedTensor
    first: int  # rows first:stop of the tensor's first dimension
    stop: int

    @property
    def last(self) -> bool:
        return self.stop == self.tensor.rows


def _blocks(plan: FilePlan, values: int, roll_position_embd: bool) -> Iterator[_Block]:
    for t in plan.tensors:
        step = max(1, values * t.rows // max(1, math.prod(t.shape))) if t.splits(roll_position_embd) else t.rows
        for first in range(0, t.rows, step):
            yield _Block(t, first, min(t.rows, first + step))


class _Encoder:
    """Reads, encodes and writes one block; blocks are independent (ggml encodes each row on its
    own), so any number run side by side and the file's bytes do not depend on how many."""

    def __init__(self, ckpt: Checkpoint, out: GGUFData, device: str, roll_position_embd: bool,
                 imatrix: Imatrix | None):
        self.ckpt, self.out, self.device, self.roll, self.imatrix = ckpt, out, device, roll_position_embd, imatrix
        self.local = threading.local()  # each thread's read buffer

    def _buffer(self, nbytes: int) -> torch.Tensor:
        """This thread's read buffer, reused block after block: fresh memory for every block would
        cost a page fault per 4 KiB (measured: reading the slice checkpoint's 6.2 GB in 4M-value
        blocks, 0.3 s into one buffer, 4.4-8.9 s into fresh ones)."""
        buf = getattr(self.local, "buf", None)
        if buf is None or buf.numel() < nbytes:
            buf = self.local.buf = torch.empty(nbytes, dtype=torch.uint8)
        return buf

    def __call__(self, b: _Block) -> None:
        t = b.tensor
        first, stop = t.source_rows(b.first, b.stop)
        x = self.ckpt.read_rows(t.source, first, stop,
                                into=self._buffer((stop - first) * self.ckpt.info(t.source).row_nbytes))
        x = t.finish_values(x.reshape(b.stop - b.first, *t.shape[1:]), self.roll)
        importance = self.imatrix.importance(t.gguf_name) if self.imatrix is not None else None
        try:
            data = encode_tensor(x, t.qtype, t.where, self.device, importance)
        except InputError as e:
            raise InputError(f"{self.ckpt.dir}: {e}") from None
        self.out.put(t, b.first * (t.nbytes // t.rows), data)


def _encode_all(plan: FilePlan, encode: _Encoder, threads: int, values: int, progress: ProgressFn | None,
                poll: Callable[[], object] = lambda: None) -> None:
    """Every block of ``plan``, on ``threads`` threads (1: in this one), into ``encode``'s file.
    Results are taken in plan order, at most two blocks per thread ahead, so the first bad block's
    error is the one raised and ``progress`` sees whole tensors in order.  ``poll`` runs before each
    block is handed out: it raises the error of work going on beside this file."""
    def done(b: _Block) -> None:
        if b.last:
            encode.out.finish(b.tensor)
            if progress is not None:
                progress(plan.kind, b.tensor.gguf_name, b.tensor.nbytes)

    blocks = _blocks(plan, values, encode.roll)
    if threads <= 1:
        for b in blocks:
            poll()
            encode(b)
            done(b)
        return
    # One intra-op thread per worker: a block's ops are too small for torch's parallel regions to pay
    # (a 4096 x 5120 Q4_K tensor with importance: 1.15 s with 1 intra-op thread, 1.18 s with 2; two
    # workers: 0.55 s), and the C scale searches then stay on their worker's thread.
    pool = ThreadPoolExecutor(threads, thread_name_prefix="r1v-gguf", initializer=torch.set_num_threads,
                              initargs=(1,))
    pending: deque[tuple[_Block, Future[None]]] = deque()

    def take_oldest() -> None:
        b, future = pending.popleft()
        future.result()
        done(b)

    try:
        for b in blocks:
            poll()
            pending.append((b, pool.submit(encode, b)))
            while len(pending) > 2 * threads or (pending and pending[0][1].done()):
                take_oldest()
        while pending:
            take_oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # no worker writes once the file is closed
        torch.set_num_threads(threads)  # the workers set the process default; give it back


def export_gguf(ckpt: Checkpoint, out_dir: str | Path, file_type: str = "q4_k_m", mmproj_type: str = "f16",
                name: str | None = None, overwrite: bool = False, progress: ProgressFn | None = None, *,
                mmproj: bool = True, allow_v1: bool = False, llm: bool = True, roll_position_embd: bool = False,
                device: str = "cpu", threads: int | None = 1, plan: ExportPlan | None = None,
                imatrix: Imatrix | None = None) -> tuple[Path | None, Path | None]:
    """Write ``<Name>-<TYPE>.gguf`` (qwen2) and ``mmproj-<Name>-<MMTYPE>.gguf`` (clip/internvl)
    into ``out_dir``; return their paths (None for a file switched off with ``llm`` / ``mmproj``).

    ``progress(kind, tensor, nbytes)`` is called after each tensor is written.  ``threads``: how
    many blocks of rows are read, encoded and written side by side (1 by default; None: torch's
    thread count; the bytes are the same for any count).  ``device``
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
        workers = torch.get_num_threads() if device == "cpu" else 1
        # enter every output first: an existing file or unwritable folder fails before any work
        temps = [stack.enter_context(atomic_file(p.path, overwrite)) for p in plan.files]
        sides = [stack.enter_context(atomic_file(sidecar_path(p.path), overwrite)) for p in plan.files]
        source = {"fingerprint": fingerprint(ckpt)}
        # The language model's header holds the vocabulary, and the header's size fixes where every
        # tensor goes, so its blocks cannot start before the vocabulary is read: transformers' tokenizer
        # and a 7 MB JSON, ~2.5 s of one core, most of the export's serial start.  With threads to
        # spare it is read beside the mmproj's blocks, which then go first (a bad tokenizer still
        # stops the export as soon as it is found: ``poll``).  One thread reads it first, alone.
        overlap = workers > 1 and plan.llm is not None and plan.mmproj is not None
        vocab: Future[Vocab | None] = Future()
        if overlap:
            loader = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="r1v-vocab"))
            vocab = loader.submit(read_vocab, ckpt.dir, ckpt.config.llm.vocab_size)
        else:
            vocab.set_result(read_vocab(ckpt.dir, ckpt.config.llm.vocab_size) if plan.llm else None)
        poll = lambda: vocab.done() and vocab.result()  # noqa: E731  (raises read_vocab's error)
        order = sorted(range(len(plan.files)), key=lambda i: overlap and plan.files[i].kind == LLM)
        for i in order:
            p, tmp, side = plan.files[i], temps[i], sides[i]
            keys = partial(add_file_keys, kind=p.kind, type_name=p.type_name, cfg=ckpt.config, model_dir=ckpt.dir,
                           name=plan.name, params=p.params, vocab=vocab.result() if p.kind == LLM else None,
                           imatrix=imatrix)
            with GGUFData(tmp, p, keys) as out:
                _encode_all(p, _Encoder(ckpt, out, device, roll_position_embd, imatrix), workers,
                            GPU_BLOCK_VALUES if device != "cpu" else BLOCK_VALUES, progress, poll)
            record = {"tool": f"r1v-quant {__version__}", "source": source, "kind": p.kind, "type": p.type_name,
                      "options": {"roll_position_embd": roll_position_embd and p.kind != LLM},
                      "imatrix": None if imatrix is None else {"file": imatrix.path.name,
                                                               "sha256": sha256_file(imatrix.path)}}
            side.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return plan.llm.path if plan.llm else None, plan.mmproj.path if plan.mmproj else None
