"""``validate --runtime llama.cpp``: a GGUF pair run by llama.cpp itself (through llama-cpp-python).

:func:`llama_cpp_logits` hands back next-token logits for chosen positions of prepared samples,
with the same contract as :meth:`r1v_quant.engine.Engine.run`, so the two runtimes are scored alike.

How a sample is evaluated:

* one llama.cpp context for the whole call (``n_ctx`` = the longest sample), its KV cache
  cleared between samples; everything is freed at the end, also on error;
* the text tokens go in as token ids, our ids (chat template applied, image slots expanded):
  llama.cpp's tokenizer is not asked, so both runtimes see the same sequence;
* the image slots are filled with ``mtmd``'s embeddings of the sample's tiles.  Each tile is
  handed to ``mtmd`` as a bitmap of its own: one ``image_size`` x ``image_size`` bitmap fits one
  tile, so llama.cpp encodes it without slicing and without a thumbnail.  Its own dynamic tiling
  (``get_slice_instructions``) picks different grids than InternVL's for some aspect ratios,
  and would misalign image tokens and slots; ours is the reference's tiling.  That one tile
  gives exactly ``tokens_per_tile`` embeddings is checked for every tile;
* decoding follows ``mtmd_helper_eval_chunks``: text runs as token batches, each tile's
  embeddings as an embedding batch at the next positions (plain 1-D positions: the InternVL
  projector uses neither M-RoPE nor, per ``mtmd_decode_use_non_causal``, non-causal attention
  over the image; it is asked per tile all the same, and a projector that wants it is refused).
  With causal attention how the sequence is cut into batches does not change the result;
* attention in float32: F32 KV cache, flash attention off, in the language model and in the
  vision tower.  llama.cpp's defaults (F16 KV cache, flash attention where it can, whose CPU
  kernel rounds K and V to F16 even in an F32 cache) add an error of their own that is no
  property of the file; on the demo models, whose outlier channels make K and V huge, it moves
  text logits by up to ~4 (F32 file: ~0.01 without it), and doubles the image samples' error.
  What is measured is the file (its weights, llama.cpp's matmuls and graph), not the cache.

llama.cpp's log output is swallowed while this runs (its last error lines go into the messages
of the errors raised here) and its previous logger is put back afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..engine.prompt import Prepared
from ..errors import InputError

LogitsFn = Callable[[int, torch.Tensor, torch.Tensor], None]
ProgressFn = Callable[[str], None]

INSTALL_HINT = "--runtime llama.cpp needs llama-cpp-python: pip install 'r1v-quant[llama]'"
LOGIT_CHUNK = 256  # positions per on_logits call, as the engine's default
BATCH = 512  # tokens per llama_decode call (llama.cpp's default n_batch)
GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_CONT = 3, 5
GGML_TYPE_F32 = 0


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except (ImportError, OSError):  # OSError: the package is there, its shared library is not loadable
        raise InputError(INSTALL_HINT) from None
    return llama_cpp


def _import_mtmd() -> Any:
    try:
        import llama_cpp.mtmd_cpp as mtmd
    except (ImportError, OSError) as e:
        raise InputError(f"--runtime llama.cpp: llama-cpp-python was built without mtmd, needed for images ({e})"
                         ) from None
    return mtmd


# --------------------------------------------------------------------------- logging


class _Log:
    """llama.cpp's log, swallowed; the last error lines are kept for messages."""

    def __init__(self) -> None:
        self.errors: deque[str] = deque(maxlen=4)
        self._level = 0

    def write(self, level: int, text: bytes | None) -> None:
        if level != GGML_LOG_LEVEL_CONT:
            self._level = level
        if self._level == GGML_LOG_LEVEL_ERROR and text:
            line = text.decode("utf-8", "replace").strip()
            if line:
                self.errors.append(line)

    def last_error(self) -> str:
        return f": {self.errors[-1]}" if self.errors else ""


@contextlib.contextmanager
def _quiet(llama_cpp: Any, mtmd: Any | None) -> Iterator[_Log]:
    log = _Log()

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.write(level, text)

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    if mtmd is not None:
        mtmd.mtmd_helper_log_set(callback, ctypes.c_void_p(0))  # sets mtmd_log_set too
    try:
        yield log
    finally:
        # llama-cpp-python's own logger (installed at import) back in place; mtmd's default one
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        if mtmd is not None:
            mtmd.mtmd_helper_log_set(ctypes.cast(None, llama_cpp.llama_log_callback), ctypes.c_void_p(0))
        del callback  # kept alive until here: llama.cpp holds a pointer to it


