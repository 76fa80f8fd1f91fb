"""The ``README.md`` model card of each artifact folder, rendered from the manifest's own data.

Only what the manifest records goes in (no dates, timings or local paths), so the card is as
reproducible as the manifest, and a card says the same as the manifest by construction.  A card
describes its own folder only: the AWQ card does not change when GGUF files are added, and back.
"""

from __future__ import annotations

from typing import Any

from ...write.sizes import CONTEXTS, GB, GPUS_GB, RUNTIME_OVERHEAD_BYTES, gpu_need, smallest_gpu


# validation figures shown per prompt kind: (key in the report's groups, column title)
CARD_FIGURES = [("positions", "positions"), ("kl_mean", "mean KL"), ("kl_p99", "p99 KL"), ("top1", "top-1"),
                ("top5_miss", "top-5 miss"), ("ppl_ratio", "PPL ratio")]

# How to run each kind: (runtime, what to say, command template).  {dir}, {llm}, {mmproj}, {name}, {tag}
# are filled in; commands are the runtimes' documented usage, not runs made by this tool.
VLLM = ("vLLM", "OpenAI-compatible server (float16 activations, as vLLM serves AWQ):",
        "vllm serve ./{dir} --quantization awq --dtype float16 --trust-remote-code --max-model-len 8192")
RUN_RECIPES: dict[str, list[tuple[str, str, str]]] = {
    "awq": [VLLM],
    "awq-vision-fp16": [
        VLLM,
        ("LMDeploy", "TurboMind backend, 4-bit AWQ weights:",
         "lmdeploy serve api_server ./{dir} --model-format awq --session-len 8192"),
    ],
    "gguf": [
        ("llama.cpp `llama-mtmd-cli`", "one image and a question from the command line:",
         "llama-mtmd-cli -m {llm} --mmproj {mmproj} --image photo.png -p \"Describe this image.\" "
         "--temp 0.6 --top-p 0.95"),
        ("llama.cpp `llama-server`", "OpenAI-compatible server with image input:",
         "llama-server -m {llm} --mmproj {mmproj} -c 8192 --port 8080"),
        ("Ollama", "imports the language model file; Ollama has no documented way to attach this llama.cpp "
                   "InternVL mmproj, so through Ollama it answers text prompts only (use llama.cpp for images):",
         "printf 'FROM ./{llm}\\nPARAMETER temperature 0.6\\nPARAMETER top_p 0.95\\n' > Modelfile\n"
         "ollama create {tag} -f Modelfile && ollama run {tag}"),
    ],
}

WHAT: dict[str, str] = {
    "awq": "4-bit AWQ (zero point, group {group_size}, GEMM packing) of every linear of the language model "
           "and of the vision tower, calibrated on image and text prompts; projector, embeddings, norms and "
           "`lm_head` in float16. Loads in vLLM with `quantization=\"awq\"` (vLLM builds the vision tower with "
           "the checkpoint's quantization config). LMDeploy loads its vision tower through its own float "
           "path: for LMDeploy, use a release built with `--awq-vision-fp16`.",
    "awq-vision-fp16": "4-bit AWQ (zero point, group {group_size}, GEMM packing) of every decoder linear of the "
                       "language model, calibrated on image and text prompts; vision tower, projector, "
                       "embeddings, norms and `lm_head` in float16. Loads in vLLM and LMDeploy with "
                       "`quantization=\"awq\"`.",
    "gguf": "GGUF files for llama.cpp: the Qwen2 language model in each type below and the InternViT vision "
            "tower + `mlp1` projector as one shared mmproj file (`--mmproj`), in the bytes llama.cpp's own "
            "`convert_hf_to_gguf.py` + `llama-quantize` write.",
}


def _size(n: float) -> str:
    return f"{n / GB:,.2f} GB" if n >= GB else f"{n / 1e6:,.1f} MB"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _status(entry: dict[str, Any]) -> str:
    return "passed" if entry["status"] == "passed" else "**FAILED** (kept for inspection)"


