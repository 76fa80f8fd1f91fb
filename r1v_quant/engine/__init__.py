"""Engine: the one forward pass (image preprocessing, InternViT, mlp1, Qwen2), unit by unit."""

from .prompt import Prepared, PromptBuilder
from .runner import Engine, EngineOptions

__all__ = ["Engine", "EngineOptions", "Prepared", "PromptBuilder"]
