"""Every matrix multiply of the model goes through :class:`Linears`, so callers can watch them.

AWQ and importance matrices need the input of each linear layer; validation
needs to swap in a layer's (dequantized) weights.  Both happen here and nowhere
else: the forward code only names the linear it wants.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# (linear name without ".weight", input activations [..., in_features]) -> None
LinearHook = Callable[[str, torch.Tensor], None]


class Linears:
    """The tensors of one unit, on the compute device and dtype, with the input hook."""

    def __init__(self, tensors: dict[str, torch.Tensor], hook: LinearHook | None = None):
        self.t = tensors
        self.hook = hook

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.hook is not None:
            self.hook(name, x)
        return F.linear(x, self.t[name + ".weight"], self.t.get(name + ".bias"))

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.t[name]

    def get(self, name: str) -> torch.Tensor | None:
        return self.t.get(name)
