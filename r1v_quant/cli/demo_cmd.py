"""``r1v-quant demo-checkpoint``: write a seeded checkpoint with the real Skywork-R1V layout."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ..demo import PRESETS, build_demo_checkpoint
from ..demo.build import planned_bytes
from ..write.atomic import check_writable
from .console import byte_progress, err

PresetName = Enum("PresetName", {name.replace("-", "_"): name for name in PRESETS}, type=str)


class PsVersion(str, Enum):
    v1 = "v1"
    v2 = "v2"


class DType(str, Enum):
    bf16 = "bf16"
    f16 = "f16"
    f32 = "f32"


def demo_checkpoint(
    out: Path = typer.Argument(..., help="Folder to create (must not exist unless --force)."),
    preset: PresetName = typer.Option("tiny", "--preset", "-p",
                                      help="tiny: seconds to build, LayerNorm vision (llama.cpp-friendly); "
                                           "tiny-rms: RMSNorm + q/k-norm vision like InternViT-6B; "
                                           "slice: the real 38B widths with 2+2 layers (~5.7 GB)."),
    seed: int = typer.Option(0, help="Seed of all weights; same seed, same bytes."),
    vision_layers: int = typer.Option(None, min=1, help="Override the preset's vision layer count."),
    llm_layers: int = typer.Option(None, min=1, help="Override the preset's language-model layer count."),
    ps_version: PsVersion = typer.Option(None, help="Pixel-shuffle order written to config.json (default v2)."),
    dtype: DType = typer.Option(None, help="Weight dtype (default bf16, like the real checkpoint)."),
    outlier_scale: float = typer.Option(1.0, min=0.0, help="Multiply the outlier channels' size (stress tests)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write a demo checkpoint: real layout, config and Qwen2 tokenizer, seeded weights with outlier channels."""
    p = PRESETS[preset.value].with_overrides(vision_layers, llm_layers,
                                             ps_version.value if ps_version else None,
                                             dtype.value if dtype else None)
    check_writable(out, force)  # fail before drawing any progress
    with byte_progress() as progress:
        task = progress.add_task(f"writing {p.name} checkpoint", total=planned_bytes(p))
        build_demo_checkpoint(out, p, seed=seed, outlier_scale=outlier_scale, overwrite=force,
                              on_tensor=lambda t: progress.advance(task, t.nbytes))
    err.print(f"wrote {out} (preset {p.name}, vision {p.vision.num_layers} layers, "
              f"LLM {p.llm.num_layers} layers, {p.dtype}, ps_version {p.ps_version})")
