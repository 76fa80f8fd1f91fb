"""``awq``: AWQ of the whole language model, one decoder layer at a time straight from the shards.

Calibration samples go through the real image path (vision tower and ``mlp1`` spliced into the
LLM input), so every layer is calibrated on the mix of image and text tokens the model sees.
Before any work the run is planned (:mod:`.awq_plan`: tokens, peak host and device memory, FLOPs
per layer) and refused when it cannot fit.  The engine's layer walk then visits each decoder
layer: before the layer runs, its weights are quantized (:class:`~r1v_quant.quantize.awq.
LayerQuantizer`: statistics, scale search chunk by chunk, fold, clip, quantize); the layer then
computes the next layer's inputs with the folded float weights (``propagate="float"``, as AutoAWQ
does; the default, because it measured lower KL in ``bench/bench_awq.py``) or the quantized ones
(``"quantized"``: later layers are calibrated on the errors of earlier ones); after it, the packed
layer and those inputs are saved in the work folder (:class:`~r1v_quant.write.awq_export.WorkDir`),
so an interrupted run resumes there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..calibrate.capture import LayerProgram
from ..calibrate.dataset import data_hash, default_data_path, load_samples
from ..calibrate.prompts import prepare_samples
from ..engine import Engine, EngineOptions, LayerCall, LayerHooks, Prepared
from ..engine.linear import Linears
from ..engine.runner import COMPUTE_DTYPES
from ..errors import InputError, R1VError
from ..quantize.awq import AWQOptions, LayerQuantizer, LayerReport
from ..read.checkpoint import Checkpoint
from ..read.config import ModelConfig
from ..read.fingerprint import fingerprint
from ..read.layout import LLM, VISION
from ..write.awq_export import SUMMARY_FILE, AWQLayout, WorkDir, as_float16, assemble, pack_linear, quantization_config
from ..engine.memory import PeakMeter, host_rss, release_free_memory, start_device
from .awq_plan import AWQRunPlan, Calibration, check_fit

FP16_MAX = 65504.0
FP16_MARGIN = 4.0  # warn when an activation comes within this factor of float16's largest value
AUTO_CHUNK_TOKENS = {"cpu": 4096, "cuda": 16384}  # tokens of activations held at once by the search


@dataclass
class AWQRunOptions:
    samples: int = 128
    seq_len: int = 2048
    max_tiles: int = 4
    group_size: int = 128
    device: str = "cpu"
    dtype: str = "auto"  # compute dtype; auto: bfloat16 on a GPU (losses in float32), float32 on the CPU
    propagate: str = "float"  # measured better than "quantized" (bench/bench_awq.py, see README)
    data: str | None = None
    chunk_tokens: int = 0  # tokens whose activations the search holds at once; 0: auto by device
    offload: bool = False  # keep the states between layers in host memory
    vision: bool = True  # quantize the vision tower too (what makes the 38B fit one 30 GB GPU)
    vision_fp16_layers: tuple[int, ...] = ()  # vision layers kept in float16 all the same

    def layout(self) -> AWQLayout:
        return AWQLayout(self.group_size, self.vision, tuple(sorted(set(self.vision_fp16_layers))))

    def resolved(self) -> AWQRunOptions:
        """``auto`` settings made concrete for the device."""
        kind = torch.device(self.device).type
        dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if kind == "cuda" else "float32")
        return replace(self, dtype=dtype, chunk_tokens=self.chunk_tokens or AUTO_CHUNK_TOKENS.get(kind, 4096))


Events = Callable[[str, dict[str, Any]], None]  # ("plan" | "layer_start" | "layer_done" | ..., details)
# options that change how fast or where, not what is computed: left out of the resume key
NOT_IN_KEY = ("device", "offload")
PLAN_LABEL = {VISION: "vision layer", LLM: "layer"}  # how the plan (awq_plan) names each stack's layer steps


def _key(ckpt: Checkpoint, opt: AWQRunOptions, data: Path) -> dict[str, Any]:
    """What must match for ``--resume`` to continue a run rather than restart it (as the state file
    holds it: through JSON, so a tuple option compares as the list it is read back as)."""
    return json.loads(json.dumps({"tool": __version__, "model": fingerprint(ckpt), "data": data_hash(data),
                                  "options": {k: v for k, v in asdict(opt).items() if k not in NOT_IN_KEY}}))


def fp16_warnings(report: dict[str, Any]) -> list[str]:
    limit = FP16_MAX / FP16_MARGIN
    where = f"{report['stack']} layer {report['layer']}"
    out = [f"{where}: {name} input reaches {v:.0f}" for name, v in report["max_abs_input"].items() if v > limit]
    if report["max_abs_hidden"] > limit:
        out.append(f"{where}: residual stream reaches {report['max_abs_hidden']:.0f}")
    return out


def calibration_of(prepared: list[Prepared], seq_len: int) -> Calibration:
    lengths = [min(len(p.input_ids), seq_len) for p in prepared]
    return Calibration(samples=len(prepared), image_samples=sum(p.has_image for p in prepared), tokens=sum(lengths),
                       image_tokens=sum(int(p.image_mask[:seq_len].sum()) for p in prepared),
                       tiles=sum(0 if p.pixels is None else int(p.pixels.shape[0]) for p in prepared),
                       longest=max(lengths))


def plan_run(ckpt: Checkpoint, opt: AWQRunOptions, prepared: list[Prepared]) -> AWQRunPlan:
    """The run's plan; ``opt`` resolved (:meth:`AWQRunOptions.resolved`)."""
    start_device(opt.device)  # the CUDA runtime's host memory is the process's own, not the plan's
    release_free_memory()  # the process's own size, not what tokenizing left to the allocator
    source_bytes = max(ckpt.info(n).nbytes // max(1, ckpt.info(n).numel) for n in ckpt.tensor_names)
    return AWQRunPlan(ckpt.config, calibration_of(prepared, opt.seq_len), _awq_options(opt),
                      compute_bytes=COMPUTE_DTYPES[opt.dtype].itemsize, source_bytes=source_bytes,
                      on_gpu=torch.device(opt.device).type == "cuda", offload=opt.offload, base_host=host_rss(),
                      vision=opt.vision)


def _awq_options(opt: AWQRunOptions) -> AWQOptions:
    return AWQOptions(group_size=opt.group_size, chunk_tokens=opt.chunk_tokens)


class _QuantizeLayers:
    """The layer walk's hooks: before a packed layer runs, AWQ it (its weights are folded in place, or
    replaced by the dequantized ones); after it, save it and its outputs in the work folder."""

    def __init__(self, cfg: ModelConfig, opt: AWQRunOptions, work: WorkDir, emit: Events, meter: PeakMeter):
        self.cfg, self.opt, self.work, self.emit, self.meter = cfg, opt, work, emit, meter
        self.packed = set(opt.layout().packed_units(cfg))
        self.awq = _awq_options(opt)
        self.current: dict[str, Any] = {}
        self.hooks = LayerHooks(self.before, self.after)

    def before(self, call: LayerCall) -> Linears | None:
        self.emit("layer_start", {"unit": call.unit, "layer": call.index})
        self.current = {"t0": time.monotonic()}
        label = PLAN_LABEL[call.stack]
        self.meter.step(f"{label}: read")  # the walk has just read the layer
        if call.unit not in self.packed:
            return None
        lq = LayerQuantizer(LayerProgram(self.cfg, call.stack, call.index), call.weights.t, self.awq)
        searching = True

        def step(what: str) -> None:
            nonlocal searching
            release_free_memory()
            if searching and what.startswith("clip"):  # the first clip step ends the scale search
                self.meter.step(f"{label}: scale search")
                searching = False
            self.emit("step", {"unit": call.unit, "layer": call.index, "step": what})

        step("statistics")
        lq.observe(call.inputs)
        lq.search(call.inputs, step)
        lq.fold()
        packed: dict[str, torch.Tensor] = {}
        for name, ql in lq.quantize(dequantize_in_place=self.opt.propagate == "quantized"):
            step(f"clip + quantize: {name.split('.')[-1]}")
            packed.update(pack_linear(lq.p + name, ql.q, ql.zeros, ql.scales))
        packed.update(as_float16(lq.float_tensors()))
        self.current.update(report=lq.report, packed=packed)
        release_free_memory()
        self.meter.step(f"{label}: clip and quantize")
        return Linears(lq.t)

    def after(self, call: LayerCall, outputs: list[torch.Tensor]) -> None:
        report = self.current.get("report") or LayerReport(call.index, call.stack, skipped=["kept in float16"])
        report.max_abs_hidden = max(float(x.abs().max()) for x in outputs)
        record = asdict(report)
        record["seconds"] = round(time.monotonic() - self.current["t0"], 3)
        self.work.layer_done(call.unit, self.current.get("packed"), outputs, record)
        self.current = {}
        call.inputs.clear()  # the walk's list: the inputs go now, not after the meter marks the step
        release_free_memory()
        self.meter.step(f"{PLAN_LABEL[call.stack]}: next inputs")
        self.emit("layer_done", record)


def quantize_model(ckpt: Checkpoint, out: Path, opt: AWQRunOptions, resume: bool = False, overwrite: bool = False,
                   events: Events | None = None, plan_only: bool = False) -> dict[str, Any]:
    """Quantize ``ckpt`` into ``out``; with ``plan_only``, return the plan without doing any work."""
    emit = events or (lambda kind, details: None)
    opt = opt.resolved()
    check_widths(ckpt, opt)
    data = Path(opt.data) if opt.data else default_data_path("calib")
    samples = load_samples(data)[: opt.samples]
    emit("prepare", {"samples": len(samples)})
    prepared = prepare_samples(ckpt, samples, opt.max_tiles)
    plan = plan_run(ckpt, opt, prepared)
    emit("plan", plan.summary())
    if opt.vision and not plan.calib.tiles:
        raise InputError(f"{data}: no calibration sample with an image among the first {len(prepared)}: the vision "
                         "tower cannot be calibrated (use data with images, or --vision-fp16)")
    if plan_only:
        return {"plan": plan.summary(), "options": asdict(opt)}
    check_fit(plan, opt.device, lambda **changes: plan_run(ckpt, replace(opt, **changes),
                                                           prepared[: changes.get("samples", len(prepared))]))

    work = WorkDir(out)
    try:
        return _run(ckpt, out, opt, plan, prepared, data, work, resume, overwrite, emit)
    except R1VError as e:  # bad input found mid-run (a NaN weight, a full disk): the work folder stays
        if work.path.is_dir() and (work.state() or {}).get("done"):
            raise type(e)(f"{e}; {kept(work)}") from None
        raise


def kept(work: WorkDir) -> str:
    """What an interrupted run leaves, and what to do with it."""
    return (f"the finished layers are kept in {work.path}: rerun with --resume to continue, or delete that "
            "folder to start over")


def _run(ckpt: Checkpoint, out: Path, opt: AWQRunOptions, plan: AWQRunPlan, prepared: list[Prepared], data: Path,
         work: WorkDir, resume: bool, overwrite: bool, emit: Events) -> dict[str, Any]:
    """The run itself, once planned: calibration layer by layer into ``work``, then the output folder."""
    cfg = ckpt.config
    meter = PeakMeter(opt.device)
    key = _key(ckpt, opt, data)
    state = work.state() if resume else None
    if state is not None and state.get("key") != key:
        raise InputError(f"{work.path}: the interrupted run used another model, data or options; "
                         "run without --resume to start over")
    if state is None:
        work.start(key)
        work.set_calibration({k: v for k, v in vars(plan.calib).items() if k != "longest"})
        state = work.state()
        assert state is not None
    elif state["done"]:
        emit("resume", {"unit": state["done"][-1], "layer": len(state["done"])})

    def unit_loaded(unit: str) -> None:
        release_free_memory()
        emit("unit", {"unit": unit})

    engine = Engine(ckpt, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype],
                                        state_device="cpu" if opt.offload else None), progress=unit_loaded)
    layers = _QuantizeLayers(cfg, opt, work, emit, meter)
    with torch.no_grad():
        # held in a list that the walk empties, so each layer's inputs are freed once it has run
        states, stack, start = _resume_point(engine, work, state, prepared, opt, layers.hooks)
        # the meter's steps and phases are named as the plan names them, to be set beside it
        first_phase = "vision layer" if opt.vision else "embed"
        if stack == VISION and start == 0:
            meter.step(f"{first_phase}: patch embeddings")
        if stack == VISION:  # nothing done yet, or only vision layers
            vision_hooks = layers.hooks if opt.vision else None
            vision_states = engine.walk(VISION, states.pop(), vision_hooks, start=start)
            if opt.vision:
                meter.done("vision layer")
            else:
                meter.step("embed: vision layer")
            image_tokens = engine.project(vision_states)
            del vision_states
            meter.step("embed: projector")
            states, start = [engine.splice(prepared, image_tokens, opt.seq_len)], 0
            del image_tokens
        prepared.clear()  # the tiles' pixels
        release_free_memory()
        meter.step("embed: tokens")
        meter.done("embed")
        emit("embedded", {})
        engine.walk(LLM, states.pop(), layers.hooks, start=start)

    state = work.state()
    reports = state["reports"]
    warnings = [w for r in reports for w in fp16_warnings(r)]
    summary = {
        "tool": f"r1v-quant {__version__}", "source": {"fingerprint": fingerprint(ckpt)},
        "layers": len(reports), "calibration": state.get("calibration", {}),
        "options": {k: v for k, v in asdict(opt).items() if k not in NOT_IN_KEY},
        "quantization_config": quantization_config(cfg, opt.layout()),
        "fp16_limit": FP16_MAX / FP16_MARGIN, "fp16_warnings": warnings,
        "max_abs_activation": max(max([*r["max_abs_input"].values(), r["max_abs_hidden"]]) for r in reports),
        "per_layer": [{k: v for k, v in r.items() if k != "seconds"} for r in reports],
    }
    release_free_memory()
    meter.done("layer")
    emit("assemble", {})
    summary["shards"] = assemble(
        ckpt, work, out, opt.layout(), overwrite,
        on_tensor=lambda t: (release_free_memory(), emit("tensor", {"name": t.name, "bytes": t.nbytes})),
        extra_files={SUMMARY_FILE: json.dumps(summary, indent=2, sort_keys=True) + "\n"})
    work.remove()
    meter.done("assemble")
    summary["plan"] = plan.summary()
    summary["measured_peaks"] = meter.peaks
    summary["measured_steps"] = meter.steps
    summary["peak_host_bytes"] = meter.host_peak()
    summary["seconds_per_layer"] = {r["stack"]: [] for r in reports}
    for r in reports:
        summary["seconds_per_layer"][r["stack"]].append(r["seconds"])
    return summary


