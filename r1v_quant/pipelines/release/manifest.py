"""``dist/manifest.json``: schema, file hashes, and ``verify``.

Schema ``r1v-quant.release/1`` (JSON, sorted keys, two-space indent, no timestamps)::

    schema, tool, name, release_key   release_key: sha256 of everything that decides the bytes
    passed                            every artifact passed its validation gate
    source       name, fingerprint, architecture, model_type, ps_version, kv_cache_bytes_per_token
    data         eval: file, source, sha256, samples, image_samples; calibration (AWQ only): file, sha256
    reference    file, samples, tokens, positions, answer_positions, top_k
    options      every release option (data files by name)
    artifacts    id -> kind, dir, status ("passed" | "failed"), files, weights, build, validation,
                 and for GGUF: type, llm, mmproj (the mmproj file paired with that LLM file)
    files        path (relative, "/"-separated) -> bytes, sha256: every file of the release

``validation`` holds the validator's ``passed``, ``kind``, ``runtime``, ``groups`` and ``checks``, figures
rounded to 6 significant digits; the rest of its report (timings, paths) stays out of the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import InputError, R1VError
from ...read.files import sha256_file
from ...write.atomic import atomic_file
from .plan import SCHEMA

MANIFEST = "manifest.json"


class VerifyFailed(R1VError):
    """A file of the release is missing, altered or unlisted (exit 1, like a failed gate)."""

    exit_code = 1


def describe_files(root: Path, rel_to: str) -> dict[str, dict[str, Any]]:
    """bytes and sha256 of every file under ``root``, keyed by ``rel_to/<path inside root>``."""
    out = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        out[f"{rel_to}/{f.relative_to(root).as_posix()}"] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    return out


def rounded(x: Any) -> Any:
    """Floats to 6 significant digits: the last bits of a sum may differ between BLAS builds."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    return x


def validation_record(report: Any) -> dict[str, Any]:
    """What of a :class:`~r1v_quant.validate.report.ValidationReport` goes into the manifest and cards."""
    return rounded({"passed": bool(report.passed), "kind": report.kind, "runtime": report.runtime,
                 "groups": {g: dict(sorted(v.items())) for g, v in sorted(report.groups.items())},
                 "checks": [dict(c) for c in report.checks]})


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    path = out / MANIFEST
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(dumps(manifest), encoding="utf-8")
    return path


def load_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found (not a release folder, or the release did not finish)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable ({e})") from None
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema {m.get('schema') if isinstance(m, dict) else None!r}, "
                         f"this tool reads {SCHEMA}")
    return m


@dataclass
class VerifyResult:
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    failed_artifacts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": not self.problems and not self.failed_artifacts, "files": self.files, "bytes": self.bytes,
                "problems": self.problems, "failed_artifacts": self.failed_artifacts}


def verify(out: Path, progress: Callable[[str, int], None] | None = None) -> VerifyResult:
    """Re-hash every listed file; list a missing, resized or altered one, and any file inside an
    artifact folder that the manifest does not list (something added after the release)."""
    m = load_manifest(out)
    res = VerifyResult()
    files: dict[str, dict[str, Any]] = m.get("files", {})
    for rel, want in sorted(files.items()):
        path = out / rel
        res.files += 1
        if not path.is_file():
            res.problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != want["bytes"]:
            res.problems.append(f"{rel}: {size} bytes, manifest says {want['bytes']}")
            continue
        digest = sha256_file(path, (lambda n, r=rel: progress(r, n)) if progress else None)
        res.bytes += size
        if digest != want["sha256"]:
            res.problems.append(f"{rel}: sha256 {digest[:16]}..., manifest says {want['sha256'][:16]}...")
    for d in sorted({a["dir"] for a in m.get("artifacts", {}).values()}):
        if not (out / d).is_dir():
            continue  # its files are reported missing above
        for f in sorted(p for p in (out / d).rglob("*") if p.is_file()):
            rel = f.relative_to(out).as_posix()
            if rel not in files:
                res.problems.append(f"{rel}: not in the manifest")
    res.failed_artifacts = sorted(k for k, a in m.get("artifacts", {}).items() if a.get("status") != "passed")
    return res
