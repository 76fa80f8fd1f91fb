"""Helpers shared by the benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM of this process image.  Not ru_maxrss: Linux carries that across fork+exec, so a child
    started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def eval_subset(out: Path, images: int, texts: int) -> Path:
    """The first ``images`` image samples and ``texts`` text samples of the shipped eval set."""
    from r1v_quant.calibrate.dataset import write_eval_subset

    return write_eval_subset(out, images, texts)


def tiny_name(logit_scale: float = 1.0) -> str:
    """The folder ``tiny_with_reference`` builds the tiny checkpoint in, for a given LM-head scale."""
    return "tiny" if logit_scale == 1.0 else f"tiny-logits{logit_scale:g}"


def tiny_with_reference(work: Path, images: int, texts: int, held_out: int = 0, logit_scale: float = 1.0,
                        model: Path | None = None, device: str = "cpu") -> tuple[Path, Path, Path]:
    """(tiny checkpoint, eval prompts, their BF16 reference) in ``work``, each made once and reused.

    The prompts: the first ``images`` / ``texts`` samples with / without images of the shipped eval set,
    then the last ``held_out`` samples of the calibration set (more prompts of the same kinds, for
    measurements whose calibration stops before them).  ``logit_scale`` != 1 builds the checkpoint with
    its LM head scaled (``tiny-logits<scale>``, its own reference): a flatter next-token distribution.
    ``model``: an existing checkpoint (the real one) instead of the tiny, its reference computed on
    ``device``."""
    import json

    from r1v_quant.calibrate.dataset import load_samples, shipped_rows
    from r1v_quant.demo import PRESETS, build_demo_checkpoint
    from r1v_quant.pipelines.reference import ReferenceOptions, compute_reference
    from r1v_quant.read import open_checkpoint
    from r1v_quant.validate.reference_file import save_reference

    if model is None:
        model = work / tiny_name(logit_scale)
        if not (model / "config.json").is_file():
            build_demo_checkpoint(model, PRESETS["tiny"], overwrite=True, logit_scale=logit_scale)
    name = f"eval-{images}-{texts}" + (f"-calib{held_out}" if held_out else "")
    data = eval_subset(work / f"{name}.jsonl", images, texts)
    if held_out:
        data.write_text(data.read_text() + "".join(json.dumps(r) + "\n" for r in shipped_rows("calib")[-held_out:]))
    ref = work / f"{model.name}.{name}.r1vref"
    if not ref.is_file():
        save_reference(ref, compute_reference(open_checkpoint(model), load_samples(data), data,
                                              ReferenceOptions(max_tiles=2, device=device)), overwrite=True)
    return model, data, ref
