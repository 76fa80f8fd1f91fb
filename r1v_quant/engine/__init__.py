"""Engine: the one forward pass (image preprocessing, InternViT, mlp1, Qwen2), unit by unit."""

from .prompt import Prepared, PromptBuilder
from .runner import Engine, EngineOptions, LayerCall, LayerHooks

__all__ = ["Engine", "EngineOptions", "LayerCall", "LayerHooks", "Prepared", "PromptBuilder"]