def validation_table(v: dict[str, Any]) -> list[str]:
    rows = ["| prompts | " + " | ".join(t for _, t in CARD_FIGURES) + " | gate |",
            "|---|" + "---|" * (len(CARD_FIGURES) + 1)]
    for g, figures in v["groups"].items():
        failed = [c["metric"] for c in v["checks"] if c["group"] == g and not c["ok"]]
        rows.append(f"| {g} | " + " | ".join(_fmt(figures.get(k, "-")) for k, _ in CARD_FIGURES)
                    + f" | {'**fail**: ' + ', '.join(failed) if failed else 'ok'} |")
    limits = {}
    for c in v["checks"]:
        limits.setdefault((c["metric"], c["op"]), c["limit"])
    return rows + ["", "Gates, per prompt kind: " + ", ".join(
        f"{dict(CARD_FIGURES).get(m, m)} {op} {_fmt(lim)}" for (m, op), lim in limits.items()) + "."]


def memory_table(weights_bytes: int, kv_per_token: int, kv_types: tuple[str, ...]) -> list[str]:
    """GPU need per context and KV cache type (the sizes ``inspect`` uses), and the smallest GPU it fits."""
    gpus = "/".join(f"{g:g}" for g in GPUS_GB)
    rows = [f"| context (tokens) | KV cache | weights | KV | runtime overhead | total | smallest GPU of {gpus} GB |",
            "|---|---|---|---|---|---|---|"]
    for ctx in CONTEXTS:
        for kv_type in kv_types:
            kv, total = gpu_need(weights_bytes, kv_per_token, ctx, kv_type)
            gpu = smallest_gpu(total)
            rows.append(f"| {ctx} | {kv_type} | {_size(weights_bytes)} | {_size(kv)} | {_size(RUNTIME_OVERHEAD_BYTES)} | "
                        f"{_size(total)} | {f'{gpu:g} GB' if gpu else 'none'} |")
    return rows


