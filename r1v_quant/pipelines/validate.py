"""``validate``: an artifact's logits on the reference's prompts, scored against the reference, gated.

Steps: read the reference; open the artifact (BF16 checkpoint, AWQ folder or GGUF pair,
:func:`~r1v_quant.read.artifact.open_artifact`) and check it comes from the reference's model
(the fingerprint it records of its source; the vocabulary, tile and slot counts in any case);
rebuild the reference's prompts (:mod:`r1v_quant.validate.samples`); run them through a runtime
-- the forward engine on the artifact's own weights, or llama.cpp itself for a GGUF pair --
scoring every reference position as its logits arrive (:mod:`r1v_quant.validate.scoring`);
compare the summaries with the thresholds (:mod:`r1v_quant.validate.report`).  ``--per-layer``
walks the source model and compares each decoder layer of the artifact on the same inputs
(:mod:`r1v_quant.validate.per_layer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..engine import Engine, EngineOptions, LayerCall, LayerHooks, Prepared
from ..engine.runner import COMPUTE_DTYPES, torch_threads
from ..errors import InputError
from ..read.artifact import open_artifact
from ..read.checkpoint import open_checkpoint
from ..read.fingerprint import fingerprint
from ..read.layout import LLM, LLM_LINEARS, VISION, VISION_LINEARS
from ..read.sources import GGUF, WeightSource
from ..validate.per_layer import LayerComparison, plot_layers, short_name
from ..validate.reference_file import Reference, load_reference
from ..validate.report import Thresholds, ValidationReport
from ..validate.samples import check_same_model, rebuild_samples, resolve_data
from ..validate.scoring import PositionScores

RUNTIMES = ("engine", "llama.cpp")
ProgressFn = Callable[[str], None]


@dataclass
class ValidateOptions:
    runtime: str = "engine"  # "engine" or "llama.cpp"
    mmproj: Path | None = None  # GGUF only: the vision file (default: mmproj-*.gguf next to the LLM file)
    data: Path | None = None  # eval data the reference was made from (default: the shipped eval set)
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    per_layer: bool = False
    source: Path | None = None  # the BF16 checkpoint: needed by --per-layer only
    plot: Path | None = None  # PNG for --per-layer


def validate_artifact(artifact: Path, reference: Path, options: ValidateOptions | None = None,
                      progress: ProgressFn | None = None) -> ValidationReport:
    """Raises :class:`~r1v_quant.errors.InputError` for unusable input (CLI exit 2)."""
    opt = options or ValidateOptions()
    say = progress or (lambda msg: None)
    if opt.runtime not in RUNTIMES:
        raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {opt.runtime!r}")
    if opt.dtype not in COMPUTE_DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {opt.dtype!r}")
    if opt.per_layer and opt.source is None:
        raise InputError("--per-layer compares weights with the source: pass the BF16 checkpoint with --source")
    ref = load_reference(Path(reference))
    source = open_artifact(artifact, opt.mmproj)
    if opt.runtime == "llama.cpp" and source.kind != GGUF:
        raise InputError(f"--runtime llama.cpp runs GGUF files; {artifact} is a {source.kind}")
    info: dict[str, Any] = {"tool": f"r1v-quant {__version__}", "reference": str(reference),
                            **check_same_model(ref, source), "files": [str(f) for f in source.files()]}
    data = resolve_data(ref, opt.data)
    rebuilt = rebuild_samples(ref, data, source.config)
    scores = PositionScores(ref)
    positions = [ref.tensors["pos.index"][r].long() for r in rebuilt.rows]
    cursor = [r.start for r in rebuilt.rows]

    def on_logits(i: int, pos: torch.Tensor, logits: torch.Tensor) -> None:
        rows = torch.arange(cursor[i], cursor[i] + len(pos))
        cursor[i] += len(pos)
        if not torch.equal(ref.tensors["pos.index"][rows].long(), pos.cpu().long()):
            raise AssertionError(f"sample {i}: logits arrived for positions out of order")
        scores.add(rows, logits)

    say(f"{source.kind} artifact, {len(rebuilt.prepared)} samples, runtime {opt.runtime}")
    with torch_threads(opt.threads), torch.no_grad():
        if opt.runtime == "engine":
            engine = Engine(source, EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype]),
                            progress=lambda unit: say(f"unit {unit}"))
            engine.run(rebuilt.prepared, on_logits, positions)
        else:
            from ..validate.llama_runtime import llama_cpp_logits

            llama_cpp_logits(source.llm_path, source.mmproj_path, rebuilt.prepared,  # type: ignore[attr-defined]
                             rebuilt.tiles, positions, on_logits, threads=opt.threads, progress=say)
        groups = scores.summary()
        info["per_sample"] = scores.per_sample()
        checks = opt.thresholds.checks(groups)
        if opt.per_layer:
            info["per_layer"] = diagnose_layers(Path(opt.source), source, ref, rebuilt.prepared, opt, say)  # type: ignore[arg-type]
    info["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opt).items()}
    return ValidationReport(str(artifact), source.kind, opt.runtime, all(c["ok"] for c in checks), groups,
                            checks, info)


def diagnose_layers(source_dir: Path, artifact: WeightSource, ref: Reference, prepared: Sequence[Prepared],
                    opt: ValidateOptions, say: ProgressFn) -> dict[str, Any]:
    """Walk the source model; at each decoder layer run the artifact's layer on the same inputs."""
    ckpt = open_checkpoint(source_dir)
    if fingerprint(ckpt) != ref.meta["model"]["fingerprint"]:
        raise InputError(f"{source_dir}: --source is not the model the reference was made from (fingerprint differs)")

    def shape(c: Any) -> tuple[int, ...]:  # (eps and rope base may differ by float32 rounding in a GGUF)
        return (c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size)

    if shape(ckpt.config.llm) != shape(artifact.config.llm):
        raise InputError(f"{source_dir}: --source and the artifact have different language-model shapes")
    options = EngineOptions(device=opt.device, dtype=COMPUTE_DTYPES[opt.dtype])
    src, art = Engine(ckpt, options), Engine(artifact, options)
    rows: dict[str, list[dict[str, Any]]] = {LLM: [], VISION: []}
    current: dict[str, Any] = {}

    def before(call: LayerCall) -> None:
        say(f"per-layer: {call.unit}")
        current["w"] = art.load(call.unit)
        current["cmp"] = LayerComparison(ckpt.config, call.stack, call.index, call.weights, current["w"])

    def after(call: LayerCall, outputs: list[torch.Tensor]) -> None:
        cmp = current.pop("cmp")
        for x, ys in zip(call.inputs, outputs):
            cmp.add(x, ys, art.apply_layer(call.stack, call.index, current["w"], x))
        current.pop("w")
        rows[call.stack].append(cmp.row())

    hooks = LayerHooks(before, after)
    say("per-layer: the eval samples through the source model")
    src.walk(LLM, src.embed(prepared, vision_hooks=hooks), hooks)
    result: dict[str, Any] = {"projections": [short_name(p) for p in LLM_LINEARS], "layers": rows[LLM],
                              "vision_linears": [short_name(p) for p in VISION_LINEARS], "vision_layers": rows[VISION]}
    if opt.plot is not None:
        plot = Path(opt.plot)
        plot_layers(plot, artifact.kind, LLM, rows[LLM])
        result["plot"] = str(plot)
        if rows[VISION]:
            vision_plot = plot.with_name(plot.stem + "-vision" + plot.suffix)
            plot_layers(vision_plot, artifact.kind, VISION, rows[VISION])
            result["vision_plot"] = str(vision_plot)
    return result
