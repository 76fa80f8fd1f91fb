"""What a release will write: options, artifact names, the ordered steps, and the disk it needs.

Everything here is decided from options and checkpoint metadata, before any heavy work, so a wrong
type name, an mmproj llama.cpp cannot run or a disk too small fails in seconds, not hours.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ... import __version__
from ...calibrate.dataset import data_hash, default_data_path, load_samples
from ...errors import InputError, OutputError
from ...formats.gguf_mix import DEFAULT_MMPROJ_TYPE, FILE_TYPES
from ...read.checkpoint import Checkpoint
from ...read.files import sha256_file
from ...read.fingerprint import fingerprint
from ...read.imatrix_file import load_imatrix
from ...write.gguf.plan import ExportPlan, plan_export
from ..awq import AWQRunOptions, check_widths
from ...write.sizes import GB, awq_bytes, gguf_llm_bytes, gguf_mmproj_bytes
from .eval_data import select

SCHEMA = "r1v-quant.release/1"
STATE_DIR = ".release"
# Bound on the reference file and copied eval images per sample (measured: ~0.5 MB a sample for the
# reference at k = s = 64 with the shipped data; images are counted from their real sizes).
REFERENCE_BYTES_PER_SAMPLE = 2_000_000
# Head room on top of the estimates: GGUF metadata and AWQ shard headers are estimated, not exact.
SPACE_MARGIN = 1.05
# Options that change how fast, not what: left out of the resume key.
NOT_IN_KEY = ("device", "threads")


@dataclass
class ReleaseOptions:
    awq: bool = False
    gguf: tuple[str, ...] = ()  # llama.cpp file types, in the order asked
    mmproj_type: str = DEFAULT_MMPROJ_TYPE
    name: str | None = None  # default: the checkpoint folder's name
    # A release's GGUF pair is for llama.cpp, whose InternVL graph (0c1e57098) applies the position rows
    # off by one: rolled, its image embeddings are right there (see write/gguf/compat.py).
    roll_pos_embd: bool = True
    eval_data: Path | None = None  # default: the shipped eval set
    eval_samples: int | None = None  # first half images, second half text; None: all
    max_tiles: int | None = None  # tiles per image for reference and validation
    top_k: int = 64
    calib_data: Path | None = None  # AWQ calibration data; default: the shipped set
    awq_samples: int = 128
    awq_seq_len: int = 2048
    awq_max_tiles: int = 4
    awq_vision_fp16: bool = False  # keep the AWQ folder's vision tower in float16 (for LMDeploy)
    # GGUF importance matrix: "auto" (measured on the calibration set, images included, with the awq_*
    # sample options), "none", or a file; shipped beside the .gguf files when used
    imatrix: str = "auto"
    group_size: int = 128
    propagate: str = "float"
    runtime: str = "engine"  # validation runtime
    max_kl: float = 0.10
    min_top1: float = 0.85
    max_ppl_ratio: float = 1.10
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None

    def recorded(self) -> dict[str, Any]:
        """The options as the manifest records them: data files by name (their hashes are under ``data``)."""
        d = asdict(self)
        d["gguf"] = list(self.gguf)
        for k in ("eval_data", "calib_data"):
            d[k] = Path(d[k]).name if d[k] else None
        if d["imatrix"] not in ("auto", "none"):
            d["imatrix"] = Path(d["imatrix"]).name
        return d

    @property
    def uses_imatrix(self) -> bool:
        return bool(self.gguf) and self.imatrix != "none"


@dataclass
class Artifact:
    id: str  # "awq", "gguf-q4_k_m"
    kind: str  # "awq" or "gguf"
    dir: str  # folder under dist/
    type: str | None = None  # GGUF type
    llm_file: str | None = None  # GGUF: file names inside dir
    mmproj_file: str | None = None


@dataclass
class ReleasePlan:
    out: Path
    name: str
    options: ReleaseOptions
    artifacts: list[Artifact]
    eval_path: Path  # the source eval data (before copying into dist/eval)
    calib_path: Path | None
    gguf_plans: dict[str, ExportPlan] = field(default_factory=dict)
    key: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.out / STATE_DIR

    @property
    def staging(self) -> Path:
        return self.state_dir / "staging"

    @property
    def awq_dir(self) -> str:
        return f"{self.name}-AWQ"

    @property
    def gguf_dir(self) -> str:
        return f"{self.name}-GGUF"

    @property
    def imatrix_file(self) -> str:
        return f"{self.name}.imatrix.gguf"

    def published_paths(self) -> list[Path]:
        """Everything a finished release has under ``out`` (what --force replaces)."""
        dirs = {a.dir for a in self.artifacts}
        return [self.out / p for p in ("manifest.json", "reference.r1vref", "eval", *sorted(dirs))]

    def steps(self) -> list[str]:
        """Step ids in run order; each is recorded in the state when its outputs are whole."""
        out = ["eval-data", "reference"]
        if self.options.awq:
            out += ["awq-build", "awq-validate", "awq-publish"]
        if self.options.uses_imatrix:
            out.append("gguf-imatrix")
        if self.options.gguf:
            out.append("gguf-mmproj")
            for t in self.options.gguf:
                out += [f"gguf-{t}-build", f"gguf-{t}-validate"]
            out.append("gguf-publish")
        return out

    def key_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()


def awq_run_options(opt: ReleaseOptions) -> AWQRunOptions:
    """The release's ``awq`` step, as ``r1v-quant awq`` options (the search's dtype follows the device:
    the release's --dtype is the reference's and validation's)."""
    return AWQRunOptions(samples=opt.awq_samples, seq_len=opt.awq_seq_len, max_tiles=opt.awq_max_tiles,
                         group_size=opt.group_size, device=opt.device, dtype="auto", propagate=opt.propagate,
                         data=str(opt.calib_data) if opt.calib_data else None, vision=not opt.awq_vision_fp16)