def render(common: dict[str, Any], entries: list[tuple[str, dict[str, Any]]],
           files: dict[str, dict[str, Any]]) -> str:
    """``common``: the manifest's source, data, reference, options, tool; ``entries``: (id, artifact entry)
    of this folder; ``files``: the folder's files (relative to dist) other than this card."""
    kind = entries[0][1]["kind"]
    d = entries[0][1]["dir"]
    src, opt, data, ref = common["source"], common["options"], common["data"], common["reference"]
    failed = [i for i, e in entries if e["status"] != "passed"]
    lines = ["---", "tags:", "- r1v-quant", f"- {kind}", "- vision-language", "pipeline_tag: image-text-to-text",
             "---", "", f"# {d}" + (" (validation FAILED)" if failed else ""), ""]
    if failed:
        lines += [f"> **Do not ship:** {', '.join(failed)} failed the validation gate below; kept for inspection.", ""]
    what = "awq-vision-fp16" if kind == "awq" and opt.get("awq_vision_fp16") else kind
    lines += [WHAT[what].format(**opt), "",
              f"Source: `{src['name']}` ({src['architecture']}, `{src['model_type']}`, ps_version {src['ps_version']}),"
              f" fingerprint `{src['fingerprint']}`.", ""]

    lines += ["## How it was made", "", f"- tool: {common['tool']}"]
    if kind == "awq":
        cal = data.get("calibration", {})
        b = entries[0][1]["build"]
        lines += [f"- calibration data: `{cal.get('file')}` sha256 `{cal.get('sha256')}`; {b['calibration'].get('samples')}"
                  f" samples ({b['calibration'].get('image_samples')} with images), {b['calibration'].get('tokens')} "
                  f"tokens, {opt['awq_max_tiles']} tile(s) per image, sequence length {opt['awq_seq_len']}",
                  f"- group size {opt['group_size']}, next layer fed from the {opt['propagate']} layer, "
                  f"compute dtype {opt['dtype']}",
                  f"- largest activation seen: {_fmt(b['max_abs_activation'])}"
                  + (f"; float16 warnings: {'; '.join(b['fp16_warnings'])}" if b["fp16_warnings"] else
                     " (no float16 overflow risk found)")]
    else:
        lines += [f"- mmproj type {opt['mmproj_type'].upper()}; position rows "
                  + ("rolled for llama.cpp 0c1e57098's InternVL graph (`--roll-pos-embd`; wrong for a runtime that "
                     "puts the class token first)" if opt["roll_pos_embd"] else
                     "in checkpoint order, as llama.cpp's converter writes them (llama.cpp 0c1e57098 applies them "
                     "off by one; rebuild with `--roll-pos-embd` for that build)")]
        matrix = next((f.split("/")[-1] for f in files if f.endswith(".imatrix.gguf")), None)
        if matrix:
            cal = data.get("calibration", {})
            how = (f"measured by `r1v-quant imatrix` on `{cal.get('file')}` (sha256 `{cal.get('sha256')}`), image "
                   "tokens through the vision tower and the language model" if opt.get("imatrix") == "auto"
                   else f"from `{opt.get('imatrix')}`")
            lines.append(f"- rounding weighted by the importance matrix `{matrix}`, {how}; llama.cpp's format "
                         f"(`llama-quantize --imatrix {matrix}` reads it)")
        for i, e in entries:
            fb = e["build"].get("fallbacks", [])
            lines.append(f"- `{e['llm'].split('/')[-1]}` ({e['type'].upper()}): "
                         + ", ".join(f"{k} x{v}" for k, v in e["build"]["ggml_types"].items())
                         + (f"; {len(fb)} tensor(s) fell back to another type for their row length" if fb else ""))
    ev = data["eval"]
    lines += [f"- validated against the source model's logits on `{ev['file']}` ({ev['samples']} samples, "
              f"{ev['image_samples']} with images; sha256 `{ev['sha256']}`), {ref['positions']} scored positions, "
              f"top-{ref['top_k']}, runtime `{opt['runtime']}`", ""]

    lines += ["## Validation", ""]
    for i, e in entries:
        v = e["validation"]
        title = f"`{i}`" + (f" (`{e['llm'].split('/')[-1]}` with `{e['mmproj'].split('/')[-1]}`)"
                            if kind == "gguf" else "")
        lines += [f"{title}: {_status(e)}", "", *validation_table(v), ""]
    lines += ["KL is the mean KL divergence from the source model's next-token distribution; top-1 the share of "
              "positions where both pick the same token; ppl ratio the perplexity of the reference answers, "
              "artifact over source.", ""]

    lines += ["## How to run it", ""]
    for i, e in entries:
        fill = {"dir": d, "name": common["name"], "tag": f"{common['name'].lower()}-{(e.get('type') or kind)}",
                "llm": f"{d}/{e['llm'].split('/')[-1]}" if e.get("llm") else "",
                "mmproj": f"{d}/{e['mmproj'].split('/')[-1]}" if e.get("mmproj") else ""}
        if kind == "gguf":
            lines += [f"### {e['type'].upper()}", ""]
        for runtime, say, cmd in RUN_RECIPES[what]:
            lines += [f"{runtime}: {say}", "", "```bash", cmd.format(**fill), "```", ""]
        if kind == "awq":
            break  # one folder, one set of commands

    lines += ["## Memory", "", "Weights + KV cache (16-bit; for llama.cpp also `-ctk q8_0 -ctv q8_0`) + an "
              "estimated runtime overhead (GPU memory, or RAM when llama.cpp runs on the CPU), as "
              "`r1v-quant inspect` computes it:", ""]
    for i, e in entries:
        weights = sum(files[f]["bytes"] for f in e["weights"])
        if kind == "gguf":
            lines += [f"{e['type'].upper()}:", ""]
        kv_types = ("f16", "q8_0") if kind == "gguf" else ("f16",)
        lines += [*memory_table(weights, src["kv_cache_bytes_per_token"], kv_types), ""]

    lines += ["## Files", "", "| file | size | sha256 |", "|---|---|---|"]
    for f in sorted(files):
        lines.append(f"| `{f.split('/', 1)[1]}` | {files[f]['bytes']:,} | `{files[f]['sha256']}` |")
    lines += ["", "Check them with `r1v-quant verify` on the release folder (`manifest.json`).", ""]
    return "\n".join(lines)
