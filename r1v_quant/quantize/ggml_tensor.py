"""One GGUF tensor's values -> its GGML bytes (F32 as is, everything else through the block encoders)."""

from __future__ import annotations

import numpy as np
import torch
from gguf import GGMLQuantizationType

from ..errors import InputError
from ..read.finite import all_finite
from .ggml_encoders import quantize


# types whose ggml encoder takes no importance (ggml_quantize_chunk ignores one for them)
NO_IMPORTANCE = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16,
                 GGMLQuantizationType.Q8_0}


def encode_tensor(x: torch.Tensor, qtype: GGMLQuantizationType, where: str, device: str = "cpu",
                  importance: np.ndarray | None = None) -> np.ndarray:
    """``x`` in any float dtype (the encoders convert chunk by chunk, so no float32 copy of a whole
    big tensor is made); ``where`` names the tensor in errors (a NaN or infinity is refused);
    ``importance``: the per-column weights of an importance matrix, for the types that use one."""
    if qtype == GGMLQuantizationType.F32:
        x = x.to(torch.float32)
        if not all_finite(x):
            finite = torch.isfinite(x)
            pos = int((~finite).flatten().nonzero()[0])
            raise InputError(f"tensor '{where}': value {x.flatten()[pos].item()} at flat index {pos}; "
                             "cannot export a non-finite weight")
        return x.contiguous().numpy()
    rows2d = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(1, -1)
    if device != "cpu":
        rows2d = rows2d.to(device)
    weights = None if importance is None or qtype in NO_IMPORTANCE else torch.from_numpy(importance).to(rows2d.device)
    return quantize(rows2d, qtype.name.lower(), name=where, importance=weights).cpu().numpy()
