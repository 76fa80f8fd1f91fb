"""``awq``: AWQ of the whole language model, one decoder layer at a time straight from the shards.

Calibration samples go through the real image path (vision tower and ``mlp1`` spliced into the
LLM input), so every layer is calibrated on the mix of image and text tokens the model sees.
The engine's layer walk then visits each decoder layer: before the layer runs, its weights are
quantized (:class:`~r1v_quant.quantize.awq.LayerQuantizer`: search and fold the scales, clip,
quantize); the layer then computes the next layer's input, from the float weights
(``propagate="float"``, as AutoAWQ does; the default, because it measured lower KL in
``bench/bench_awq.py``) or the quantized ones (``"quantized"``: later layers are calibrated on
the errors of earlier ones); after it, the packed layer and those inputs are saved in the work
folder (:class:`~r1v_quant.write.awq_export.WorkDir`), so an interrupted run resumes there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..calibrate.dataset import data_hash, default_data_path, load_samples
from ..calibrate.prompts import prepare_samples
from ..engine import Engine, EngineOptions, LayerCall, LayerHooks
from ..engine.linear import Linears
from ..engine.runner import COMPUTE_DTYPES
from ..errors import InputError
from ..quantize.awq import AWQOptions, LayerQuantizer
from ..read.checkpoint import Checkpoint
from ..read.fingerprint import fingerprint
from ..read.layout import LLM
from ..write.awq_export import SUMMARY_FILE, WorkDir, assemble, pack_layer

FP16_MAX = 65504.0
FP16_MARGIN = 4.0  # warn when an activation comes within this factor of float16's largest value


@dataclass
class AWQRunOptions:
    samples: int = 128
    seq_len: int = 2048
    max_tiles: int = 4
    group_size: int = 128
    device: str = "cpu"
    dtype: str = "float32"  # compute dtype of the forward passes and searches
    propagate: str = "float"  # measured better than "quantized" (bench/bench_awq.py, see README)
    data: str | None = None


Events = Callable[[str, dict[str, Any]], None]  # ("layer_start" | "layer_done" | ..., details)


def _key(ckpt: Checkpoint, opt: AWQRunOptions, data: Path) -> dict[str, Any]:
    """What must match for ``--resume`` to continue a run rather than restart it."""
    return {"tool": __version__, "model": fingerprint(ckpt), "data": data_hash(data),
            "options": {k: v for k, v in asdict(opt).items() if k != "device"}}


def fp16_warnings(report: dict[str, Any]) -> list[str]:
    limit = FP16_MAX / FP16_MARGIN
    out = [f"layer {report['layer']}: {name} input reaches {v:.0f}" for name, v in
           report["max_abs_input"].items() if v > limit]
    if report["max_abs_hidden"] > limit:
        out.append(f"layer {report['layer']}: residual stream reaches {report['max_abs_hidden']:.0f}")
    return out


def _calibration_inputs(ckpt: Checkpoint, engine: Engine, opt: AWQRunOptions, data: Path, emit: Events
                        ) -> tuple[list[torch.Tensor], dict[str, int]]:
    """The first decoder layer's inputs, one [1, tokens, hidden] per sample, and what they hold."""
    samples = load_samples(data)[: opt.samples]
    emit("prepare", {"samples": len(samples)})
    prepared = prepare_samples(ckpt, samples, opt.max_tiles)
    with torch.no_grad():
        hidden = [x[:, : opt.seq_len] for x in engine.embed(prepared)]
    calib = {"samples": len(prepared), "image_samples": sum(p.has_image for p in prepared),
             "tokens": sum(int(x.shape[1]) for x in hidden),
             "image_tokens": sum(int(p.image_mask[: opt.seq_len].sum()) for p in prepared)}
    return hidden, calib


def quantize_model(ckpt: Checkpoint, out: Path, opt: AWQRunOptions, resume: bool = False, overwrite: bool = False,
                   events: Events | None = None) -> dict[str, Any]:
    emit = events or (lambda kind, details: None)
    cfg = ckpt.config
    for name in ("hidden_size", "intermediate_size"):
        if getattr(cfg.llm, name) % opt.group_size:
            raise InputError(f"{ckpt.dir}: llm {name} {getattr(cfg.llm, name)} is not a multiple of "
                             f"--group-size {opt.group_size}")
    data = Path(opt.data) if opt.data else default_data_path("calib")
    work = WorkDir(out)
    key = _key(ckpt, opt, data)
    state = work.state() if resume else None
    if state is not None and state.get("key") != key:
        raise InputError(f"{work.path}: the interrupted run used another model, data or options; "
                         "run without --resume to start over")
    start = state["done"] if state else 0
    engine = Engine(ckpt, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype]),
                    progress=lambda u: emit("unit", {"unit": u}))
    if start == 0:
        work.start(key)
        hidden, calib = _calibration_inputs(ckpt, engine, opt, data, emit)
        work.set_calibration(calib)
    else:
        hidden = work.hidden(opt.device)
        emit("resume", {"layer": start})

    awq = AWQOptions(group_size=opt.group_size)
    layer: dict[str, Any] = {}

    def quantize_layer(call: LayerCall) -> Linears | None:
        i = call.index
        emit("layer_start", {"layer": i})
        lq = LayerQuantizer(cfg, i, dict(call.weights.t), awq)
        quantized, norms = lq.run(call.inputs, lambda what: emit("step", {"layer": i, "step": what}))
        layer.update(lq=lq, packed=pack_layer(lq.p, quantized, norms))
        return Linears(lq.dequantized(quantized, norms)) if opt.propagate == "quantized" else None

    def save_layer(call: LayerCall, outputs: list[torch.Tensor]) -> None:
        lq = layer.pop("lq")
        lq.report.max_abs_hidden = max(float(x.abs().max()) for x in outputs)
        report = asdict(lq.report)
        work.layer_done(call.index, layer.pop("packed"), outputs, report)
        emit("layer_done", report)

    with torch.no_grad():
        engine.walk(LLM, hidden, LayerHooks(quantize_layer, save_layer), start=start)

    state = work.state()
    reports = state["reports"]
    warnings = [w for r in reports for w in fp16_warnings(r)]
    summary = {
        "tool": f"r1v-quant {__version__}", "source": {"fingerprint": fingerprint(ckpt)},
        "layers": len(reports), "calibration": state.get("calibration", {}),
        "options": asdict(opt), "fp16_limit": FP16_MAX / FP16_MARGIN, "fp16_warnings": warnings,
        "max_abs_activation": max(max(max(r["max_abs_input"].values()), r["max_abs_hidden"]) for r in reports),
        "per_layer": reports,
    }
    emit("assemble", {})
    summary["shards"] = assemble(
        ckpt, work, out, opt.group_size, overwrite,
        on_tensor=lambda t: emit("tensor", {"name": t.name, "bytes": t.nbytes}),
        extra_files={SUMMARY_FILE: json.dumps(summary, indent=2, sort_keys=True) + "\n"})
    work.remove()
    return summary