# --------------------------------------------------------------------------- inputs


def _mmproj_image_size(path: Path) -> int:
    from gguf import GGUFReader

    try:
        field = GGUFReader(path).get_field("clip.vision.image_size")
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read as GGUF ({e})") from None
    if field is None:
        raise InputError(f"{path}: no clip.vision.image_size key; not a vision projector (mmproj) file")
    return int(field.contents())


def _check_inputs(samples: Sequence[Prepared], tiles: Sequence[Sequence[Image.Image]],
                  positions: Sequence[torch.Tensor], mmproj_path: Path | None) -> None:
    if not len(samples) == len(tiles) == len(positions):
        raise ValueError(f"{len(samples)} samples, {len(tiles)} tile lists, {len(positions)} position lists")
    for s, ts, pos in zip(samples, tiles, positions):
        n_slots, n = int(s.image_mask.sum()), int(s.input_ids.shape[0])
        if n_slots and not ts:
            raise InputError(f"sample {s.id}: {n_slots} image slots but no image tiles")
        if ts and n_slots % len(ts):
            raise InputError(f"sample {s.id}: {n_slots} image slots do not split evenly over {len(ts)} tiles")
        if ts and mmproj_path is None:
            raise InputError(f"sample {s.id} has images: --runtime llama.cpp needs the vision projector "
                             "(mmproj-*.gguf) next to the language model, or passed with --mmproj")
        if len(pos) and (int(pos.min()) < 0 or int(pos.max()) >= n):
            raise InputError(f"sample {s.id}: logit positions outside its {n} tokens")
    if mmproj_path is not None and any(tiles) and not mmproj_path.is_file():
        raise InputError(f"{mmproj_path}: file not found")


# --------------------------------------------------------------------------- the run


