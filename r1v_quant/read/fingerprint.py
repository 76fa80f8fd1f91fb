"""A checkpoint's fingerprint: cheap to compute on 77 GB, different for any other model.

A full hash of every byte would take minutes on a real checkpoint, on every
``reference`` and ``validate``.  Instead: config.json's bytes, every tensor's
name, dtype and shape, every shard's size, and the first and last MiB of each
shard's data.  Two checkpoints that differ only inside the middle of a shard
collide; a reference from another model, size or fine-tune does not.
"""

from __future__ import annotations

import hashlib
import os

from .checkpoint import Checkpoint

EDGE_BYTES = 1 << 20


def fingerprint(ckpt: Checkpoint) -> str:
    h = hashlib.sha256()
    h.update(ckpt.config.path.read_bytes())
    for name in sorted(ckpt.tensor_names):
        info = ckpt.info(name)
        h.update(f"{name}|{info.dtype}|{list(info.shape)}\n".encode())
    for shard_name, shard in sorted(ckpt.shards.items()):
        size = shard.path.stat().st_size
        h.update(f"{shard_name}|{size}\n".encode())
        with open(shard.path, "rb") as f:
            h.update(f.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                f.seek(max(EDGE_BYTES, size - EDGE_BYTES), os.SEEK_SET)
                h.update(f.read(EDGE_BYTES))
    return h.hexdigest()