def _resume_point(engine: Engine, work: WorkDir, state: dict[str, Any], prepared: list[Prepared],
                  opt: AWQRunOptions, hooks: LayerHooks) -> tuple[list[list[torch.Tensor]], str, int]:
    """Where the walk starts: ([the states], the stack they enter, the first layer to run)."""
    done = state["done"]
    if not done:
        tiles = [p.pixels for p in prepared if p.pixels is not None]
        if tiles:
            return [engine.patch_embeddings(torch.cat(tiles))], VISION, 0
        return [engine.splice(prepared, None, opt.seq_len)], LLM, 0
    last = done[-1]  # "vision.layer.N" or "llm.layer.N": the saved states are its outputs
    stack, index = last.split(".layer.")[0], int(last.rsplit(".", 1)[1])
    return [work.states(engine.opt.state_device or opt.device)], stack, index + 1


def check_widths(ckpt: Checkpoint, opt: AWQRunOptions) -> None:
    """Every linear to pack must split into whole groups along its input."""
    cfg = ckpt.config
    widths = [("llm", "hidden_size", cfg.llm.hidden_size), ("llm", "intermediate_size", cfg.llm.intermediate_size)]
    if opt.vision:
        widths += [("vision", "hidden_size", cfg.vision.hidden_size),
                   ("vision", "intermediate_size", cfg.vision.intermediate_size)]
    for stack, name, width in widths:
        if width % opt.group_size:
            hint = " (or keep the vision tower in float16 with --vision-fp16)" if stack == "vision" else ""
            raise InputError(f"{ckpt.dir}: {stack} {name} {width} is not a multiple of --group-size "
                             f"{opt.group_size}{hint}")
    bad = [i for i in opt.vision_fp16_layers if not 0 <= i < cfg.vision.num_layers]
    if bad:
        raise InputError(f"--vision-fp16-layers: the vision tower has layers 0..{cfg.vision.num_layers - 1}, "
                         f"not {bad[0]}")
