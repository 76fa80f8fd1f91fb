"""Read: the checkpoint folder, validated, walked unit by unit."""

from .checkpoint import Checkpoint, Unit, open_checkpoint
from .config import LLMConfig, ModelConfig, VisionConfig, load_config
from .layout import COMPONENTS, LLM, OTHER, PROJECTOR, VISION, classify

__all__ = [
    "COMPONENTS", "LLM", "OTHER", "PROJECTOR", "VISION", "Checkpoint", "LLMConfig", "ModelConfig",
    "Unit", "VisionConfig", "classify", "load_config", "open_checkpoint",
]
