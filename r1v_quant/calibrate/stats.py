"""Running statistics of activations over every calibration token, in memory that does not grow with them.

* :class:`ChannelStats`: per input channel the sum of |x| (AWQ's activation scale) and of x**2
  (llama.cpp's importance), the token count and the largest |x| (the float16 watch);
* :class:`TokenSubsample`: a fixed number of tokens drawn across all calibration states at an even
  stride (the clip search's inputs), the same tokens for every linear of a layer.
"""

from __future__ import annotations

import torch


class ChannelStats:
    def __init__(self) -> None:
        self.abs_sum: torch.Tensor | None = None  # float64 [channels]
        self.sq_sum: torch.Tensor | None = None  # float64 [channels]
        self.count = 0
        self.max_abs = 0.0

    def add(self, x: torch.Tensor) -> None:
        flat = x.reshape(-1, x.shape[-1])
        a = flat.abs()
        abs_sum = a.sum(0, dtype=torch.float64)
        sq_sum = flat.float().pow(2).sum(0, dtype=torch.float64)
        if self.abs_sum is None:
            self.abs_sum, self.sq_sum = abs_sum, sq_sum
        else:
            self.abs_sum += abs_sum
            self.sq_sum += sq_sum
        self.count += flat.shape[0]
        self.max_abs = max(self.max_abs, float(a.max()))

    @property
    def mean_abs(self) -> torch.Tensor:
        assert self.abs_sum is not None and self.count, "no tokens seen"
        return (self.abs_sum / self.count).float()


class TokenSubsample:
    """Every ``stride``-th token of the calibration stream (tokens numbered across all states in order),
    at most ``size`` of them: the tokens are known before any is seen, so each chunk contributes its own."""

    def __init__(self, total_tokens: int, size: int):
        self.stride = max(1, total_tokens // max(1, size))
        self.size = min(size, -(-total_tokens // self.stride))
        self.rows: dict[str, list[torch.Tensor]] = {}

    def take(self, first_token: int, n_tokens: int) -> torch.Tensor:
        """Local indices, within a state whose tokens are numbered ``first_token ..``, of the chosen ones."""
        start = (-first_token) % self.stride
        idx = torch.arange(start, n_tokens, self.stride)
        return idx[(first_token + idx) // self.stride < self.size]

    def add(self, name: str, x: torch.Tensor, local: torch.Tensor) -> None:
        if len(local):
            self.rows.setdefault(name, []).append(x.reshape(-1, x.shape[-1])[local.to(x.device)].clone())

    def get(self, name: str) -> torch.Tensor:
        return torch.cat(self.rows[name])
