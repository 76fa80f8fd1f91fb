"""Demo checkpoints: the real Skywork-R1V layout with seeded weights, for tests, demos and benchmarks."""

from .build import build_demo_checkpoint
from .presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "build_demo_checkpoint"]
