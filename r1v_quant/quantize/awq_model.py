"""AWQ of the whole language model, one decoder layer at a time straight from the shards.

Calibration samples go through the real image path (vision tower and ``mlp1``
spliced into the LLM input), so every layer is calibrated on the mix of image
and text tokens the model sees.  Per layer: read the layer, search and fold the
scales, clip, quantize, pack, save; then compute the next layer's input, from
the float layer (``propagate="float"``, as AutoAWQ does; the default, because it
measured lower KL in ``bench/bench_awq.py``) or the quantized one (``"quantized"``:
later layers are calibrated on the errors of earlier ones).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..calibrate.dataset import data_hash, default_data_path, load_samples
from ..engine import Engine, EngineOptions
from ..engine.linear import Linears
from ..engine.llm import decoder_layer, rope_for
from ..errors import InputError
from ..formats.awq_gemm import pack_gemm
from ..read.checkpoint import Checkpoint
from ..read.fingerprint import fingerprint
from ..validate.reference import prepare_samples
from ..write.awq_export import WorkDir, assemble
from .awq import AWQOptions, LayerQuantizer

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


COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def pack_layer(lq: LayerQuantizer, quantized: dict, norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: v.to(torch.float16).cpu() for k, v in norms.items()}
    for name, ql in quantized.items():
        base = lq.p + name
        packed = pack_gemm(ql.q.cpu(), ql.zeros.cpu(), ql.scales.cpu())
        out[base + ".qweight"] = packed["qweight"]
        out[base + ".qzeros"] = packed["qzeros"]
        out[base + ".scales"] = packed["scales"]
        if ql.bias is not None:
            out[base + ".bias"] = ql.bias.to(torch.float16).cpu()
    return out


def fp16_warnings(report: dict[str, Any]) -> list[str]:
    limit = FP16_MAX / FP16_MARGIN
    out = [f"layer {report['layer']}: {name} input reaches {v:.0f}" for name, v in
           report["max_abs_input"].items() if v > limit]
    if report["max_abs_hidden"] > limit:
        out.append(f"layer {report['layer']}: residual stream reaches {report['max_abs_hidden']:.0f}")
    return out


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

    if start == 0:
        work.start(key)
        samples = load_samples(data)[: opt.samples]
        emit("prepare", {"samples": len(samples)})
        prepared = prepare_samples(ckpt, samples, opt.max_tiles)
        engine = Engine(ckpt, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype]),
                        progress=lambda u: emit("unit", {"unit": u}))
        with torch.no_grad():
            hidden = [x[:, : opt.seq_len] for x in engine.embed(prepared)]
        calib = {"samples": len(prepared), "image_samples": sum(p.has_image for p in prepared),
                 "tokens": sum(int(x.shape[1]) for x in hidden),
                 "image_tokens": sum(int(p.image_mask[: opt.seq_len].sum()) for p in prepared)}
        state = work.state()
        state["calibration"] = calib
        work._write_state(state)
    else:
        hidden = work.hidden(opt.device)
        emit("resume", {"layer": start})

    awq = AWQOptions(group_size=opt.group_size)
    for i in range(start, cfg.llm.num_layers):
        emit("layer_start", {"layer": i})
        unit = ckpt.load_unit(f"llm.layer.{i}")
        float_w = {k: v.to(opt.device, COMPUTE_DTYPES[opt.dtype]) for k, v in unit.tensors.items()}
        lq = LayerQuantizer(cfg, i, dict(float_w), awq)
        with torch.no_grad():
            quantized, norms = lq.run(hidden, lambda what: emit("step", {"layer": i, "step": what}))
            weights = lq.dequantized(quantized, norms) if opt.propagate == "quantized" else float_w
            lin = Linears(weights)
            hidden = [decoder_layer(cfg, lin, x, i, rope_for(cfg, x.shape[1], x.device, x.dtype)) for x in hidden]
        lq.report.max_abs_hidden = max(float(x.abs().max()) for x in hidden)
        report = asdict(lq.report)
        work.layer_done(i, pack_layer(lq, quantized, norms), hidden, report)
        emit("layer_done", report)

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
        extra_files={"r1v_quant_awq.json": json.dumps(summary, indent=2, sort_keys=True) + "\n"})
    work.remove()
    return summary


def output_digest(out: Path) -> str:
    """sha256 over every file of an output folder (names and bytes), for reproducibility checks."""
    h = hashlib.sha256()
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        h.update(f.relative_to(out).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()
