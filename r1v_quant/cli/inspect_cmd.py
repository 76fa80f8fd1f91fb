"""``r1v-quant inspect``: what a checkpoint holds, what each output would weigh, and which GPU it needs.
Metadata only."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import typer
from rich.table import Table

from ..read.layout import COMPONENTS, classify
from ..write.sizes import CONTEXTS, GB, GPUS_GB, RUNTIME_OVERHEAD_BYTES, file_sizes, fit, gpu_key, variants
from ..read.hub import DEFAULT_MODEL
from .console import MODEL_HELP, REVISION_HELP, open_model, out, print_json


def _size(n: float) -> str:
    """Bytes in GB (decimal, as GPU memory is sold), MB below 1 GB so tiny models still show."""
    return f"{n / GB:,.2f} GB" if n >= GB else f"{n / 1e6:,.1f} MB"


def _params(n: int) -> str:
    return f"{n / 1e9:,.2f}B" if n >= 1e9 else f"{n / 1e6:,.1f}M"


def inspect_report(model: str | None, gpu_mem: float, context: int, revision: str | None = None) -> dict[str, Any]:
    ckpt, ref = open_model(model, revision)
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
    contexts = tuple(sorted({*CONTEXTS, context}))
    gpus = tuple(sorted({*GPUS_GB, gpu_mem}))
    fits = [fit(cfg, v, contexts, gpus) for v in variants(ckpt)]
    for f in fits:
        f["fits_chosen"] = f["contexts"][str(context)]["fits"][gpu_key(gpu_mem)]
    return {
        "model": model or DEFAULT_MODEL,
        "path": str(ref.path),
        "architecture": cfg.architecture,
        "model_type": cfg.model_type,
        "ps_version": cfg.ps_version,
        "vision": {"layers": cfg.vision.num_layers, "width": cfg.vision.hidden_size, "norm": cfg.vision.norm_type,
                   "qk_norm": cfg.vision.qk_normalization, "image_size": cfg.image_size},
        "llm": {"layers": cfg.llm.num_layers, "width": cfg.llm.hidden_size, "heads": cfg.llm.num_heads,
                "kv_heads": cfg.llm.num_kv_heads, "intermediate": cfg.llm.intermediate_size,
                "vocab": cfg.llm.vocab_size},
        "total": {"params": sum(c["params"] for c in comps.values()), "bytes": sum(c["bytes"] for c in comps.values())},
        "components": {
            k: {"params": v["params"], "bytes": v["bytes"], "dtypes": dict(sorted(v["dtypes"].items())),
                "layers": len(v["layers"])}
            for k, v in sorted(comps.items(), key=lambda kv: COMPONENTS.index(kv[0]))
        },
        "shards": [{"file": s, "tensors": len(f.tensors), "bytes": f.path.stat().st_size}
                   for s, f in ckpt.shards.items()],
        "files": [{"name": e.name, "bytes": e.file_bytes} for e in file_sizes(ckpt)],
        "gpu_mem_gb": gpu_mem,
        "context": context,
        "gpus_gb": list(gpus),
        "contexts": list(contexts),
        "runtime_overhead_bytes": RUNTIME_OVERHEAD_BYTES,
        "fit": fits,
    }


def _fit_cell(c: dict, chosen: bool) -> str:
    gpu = c["smallest_gpu_gb"]
    text = f"{c['total_bytes'] / GB:.1f}→{gpu:g}" if gpu is not None else f"{c['total_bytes'] / GB:.1f}→-"
    return f"[bold]{text}[/]" if chosen else text


def _show(r: dict) -> None:
    out.print(f"[bold]{r['model']}[/]  {r['architecture']} ({r['model_type']}), ps_version {r['ps_version']}")
    v, l, tot = r["vision"], r["llm"], r["total"]
    out.print(f"vision: {v['layers']} layers x {v['width']} ({v['norm']}, q/k norm {v['qk_norm']}), "
              f"image {v['image_size']}px;  LLM: {l['layers']} layers x {l['width']}, {l['heads']}/{l['kv_heads']} "
              f"heads, MLP {l['intermediate']}, vocab {l['vocab']}")
    out.print(f"total: {_params(tot['params'])} parameters, {_size(tot['bytes'])}")
    t = Table(title="Components")
    for col in ("component", "parameters", "dtype", "size", "layers"):
        t.add_column(col, justify="left" if col in ("component", "dtype") else "right")
    for name, c in r["components"].items():
        t.add_row(name, f"{c['params']:,}", ", ".join(c["dtypes"]), _size(c["bytes"]), str(c["layers"] or "-"))
    t.add_row("total", f"{tot['params']:,}", "", _size(tot["bytes"]), "", style="bold")
    out.print(t)
    t = Table(title="Shards")
    for col in ("file", "tensors", "size"):
        t.add_column(col, justify="left" if col == "file" else "right")
    for s in r["shards"]:
        t.add_row(s["file"], str(s["tensors"]), _size(s["bytes"]))
    out.print(t)
    t = Table(title="Output files")
    t.add_column("output")
    t.add_column("size", justify="right")
    for f in r["files"]:
        t.add_row(f["name"], _size(f["bytes"]))
    out.print(t)
    t = Table(title="GPU need in GB, and the smallest of " + "/".join(f"{g:g}" for g in r["gpus_gb"]) +
                    " GB it fits (weights + KV cache + "
                    f"{r['runtime_overhead_bytes'] / GB:.1f} GB runtime); bold: {r['context']} tokens")
    for col in ("variant", "runtime", "KV", "weights", *(f"{c // 1024}k" for c in r["contexts"])):
        t.add_column(col, justify="right" if col not in ("variant", "runtime", "KV") else "left")
    for f in r["fit"]:
        t.add_row(f["name"], f["runtime"], f["kv_type"], f"{f['weights_bytes'] / GB:.2f}",
                  *(_fit_cell(f["contexts"][str(c)], c == r["context"]) for c in r["contexts"]))
    out.print(t)


def inspect(
    model: str = typer.Argument(None, help=MODEL_HELP, show_default=False),
    revision: str = typer.Option(None, "--revision", help=REVISION_HELP),
    gpu_mem: float = typer.Option(30.0, "--gpu-mem", min=0.1, help="GPU memory to check each variant against, in GB "
                                                                    "(added to the table's 24/30/40/48/80)."),
    context: int = typer.Option(8192, "--context", min=1, help="Tokens of KV cache to check it at (added to the "
                                                                "table's 4k/8k/16k/32k)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for CI)."),
) -> None:
    """Show the model's size (total and per component), its shards, each output's file size, and the GPU
    memory each variant needs per runtime and context length; reads metadata only."""
    report = inspect_report(model, gpu_mem, context, revision)
    if as_json:
        print_json(report)
    else:
        _show(report)
