"""``r1v-quant inspect``: what a checkpoint holds and what each output would cost. Metadata only."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import typer
from rich.table import Table

from ..read.checkpoint import open_checkpoint
from ..read.layout import COMPONENTS, classify
from ..write.sizes import GB, RUNTIME_OVERHEAD_BYTES, estimate_outputs
from .console import out, print_json


def _size(n: float) -> str:
    """Bytes in GB (decimal, as GPU memory is sold), MB below 1 GB so tiny models still show."""
    return f"{n / GB:,.2f} GB" if n >= GB else f"{n / 1e6:,.1f} MB"


def inspect_report(model: Path, gpu_mem: float, context: int) -> dict:
    ckpt = open_checkpoint(model)
    cfg = ckpt.config
    comps: dict[str, dict] = defaultdict(lambda: {"params": 0, "bytes": 0, "dtypes": Counter(), "layers": set()})
    for name in ckpt.tensor_names:
        info = ckpt.info(name)
        unit = classify(name)
        c = comps[unit.component]
        c["params"] += info.numel
        c["bytes"] += info.nbytes
        c["dtypes"][info.dtype] += 1
        if unit.layer is not None:
            c["layers"].add(unit.layer)
    gpu_bytes = gpu_mem * GB
    return {
        "model": str(model),
        "architecture": cfg.architecture,
        "model_type": cfg.model_type,
        "ps_version": cfg.ps_version,
        "vision": {"layers": cfg.vision.num_layers, "width": cfg.vision.hidden_size, "norm": cfg.vision.norm_type,
                   "qk_norm": cfg.vision.qk_normalization, "image_size": cfg.image_size},
        "llm": {"layers": cfg.llm.num_layers, "width": cfg.llm.hidden_size, "heads": cfg.llm.num_heads,
                "kv_heads": cfg.llm.num_kv_heads, "intermediate": cfg.llm.intermediate_size,
                "vocab": cfg.llm.vocab_size},
        "components": {
            k: {"params": v["params"], "bytes": v["bytes"], "dtypes": dict(sorted(v["dtypes"].items())),
                "layers": len(v["layers"])}
            for k, v in sorted(comps.items(), key=lambda kv: COMPONENTS.index(kv[0]))
        },
        "shards": [{"file": s, "tensors": len(f.tensors), "bytes": f.path.stat().st_size}
                   for s, f in ckpt.shards.items()],
        "gpu_mem_gb": gpu_mem,
        "context": context,
        "runtime_overhead_bytes": RUNTIME_OVERHEAD_BYTES,
        "outputs": [e.as_dict(gpu_bytes) for e in estimate_outputs(ckpt, context)],
    }


def _show(r: dict) -> None:
    out.print(f"[bold]{r['model']}[/]  {r['architecture']} ({r['model_type']}), ps_version {r['ps_version']}")
    v, l = r["vision"], r["llm"]
    out.print(f"vision: {v['layers']} layers x {v['width']} ({v['norm']}, q/k norm {v['qk_norm']}), "
              f"image {v['image_size']}px;  LLM: {l['layers']} layers x {l['width']}, {l['heads']}/{l['kv_heads']} "
              f"heads, MLP {l['intermediate']}, vocab {l['vocab']}")
    t = Table(title="Components")
    for col in ("component", "parameters", "dtype", "size", "layers"):
        t.add_column(col, justify="left" if col in ("component", "dtype") else "right")
    for name, c in r["components"].items():
        t.add_row(name, f"{c['params']:,}", ", ".join(c["dtypes"]), _size(c["bytes"]), str(c["layers"] or "-"))
    out.print(t)
    t = Table(title="Shards")
    for col in ("file", "tensors", "size"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for s in r["shards"]:
        t.add_row(s["file"], str(s["tensors"]), _size(s["bytes"]))
    out.print(t)
    t = Table(title=f"Outputs (estimated; GPU need = weights + KV cache for {r['context']} tokens in fp16 "
                    f"+ {RUNTIME_OVERHEAD_BYTES / GB:.1f} GB runtime)")
    for col in ("output", "file", "KV cache", "GPU need", f"fits {r['gpu_mem_gb']:g} GB"):
        t.add_column(col, justify="left" if col == "output" else "right")
    for o in r["outputs"]:
        t.add_row(o["name"], _size(o["file_bytes"]), _size(o["kv_bytes"]), _size(o["gpu_need_bytes"]),
                  "[green]yes[/]" if o["fits"] else "[red]no[/]")
    out.print(t)


def inspect(
    model: Path = typer.Argument(..., help="Checkpoint folder (config.json + safetensors shards)."),
    gpu_mem: float = typer.Option(30.0, "--gpu-mem", min=0.1, help="GPU memory to check each output against, in GB."),
    context: int = typer.Option(8192, "--context", min=1, help="Tokens of KV cache to budget for."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for CI)."),
) -> None:
    """Show components, shards and the estimated size of every output; reads metadata only."""
    report = inspect_report(model, gpu_mem, context)
    if as_json:
        print_json(report)
    else:
        _show(report)
