"""The release steps, run in order, each recorded in the state when its outputs are whole.

Step ids (see :meth:`ReleasePlan.steps`): ``eval-data``, ``reference``, then per artifact a build,
a validation and (per folder) a publish: the card is written into the staged folder, which is then
renamed into ``dist/``.  The manifest is written last, from the state alone, and the state folder is
removed.  Validation is one call, :func:`r1v_quant.pipelines.validate.validate_artifact`.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...calibrate.dataset import load_samples
from ...errors import InputError, OutputError, R1VError
from ...read.checkpoint import Checkpoint, open_checkpoint
from ...read.imatrix_file import Imatrix, load_imatrix
from ...validate.reference_file import save_reference
from ...validate.report import Thresholds
from ...write.atomic import atomic_file, check_writable, describe_os_error, make_parents
from ...write.gguf.plan import plan_export
from ...write.sizes import kv_cache_bytes
from ..awq import quantize_model
from ..gguf import export_gguf
from ..imatrix import ImatrixOptions, compute_imatrix
from ..reference import ReferenceOptions, compute_reference
from ..validate import ValidateOptions, validate_artifact
from . import eval_data, model_card
from .manifest import (MANIFEST, describe_files, load_manifest, rounded, sha256_file, validation_record, write_manifest)
from .plan import SCHEMA, Artifact, ReleaseOptions, ReleasePlan, awq_run_options, check_space, make_plan
from .state import State

REFERENCE = "reference.r1vref"
EVAL_DIR = "eval"
CARD = "README.md"
PARTIAL = re.compile(r"^\..+\.partial-\d+$")  # write.atomic's temporaries, orphaned by a killed run

# events(kind, text): "plan" ("<n> steps: <ids>"), "step" (a step starts), "skip" (recorded by an earlier run), "done" (a step ends),
# "note" (a line worth keeping in CI logs), "status" (fine-grained progress, for a live display only)
Events = Callable[[str, str], None]


class ReleaseFailed(R1VError):
    """An artifact failed its validation gate: exit 1, after the manifest has marked it."""

    exit_code = 1


@dataclass
class ReleaseResult:
    out: Path
    manifest: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # steps an earlier run had finished
    seconds: float = 0.0
    disk_needed: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.manifest["passed"])

    @property
    def failed(self) -> list[str]:
        return sorted(k for k, a in self.manifest["artifacts"].items() if a["status"] != "passed")

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"out": str(self.out), "manifest": str(self.out / MANIFEST), "passed": self.passed,
                "failed": self.failed, "skipped_steps": self.skipped, "seconds": round(self.seconds, 1),
                "disk_needed_bytes": self.disk_needed,
                "artifacts": {k: {"status": a["status"], "dir": a["dir"], "files": a["files"],
                                  "validation": a["validation"]["groups"]} for k, a in m["artifacts"].items()}}


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _remove_partials(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.iterdir():
            if PARTIAL.match(p.name):
                _remove(p)


def _tree_bytes(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


class _Run:
    def __init__(self, ckpt: Checkpoint, plan: ReleasePlan, state: State, events: Events):
        self.ckpt, self.plan, self.state, self.emit = ckpt, plan, state, events
        self.opt: ReleaseOptions = plan.options
        self.out = plan.out

    # ------------------------------------------------------------------ shared data

    def common(self) -> dict[str, Any]:
        """The manifest's fields shared by every artifact (and its cards)."""
        cfg, st, key = self.ckpt.config, self.state.steps, self.plan.key
        data: dict[str, Any] = {"eval": {k: v for k, v in st["eval-data"].items() if k != "files"}}
        if self.plan.calib_path is not None:  # AWQ's calibration, and the importance matrix's
            data["calibration"] = {"file": self.plan.calib_path.name, "sha256": key["calib_data"]}
        ref = st["reference"]
        return {
            "tool": key["tool"], "name": self.plan.name, "options": self.opt.recorded(), "data": data,
            "source": {"name": self.ckpt.dir.resolve().name, "fingerprint": key["source"],
                       "architecture": cfg.architecture, "model_type": cfg.model_type, "ps_version": cfg.ps_version,
                       "kv_cache_bytes_per_token": kv_cache_bytes(cfg, 1)},
            "reference": {"file": REFERENCE, "top_k": ref["top_k"], **ref["counts"]},
        }

    def entry(self, a: Artifact) -> dict[str, Any]:
        st = self.state.steps
        if a.kind == "awq":
            b, v = st["awq-build"], st["awq-validate"]
            files = sorted([*b["files"], f"{a.dir}/{CARD}"])
            e = {"kind": "awq", "dir": a.dir, "files": files, "weights": b["weights"], "build": b["build"]}
        else:
            b, v = st[f"gguf-{a.type}-build"], st[f"gguf-{a.type}-validate"]
            llm, mm = f"{a.dir}/{a.llm_file}", f"{a.dir}/{a.mmproj_file}"
            files = sorted([*b["files"], *st["gguf-mmproj"]["files"], *st.get("gguf-imatrix", {}).get("files", {}),
                            f"{a.dir}/{CARD}"])
            e = {"kind": "gguf", "dir": a.dir, "type": a.type, "llm": llm, "mmproj": mm,
                 "files": files, "weights": [llm, mm], "build": b["build"]}
        e["validation"] = v
        e["status"] = "passed" if v["passed"] else "failed"
        return e

    def manifest(self) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = {}
        for rec in self.state.steps.values():
            files.update(rec.get("files", {}))
        artifacts = {a.id: self.entry(a) for a in self.plan.artifacts}
        return {"schema": SCHEMA, "release_key": self.plan.key_digest(), **self.common(), "artifacts": artifacts,
                "passed": all(e["status"] == "passed" for e in artifacts.values()), "files": files}

    # ------------------------------------------------------------------ steps

    def handlers(self) -> dict[str, Callable[[], dict[str, Any]]]:
        h: dict[str, Callable[[], dict[str, Any]]] = {
            "eval-data": self.eval_data, "reference": self.reference,
            "awq-build": self.awq_build, "awq-validate": self.awq_validate,
            "awq-publish": lambda: self.publish(self.plan.awq_dir, "awq"),
            "gguf-mmproj": self.gguf_mmproj, "gguf-publish": lambda: self.publish(self.plan.gguf_dir, "gguf"),
            "gguf-imatrix": self.gguf_imatrix,
        }
        for t in self.opt.gguf:
            h[f"gguf-{t}-build"] = lambda t=t: self.gguf_build(t)
            h[f"gguf-{t}-validate"] = lambda t=t: self.gguf_validate(t)
        return h

    def eval_data(self) -> dict[str, Any]:
        rec = eval_data.write_eval_data(self.plan.eval_path, self.opt.eval_samples, self.out / EVAL_DIR, True)
        rec["files"] = describe_files(self.out / EVAL_DIR, EVAL_DIR)
        return rec

    def reference(self) -> dict[str, Any]:
        eval_file = self.out / EVAL_DIR / eval_data.FILE
        opt = ReferenceOptions(device=self.opt.device, dtype=self.opt.dtype, top_k=self.opt.top_k,
                               max_tiles=self.opt.max_tiles)
        ref = compute_reference(self.ckpt, load_samples(eval_file), eval_file, opt,
                                on_unit=lambda u: self.emit("status", f"reference: {u}"))
        save_reference(self.out / REFERENCE, ref, overwrite=True)
        p = self.out / REFERENCE
        return {"counts": ref.meta["counts"], "top_k": self.opt.top_k,
                "files": {REFERENCE: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}}}

    def awq_build(self) -> dict[str, Any]:
        o, d = self.opt, self.plan.awq_dir
        target = self.plan.staging / d
        run_opt = awq_run_options(o)
        cfg = self.ckpt.config
        n = cfg.llm.num_layers + (0 if o.awq_vision_fp16 else cfg.vision.num_layers)

        def events(kind: str, info: dict) -> None:
            if kind == "layer_done":
                self.emit("note", f"awq: {info['stack']}.layer.{info['layer']} done")
            elif kind == "resume":
                self.emit("note", f"awq: resumed after {info['unit']} ({info['layer']}/{n} layers done)")
            elif kind == "step":
                self.emit("status", f"awq: {info['unit']}: {info['step']}")
            elif kind == "assemble":
                self.emit("status", "awq: writing shards")

        # resume=True always: the work folder exists only if this release (same key) made it
        s = quantize_model(self.ckpt, target, run_opt, resume=True, overwrite=True, events=events)
        files = describe_files(target, d)
        return {"files": files, "weights": sorted(f for f in files if f.endswith(".safetensors")),
                "build": rounded({"layers": s["layers"], "calibration": s["calibration"],
                                  "fp16_warnings": s["fp16_warnings"], "max_abs_activation": s["max_abs_activation"],
                                  "quantization_config": s["quantization_config"]})}

    def validate(self, artifact: Path, mmproj: Path | None = None) -> dict[str, Any]:
        o = self.opt
        vo = ValidateOptions(runtime=o.runtime, mmproj=mmproj, data=self.out / EVAL_DIR / eval_data.FILE,
                             device=o.device, dtype=o.dtype, threads=o.threads,
                             thresholds=Thresholds(max_kl=o.max_kl, min_top1=o.min_top1, max_ppl_ratio=o.max_ppl_ratio))
        report = validate_artifact(artifact, self.out / REFERENCE, vo,
                                   lambda text: self.emit("status", f"validate {artifact.name}: {text}"))
        rec = validation_record(report)
        failed = [f"{c['group']} {c['metric']} {c['value']:.4g} (gate {c['op']} {c['limit']:.4g})"
                  for c in rec["checks"] if not c["ok"]]
        self.emit("note", f"validation of {artifact.name}: " + ("passed" if rec["passed"] else
                                                               "FAILED: " + "; ".join(failed)))
        return rec

    def awq_validate(self) -> dict[str, Any]:
        return self.validate(self.plan.staging / self.plan.awq_dir)

    def imatrix_path(self) -> Path:
        return self.plan.staging / self.plan.gguf_dir / self.plan.imatrix_file

    def imatrix(self) -> Imatrix | None:
        return load_imatrix(self.imatrix_path()) if self.opt.uses_imatrix else None

    def gguf_imatrix(self) -> dict[str, Any]:
        """The importance matrix the GGUF files are quantized with, shipped beside them: measured on the
        calibration set (``auto``) or the given file, copied."""
        o, path = self.opt, self.imatrix_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        if o.imatrix == "auto":
            opt = ImatrixOptions(data=self.plan.calib_path, samples=o.awq_samples, seq_len=o.awq_seq_len,
                                 max_tiles=o.awq_max_tiles, device=o.device, dtype=o.dtype)
            compute_imatrix(self.ckpt, path, opt, overwrite=True,
                            progress=lambda m: self.emit("status", f"imatrix: {m}"))
        else:
            with atomic_file(path, overwrite=True) as tmp:
                shutil.copyfile(o.imatrix, tmp)
        m = load_imatrix(path)
        rel = f"{self.plan.gguf_dir}/{path.name}"
        return {"files": {rel: {"bytes": path.stat().st_size, "sha256": sha256_file(path)}},
                "build": {"source": o.imatrix if o.imatrix in ("auto", "none") else Path(o.imatrix).name,
                          "entries": len(m.sums), "chunks": m.chunk_count, "datasets": m.datasets}}

    def gguf_mmproj(self) -> dict[str, Any]:
        t = self.opt.gguf[0]
        plan = plan_export(self.ckpt, self.plan.staging / self.plan.gguf_dir, t, self.opt.mmproj_type, self.plan.name,
                           mmproj=True, llm=False, has_imatrix=self.opt.uses_imatrix)
        return self._gguf(plan, "mmproj")

    def gguf_build(self, t: str) -> dict[str, Any]:
        plan = plan_export(self.ckpt, self.plan.staging / self.plan.gguf_dir, t, self.opt.mmproj_type, self.plan.name,
                           mmproj=False, llm=True, has_imatrix=self.opt.uses_imatrix)
        return self._gguf(plan, "llm")

    def _gguf(self, plan: Any, kind: str) -> dict[str, Any]:
        fp = plan.mmproj if kind == "mmproj" else plan.llm
        done = [0]

        def progress(_kind: str, _name: str, n: int) -> None:
            done[0] += n
            self.emit("status", f"{fp.path.name}: {done[0] / 1e6:,.0f} / {fp.nbytes / 1e6:,.0f} MB")

        fp.path.parent.mkdir(parents=True, exist_ok=True)
        export_gguf(self.ckpt, fp.path.parent, overwrite=True, progress=progress,
                    roll_position_embd=self.opt.roll_pos_embd, device=self.opt.device, threads=self.opt.threads or 1,
                    plan=plan, imatrix=self.imatrix())
        # the file and what the exporter writes beside it (``<stem>.r1v.json``: provenance for validate)
        stem = fp.path.name.removesuffix(".gguf") + "."
        written = sorted(p for p in fp.path.parent.iterdir() if p.is_file() and p.name.startswith(stem))
        fallbacks = [{"tensor": t.gguf_name, "wanted": t.wanted.name, "got": t.qtype.name} for t in fp.fallbacks()]
        return {"files": {f"{self.plan.gguf_dir}/{p.name}": {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                          for p in written},
                "build": {"type": fp.type_name, "tensors": len(fp.tensors), "params": fp.params,
                          "ggml_types": fp.type_counts(), "fallbacks": fallbacks}}

    def gguf_validate(self, t: str) -> dict[str, Any]:
        a = next(a for a in self.plan.artifacts if a.type == t)
        folder = self.plan.staging / a.dir
        return self.validate(folder / a.llm_file, mmproj=folder / a.mmproj_file)

    def publish(self, d: str, kind: str) -> dict[str, Any]:
        """Card into the staged folder, then the folder into dist/ (a rename: whole or absent)."""
        staged, final = self.plan.staging / d, self.out / d
        if staged.is_dir():
            entries = [(a.id, self.entry(a)) for a in self.plan.artifacts if a.kind == kind]
            files: dict[str, dict[str, Any]] = {}
            for _, e in entries:
                for f in e["weights"] + [f for f in e["files"] if not f.endswith(f"/{CARD}")]:
                    files[f] = self.state.file(f)
            (staged / CARD).write_text(model_card.render(self.common(), entries, files), encoding="utf-8")
            if final.exists():  # left by --force's predecessor only; check_writable said it may go
                _remove(final)
            try:
                os.rename(staged, final)
            except OSError as e:
                raise describe_os_error(e, final) from None
        elif not (final / CARD).is_file():
            raise InputError(f"{staged}: staged artifact missing; run with --force to start over")
        # else: renamed by a run killed before it could record this step
        card = final / CARD
        return {"files": {f"{d}/{CARD}": {"bytes": card.stat().st_size, "sha256": sha256_file(card)}}}


# --------------------------------------------------------------------------- entry point


def _open_state(plan: ReleasePlan, resume: bool, force: bool) -> tuple[State | None, dict[str, Any] | None, int]:
    """Decide, without writing anything: the state to run with (None with the finished manifest when
    --resume finds nothing left to do), and the bytes --force will free."""
    out = plan.out
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, cannot hold the release")
    state = State.load(plan.state_dir) if plan.state_dir.is_dir() else None
    if resume:
        if state is not None:
            if state.key != plan.key:
                raise InputError(f"{state.path}: the interrupted release used another model, data, options or tool "
                                 "version; run with --force instead of --resume to start over")
            return state, None, 0
        if (out / MANIFEST).is_file():
            m = load_manifest(out)
            if m.get("release_key") != plan.key_digest():
                raise InputError(f"{out / MANIFEST}: a finished release of other inputs or options; "
                                 "pass --force to replace it")
            return None, m, 0
    freed = 0
    for p in [*plan.published_paths(), plan.state_dir]:
        if p.exists() or p.is_symlink():
            if not (force or (resume and p == plan.state_dir)):  # a state folder killed before its first save
                raise OutputError(f"{p}: already exists (pass --force to replace the release, or --resume to "
                                  "continue an interrupted one)")
            freed += _tree_bytes(p)
    fresh = State(plan.state_dir)
    fresh.key = plan.key
    return fresh, None, freed


def _start_fresh(plan: ReleasePlan) -> None:
    """Create dist/ (or say why not) and remove what --force replaces."""
    check_writable(plan.out / MANIFEST, overwrite=True)
    make_parents(plan.out / MANIFEST)  # dist/ holds the resumable state from here on
    for p in [*plan.published_paths(), plan.state_dir]:
        _remove(p)


def run_release(model: Path, out: Path, opt: ReleaseOptions, resume: bool = False, force: bool = False,
                events: Events | None = None) -> ReleaseResult:
    emit = events or (lambda kind, text: None)
    t0 = time.monotonic()
    ckpt = open_checkpoint(model)
    plan = make_plan(ckpt, Path(out), opt)
    steps = plan.steps()
    state, finished, freed = _open_state(plan, resume, force)
    if state is None:
        emit("note", f"{out}: release already complete, nothing to resume")
        return ReleaseResult(plan.out, finished, skipped=steps, seconds=time.monotonic() - t0)
    done = {s for s in steps if state.done(s)}
    # partial temporaries of a killed run go first: they hold disk space and must never be published
    for folder in (plan.out, plan.staging, *(plan.staging / a.dir for a in plan.artifacts)):
        _remove_partials(folder)
    need = check_space(ckpt, plan, done, extra_free=freed)  # before anything is written or removed
    if not done:
        _start_fresh(plan)
    state.save()
    emit("plan", f"{len(steps)} steps: {', '.join(steps)}")
    run = _Run(ckpt, plan, state, emit)
    handlers = run.handlers()
    skipped = []
    for i, step in enumerate(steps, 1):
        if state.done(step):
            for rel, f in state.steps[step].get("files", {}).items():
                p = plan.staging / rel if (plan.staging / rel).exists() else plan.out / rel  # staged or published
                if not p.is_file() or p.stat().st_size != f["bytes"]:
                    raise InputError(f"{p}: recorded by the interrupted release but missing or changed; "
                                     "run with --force to start over")
            skipped.append(step)
            emit("skip", f"[{i}/{len(steps)}] {step}: done by the interrupted run")
            continue
        emit("step", f"[{i}/{len(steps)}] {step}")
        t = time.monotonic()
        state.record(step, handlers[step]())
        emit("done", f"[{i}/{len(steps)}] {step}: done in {time.monotonic() - t:.1f} s")
    manifest = run.manifest()
    write_manifest(plan.out, manifest)
    _remove(plan.state_dir)
    return ReleaseResult(plan.out, manifest, skipped, time.monotonic() - t0, need)


__all__ = ["ReleaseFailed", "ReleaseOptions", "ReleaseResult", "run_release"]