def llama_cpp_logits(llm_path: Path, mmproj_path: Path | None, samples: Sequence[Prepared],
                     tiles: Sequence[Sequence[Image.Image]], positions: Sequence[torch.Tensor],
                     on_logits: Callable[[int, torch.Tensor, torch.Tensor], None],
                     threads: int | None = None, progress: Callable[[str], None] | None = None) -> None:
    """Call ``on_logits(i, pos, logits[len(pos), n_vocab] float32)`` per sample ``i`` and chunk of
    up to 256 of its ``positions[i]`` (logits at position p predict token p + 1), in that order,
    as llama.cpp computes them from ``llm_path`` (+ ``mmproj_path`` for image samples).

    ``tiles[i]``: sample i's tiles as RGB images of the projector's image size, in slot order;
    each fills ``tokens_per_tile`` consecutive image slots.  Raises :class:`InputError` for
    unusable input, llama-cpp-python missing, or files llama.cpp refuses."""
    llm_path = Path(llm_path)
    mmproj_path = Path(mmproj_path) if mmproj_path is not None else None
    _check_inputs(samples, tiles, positions, mmproj_path)
    llama_cpp = _import_llama_cpp()
    if not samples:
        return
    need_vision = any(len(ts) for ts in tiles)
    mtmd = _import_mtmd() if need_vision else None
    if not llm_path.is_file():
        raise InputError(f"{llm_path}: file not found")
    image_size = _mmproj_image_size(mmproj_path) if mmproj_path is not None and need_vision else 0
    for s, ts in zip(samples, tiles):
        for t in ts:
            assert mmproj_path is not None  # _check_inputs
            if t.size != (image_size, image_size):
                raise InputError(f"sample {s.id}: a {t.width}x{t.height} tile; {mmproj_path.name} encodes "
                                 f"{image_size}x{image_size} tiles")
    n_threads = threads or os.cpu_count() or 1
    progress = progress or (lambda msg: None)

    with contextlib.ExitStack() as stack:
        log = stack.enter_context(_quiet(llama_cpp, mtmd))
        llama_cpp.llama_backend_init()

        model = llama_cpp.llama_model_load_from_file(str(llm_path).encode(), llama_cpp.llama_model_default_params())
        if not model:
            raise InputError(f"{llm_path}: llama.cpp cannot load this model{log.last_error()}")
        stack.callback(llama_cpp.llama_model_free, model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        n_embd = llama_cpp.llama_model_n_embd_inp(model)

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max(int(s.input_ids.shape[0]) for s in samples)
        params.n_batch = params.n_ubatch = BATCH
        params.n_seq_max = 1
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        # float32 attention: an F16 KV cache (llama.cpp's default) or its CPU flash-attention kernel
        # (which rounds K and V to F16 whatever the cache type) would blur the file's own error; see above
        params.type_k = params.type_v = GGML_TYPE_F32
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = llama_cpp.llama_init_from_model(model, params)
        if not ctx:
            raise InputError(f"{llm_path}: llama.cpp cannot create a context of {params.n_ctx} tokens"
                             f"{log.last_error()}")
        stack.callback(llama_cpp.llama_free, ctx)

        mctx = None
        if mtmd is not None:
            mparams = mtmd.mtmd_context_params_default()
            mparams.n_threads, mparams.print_timings, mparams.warmup = n_threads, False, False
            mparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # float32 attention here too
            mctx = mtmd.mtmd_init_from_file(str(mmproj_path).encode(), model, mparams)
            if not mctx:
                raise InputError(f"{mmproj_path}: llama.cpp cannot load this vision projector with "
                                 f"{llm_path.name}{log.last_error()}")
            stack.callback(mtmd.mtmd_free, mctx)
            if not mtmd.mtmd_support_vision(mctx):
                raise InputError(f"{mmproj_path}: not a vision projector")
            if mtmd.mtmd_decode_use_mrope(mctx):
                raise InputError(f"{mmproj_path}: a projector with M-RoPE positions; only InternVL-style "
                                 "projectors are supported")

        token_batch = llama_cpp.llama_batch_init(BATCH, 0, 1)
        stack.callback(llama_cpp.llama_batch_free, token_batch)
        embd_batch = llama_cpp.llama_batch_init(BATCH, n_embd, 1) if mctx is not None else None
        if embd_batch is not None:
            stack.callback(llama_cpp.llama_batch_free, embd_batch)

        runner = _Runner(llama_cpp, mtmd, ctx, mctx, log, token_batch, embd_batch, n_vocab, n_embd, llm_path,
                         mmproj_path)
        memory = llama_cpp.llama_get_memory(ctx)
        for i, (sample, sample_tiles, pos) in enumerate(zip(samples, tiles, positions)):
            progress(f"llama.cpp sample {i + 1}/{len(samples)}")
            llama_cpp.llama_memory_clear(memory, True)
            runner.sample(i, sample, sample_tiles, pos, on_logits)


class _Runner:
    """One llama.cpp context (+ mtmd context) and its two batches; samples one at a time."""

    def __init__(self, llama_cpp: Any, mtmd: Any, ctx: Any, mctx: Any, log: _Log, token_batch: Any,
                 embd_batch: Any, n_vocab: int, n_embd: int, llm_path: Path, mmproj_path: Path | None):
        self.ll, self.mtmd, self.ctx, self.mctx, self.log = llama_cpp, mtmd, ctx, mctx, log
        self.token_batch, self.embd_batch = token_batch, embd_batch
        self.n_vocab, self.n_embd = n_vocab, n_embd
        self.llm_path, self.mmproj_path = llm_path, mmproj_path

    # --- image tokens ---------------------------------------------------------
    def encode_tile(self, sample: Prepared, k: int, tile: Image.Image, tokens_per_tile: int) -> np.ndarray:
        """One tile through mtmd: [tokens_per_tile, n_embd] float32."""
        mtmd = self.mtmd
        rgb = np.ascontiguousarray(np.asarray(tile.convert("RGB"), dtype=np.uint8))
        bitmap = mtmd.mtmd_bitmap_init(tile.width, tile.height, rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        if not bitmap:
            raise RuntimeError("mtmd_bitmap_init failed")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            marker = mtmd.mtmd_default_marker()
            text = mtmd.mtmd_input_text(text=marker, text_len=len(marker), add_special=False, parse_special=True)
            rc = mtmd.mtmd_tokenize(self.mctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
            if rc != 0:
                raise InputError(f"sample {sample.id}: llama.cpp cannot tokenize tile {k} (mtmd_tokenize "
                                 f"returned {rc}){self.log.last_error()}")
            image_chunks = [mtmd.mtmd_input_chunks_get(chunks, j) for j in range(mtmd.mtmd_input_chunks_size(chunks))]
            image_chunks = [c for c in image_chunks
                            if mtmd.mtmd_input_chunk_get_type(c) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE]
            counts = [mtmd.mtmd_input_chunk_get_n_tokens(c) for c in image_chunks]
            if counts != [tokens_per_tile]:
                got = f"{sum(counts)} image tokens in {len(counts)} slices" if len(counts) != 1 else \
                    f"{counts[0]} image tokens"
                raise InputError(
                    f"sample {sample.id}: llama.cpp turns one {tile.width}x{tile.height} tile into {got}, but the "
                    f"sample has {tokens_per_tile} image slots per tile; {self.mmproj_path.name} does not match "
                    "the model the samples were prepared for")
            chunk = image_chunks[0]
            if self.mtmd.mtmd_decode_use_non_causal(self.mctx, chunk):  # not for InternVL; see the module doc
                raise InputError(f"{self.mmproj_path}: this projector needs non-causal attention over image "
                                 "tokens, which --runtime llama.cpp does not do")
            rc = mtmd.mtmd_encode_chunk(self.mctx, chunk)
            if rc != 0:
                raise InputError(f"sample {sample.id}: llama.cpp failed to encode tile {k} (mtmd_encode_chunk "
                                 f"returned {rc}){self.log.last_error()}")
            out = mtmd.mtmd_get_output_embd(self.mctx)
            return np.ctypeslib.as_array(out, shape=(tokens_per_tile * self.n_embd,)).reshape(
                tokens_per_tile, self.n_embd).copy()
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    # --- one sample -------------------------------------------------------------
    def sample(self, i: int, sample: Prepared, tiles: Sequence[Image.Image], pos: torch.Tensor,
               on_logits: LogitsFn) -> None:
        ids = sample.input_ids.to(torch.int64).tolist()
        is_image = sample.image_mask.to(torch.bool).tolist()
        n_slots = sum(is_image)
        image_embd = None
        if n_slots:
            tokens_per_tile = n_slots // len(tiles)
            image_embd = np.concatenate([self.encode_tile(sample, k, t, tokens_per_tile) for k, t in enumerate(tiles)])

        pos = pos.to(torch.int64).reshape(-1)
        chunks = list(pos.split(LOGIT_CHUNK))
        wanted = set(pos.tolist())
        got: dict[int, np.ndarray] = {}
        next_chunk = 0

        def flush() -> None:
            nonlocal next_chunk
            while next_chunk < len(chunks) and all(p in got for p in chunks[next_chunk].tolist()):
                chunk = chunks[next_chunk]
                logits = torch.from_numpy(np.stack([got[p] for p in chunk.tolist()])) if len(chunk) else \
                    torch.empty(0, self.n_vocab)
                on_logits(i, chunk, logits)
                next_chunk += 1
                later = {p for c in chunks[next_chunk:] for p in c.tolist()}
                for p in [p for p in got if p not in later]:
                    del got[p]

        # runs of text / image positions, each decoded in batches of at most BATCH
        start, slot = 0, 0
        n = len(ids)
        while start < n:
            end = start
            while end < n and is_image[end] == is_image[start] and end - start < BATCH:
                end += 1
            if is_image[start]:
                assert image_embd is not None
                self.decode_embd(image_embd[slot: slot + end - start], start, wanted, got)
                slot += end - start
            else:
                self.decode_tokens(ids[start:end], start, wanted, got)
            flush()
            start = end

    # --- llama_decode -------------------------------------------------------------
    def decode_tokens(self, ids: list[int], p0: int, wanted: set[int], got: dict[int, np.ndarray]) -> None:
        b = self.token_batch
        for j, t in enumerate(ids):
            b.token[j] = t
        self._decode(b, len(ids), p0, wanted, got, "text")

    def decode_embd(self, embd: np.ndarray, p0: int, wanted: set[int], got: dict[int, np.ndarray]) -> None:
        b = self.embd_batch
        flat = np.ascontiguousarray(embd, dtype=np.float32).reshape(-1)
        ctypes.memmove(b.embd, flat.ctypes.data, flat.nbytes)
        self._decode(b, embd.shape[0], p0, wanted, got, "image")

    def _decode(self, b: Any, n: int, p0: int, wanted: set[int], got: dict[int, np.ndarray], what: str) -> None:
        ll = self.ll
        b.n_tokens = n
        outputs = []
        for j in range(n):
            b.pos[j] = p0 + j
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = 0
            b.logits[j] = (p0 + j) in wanted
            if b.logits[j]:
                outputs.append(j)
        rc = ll.llama_decode(self.ctx, b)
        if rc != 0:
            raise InputError(f"{self.llm_path}: llama.cpp failed to decode {what} positions {p0}..{p0 + n - 1} "
                             f"(llama_decode returned {rc}){self.log.last_error()}")
        for j in outputs:
            row = ll.llama_get_logits_ith(self.ctx, j)
            if not row:
                raise RuntimeError(f"llama.cpp has no logits for batch row {j}")
            got[p0 + j] = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()
