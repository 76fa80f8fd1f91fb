"""``validate``: an artifact's logits on the reference's prompts, scored against the reference, gated.

Steps: read the reference; open the artifact (BF16 checkpoint, AWQ folder or GGUF
pair, :func:`~r1v_quant.read.artifact.open_artifact`) and check it comes from the
reference's model (the fingerprint it records of its source; the vocabulary, tile and
slot counts in any case); rebuild the reference's prompts (:mod:`.samples`); run them
through a runtime -- the forward engine on the artifact's own weights, or llama.cpp
itself for a GGUF pair -- scoring every reference position as its logits arrive
(:mod:`.scoring`); compare the summaries with the thresholds.

Exit codes (CLI): 0 every check holds, 1 a check fails, 2 unusable input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..engine import Engine, EngineOptions
from ..errors import InputError
from ..read.artifact import GGUF, WeightSource, open_artifact
from .reference import DTYPES
from .reference_file import Reference, load_reference
from .samples import rebuild_samples, resolve_data
from .scoring import PositionScores

RUNTIMES = ("engine", "llama.cpp")


@dataclass
class Thresholds:
    """Gate limits; defaults sized for real (38B-class) models, where a good 4-bit artifact measures
    mean KL ~0.01-0.05 and top-1 agreement > 0.9.  The random tiny demo models need looser ones."""

    max_kl: float = 0.10  # mean KL(ref || artifact), per prompt kind
    min_top1: float = 0.85  # share of positions where both models' most likely token agree
    max_ppl_ratio: float = 1.10  # perplexity of the reference answers, artifact / reference

    def checks(self, groups: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        out = []
        for group, g in groups.items():
            for metric, op, limit in (("kl_mean", "<=", self.max_kl), ("top1", ">=", self.min_top1),
                                      ("ppl_ratio", "<=", self.max_ppl_ratio)):
                value = g[metric]
                ok = value <= limit if op == "<=" else value >= limit
                out.append({"group": group, "metric": metric, "value": value, "op": op, "limit": limit, "ok": ok})
        return out


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


FIGURES = [  # (key, column title, format)
    ("positions", "positions", "{:d}"), ("kl_mean", "mean KL", "{:.4f}"), ("kl_p99", "p99 KL", "{:.4f}"),
    ("top1", "top-1", "{:.3f}"), ("top5_miss", "top-5 miss", "{:.3f}"), ("ppl_ratio", "PPL ratio", "{:.3f}"),
]


@dataclass
class ValidationReport:
    artifact: str
    kind: str  # "checkpoint", "awq", "gguf"
    runtime: str
    passed: bool
    groups: dict[str, dict[str, float]]  # "image" / "text" -> figure name -> value
    checks: list[dict[str, Any]]  # {"group", "metric", "value", "limit", "op", "ok"}
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failures(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]

    def markdown(self) -> str:
        """The figures as a Markdown table (for model cards and notes)."""
        head = "| prompts | " + " | ".join(t for _, t, _ in FIGURES) + " |"
        lines = [head, "|" + "---|" * (len(FIGURES) + 1)]
        for group, g in self.groups.items():
            lines.append(f"| {group} | " + " | ".join(f.format(g[k]) for k, _, f in FIGURES) + " |")
        return "\n".join(lines) + "\n"


ProgressFn = Callable[[str], None]


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_same_model(ref: Reference, source: WeightSource) -> dict[str, Any]:
    """Refuse a reference made from another model; say how sure the check is."""
    want = ref.meta["model"]["fingerprint"]
    vocab = ref.meta["model"].get("vocab_size")
    if vocab is not None and vocab != source.config.llm.vocab_size:
        raise InputError(f"the reference is from another model: vocabulary {vocab}, "
                         f"the artifact's {source.config.llm.vocab_size}")
    got = source.provenance.get("fingerprint")
    if got is not None and got != want:
        raise InputError(f"the reference is from another model: its fingerprint is {want[:12]}..., "
                         f"the artifact was made from {got[:12]}...")
    return {"reference_fingerprint": want, "fingerprint_checked": got is not None}


def validate_artifact(artifact: Path, reference: Path, options: ValidateOptions | None = None,
                      progress: ProgressFn | None = None) -> ValidationReport:
    """Raises :class:`~r1v_quant.errors.InputError` for unusable input (CLI exit 2)."""
    opt = options or ValidateOptions()
    say = progress or (lambda msg: None)
    if opt.runtime not in RUNTIMES:
        raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {opt.runtime!r}")
    if opt.dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {opt.dtype!r}")
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
    with _threads(opt.threads), torch.no_grad():
        if opt.runtime == "engine":
            engine = Engine(source, EngineOptions(device=opt.device, dtype=DTYPES[opt.dtype]),  # type: ignore[arg-type]
                            progress=lambda unit: say(f"unit {unit}"))
            engine.run(rebuilt.prepared, on_logits, positions)
        else:
            from .llama_runtime import llama_cpp_logits

            llama_cpp_logits(source.llm_path, source.mmproj_path, rebuilt.prepared,  # type: ignore[attr-defined]
                             rebuilt.tiles, positions, on_logits, threads=opt.threads, progress=say)
    groups = scores.summary()
    checks = opt.thresholds.checks(groups)
    if opt.per_layer:
        from .per_layer import diagnose

        info["per_layer"] = diagnose(Path(opt.source), source, ref, rebuilt.prepared, opt, say)  # type: ignore[arg-type]
    info["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opt).items()}
    return ValidationReport(str(artifact), source.kind, opt.runtime, all(c["ok"] for c in checks), groups,
                            checks, info)
