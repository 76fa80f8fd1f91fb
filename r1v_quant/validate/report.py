"""What a validation says: the figures per prompt kind, the gate's limits, and the checks against them.

Exit codes (CLI): 0 every check holds, 1 a check fails, 2 unusable input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