def parse_gguf_types(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    types: list[str] = []
    for t in (x.strip().lower() for x in text.split(",")):
        if not t:
            continue
        if t not in FILE_TYPES:
            raise InputError(f"--gguf: unknown type '{t}' (choose from {', '.join(FILE_TYPES)})")
        if t not in types:
            types.append(t)
    return tuple(types)


def make_plan(ckpt: Checkpoint, out: Path, opt: ReleaseOptions) -> ReleasePlan:
    if not opt.awq and not opt.gguf:
        raise InputError("nothing to release: pass --awq and/or --gguf TYPES")
    name = (opt.name or ckpt.dir.resolve().name).strip().replace(" ", "-").replace("/", "-")
    if not name:
        raise InputError("--name: empty after removing spaces and slashes")
    eval_path = Path(opt.eval_data) if opt.eval_data else default_data_path("eval")
    load_samples(eval_path)  # every bad line fails now, not after the build
    calib_path = None
    if opt.awq or opt.imatrix == "auto":
        calib_path = Path(opt.calib_data) if opt.calib_data else default_data_path("calib")
        load_samples(calib_path)
    if opt.awq:
        check_widths(ckpt, awq_run_options(opt))  # the check quantize_model makes, made early
    imatrix_hash = None
    if opt.uses_imatrix and opt.imatrix != "auto":
        load_imatrix(Path(opt.imatrix))  # a missing or foreign file fails now, not after the build
        imatrix_hash = sha256_file(Path(opt.imatrix))
    plan = ReleasePlan(out, name, opt, [], eval_path, calib_path)
    if opt.awq:
        plan.artifacts.append(Artifact("awq", "awq", plan.awq_dir))
    for i, t in enumerate(opt.gguf):
        # mmproj problems (v1 order, a norm llama.cpp gets wrong) raise InputError here
        ep = plan_export(ckpt, plan.staging / plan.gguf_dir, t, opt.mmproj_type, name, mmproj=True,
                         has_imatrix=opt.uses_imatrix)
        plan.gguf_plans[t] = ep
        plan.artifacts.append(Artifact(f"gguf-{t}", "gguf", plan.gguf_dir, t, ep.llm.path.name, ep.mmproj.path.name))
    plan.key = {
        "schema": SCHEMA, "tool": f"r1v-quant {__version__}", "source": fingerprint(ckpt), "name": name,
        "eval_data": data_hash(eval_path), "calib_data": data_hash(calib_path) if calib_path else None,
        "imatrix": imatrix_hash,
        "options": {k: v for k, v in opt.recorded().items() if k not in NOT_IN_KEY},
    }
    return plan


# --------------------------------------------------------------------------- disk space


def free_bytes(path: Path) -> int:
    """Free space where ``path`` is or would be created (its nearest existing folder)."""
    p = path.resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def space_needed(ckpt: Checkpoint, plan: ReleasePlan, done: set[str]) -> list[tuple[str, int]]:
    """(what, bytes) for every step still to run: ``inspect``'s estimates of each output.

    The AWQ build holds its finished layers and the activations between layers in a work folder
    while it assembles the output, so it is counted twice plus the float32 activations."""
    opt = plan.options
    need: list[tuple[str, int]] = []
    if "eval-data" not in done or "reference" not in done:
        all_samples = load_samples(plan.eval_path)
        samples = [all_samples[i] for i in select(all_samples, opt.eval_samples)]
        images = sum(p.stat().st_size for s in samples for p in s.images)
        need.append(("eval data + reference", images + REFERENCE_BYTES_PER_SAMPLE * len(samples)))
    if opt.awq and "awq-build" not in done:
        # the work folder holds the packed layers and, as float32 at most, one set of activations
        cfg = ckpt.config
        tiles = opt.awq_samples * (opt.awq_max_tiles + 1)
        activations = 4 * max(opt.awq_samples * opt.awq_seq_len * cfg.llm.hidden_size,
                              0 if opt.awq_vision_fp16 else tiles * (cfg.vision.num_patches + 1) * cfg.vision.hidden_size)
        need.append(("AWQ (output + work folder)", 2 * awq_bytes(ckpt, awq_run_options(opt).layout()) + activations))
    if opt.gguf and "gguf-mmproj" not in done:
        need.append((f"GGUF mmproj {opt.mmproj_type.upper()}", gguf_mmproj_bytes(ckpt, opt.mmproj_type)))
    for t in opt.gguf:
        if f"gguf-{t}-build" not in done:
            need.append((f"GGUF {t.upper()}", gguf_llm_bytes(ckpt, t)))
    return need


def check_space(ckpt: Checkpoint, plan: ReleasePlan, done: set[str], extra_free: int = 0) -> int:
    """Fail (exit 2) before any work when the estimates do not fit the free space; return the bytes needed.
    ``extra_free``: what --force is about to delete (the release being replaced)."""
    need = space_needed(ckpt, plan, done)
    total = int(sum(n for _, n in need) * SPACE_MARGIN)
    free = free_bytes(plan.out) + extra_free
    if total > free:
        parts = ", ".join(f"{what} {n / GB:,.2f} GB" for what, n in need)
        raise OutputError(f"{plan.out}: this release needs about {total / GB:,.2f} GB of disk ({parts}, "
                          f"+{round((SPACE_MARGIN - 1) * 100)}% margin) but only {free / GB:,.2f} GB is free")
    return total
