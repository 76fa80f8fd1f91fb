"""Benchmark, side by side in one run: what each importance matrix does to each layer, position by position.

Run:  python bench/bench_imatrix_layers.py --work-dir DIR [--windows 0 1 2] [--eval 32 16] [--held-out 48]
      [--logit-scale 1] [--per-tensor] [--model DIR]

``DIR`` is a ``bench_imatrix.py`` work folder (run that first, with the same ``--eval``, ``--held-out``
and ``--logit-scale``, or ``--model``): its checkpoint, eval prompts and the matrices of ``--windows``.  For
each type (Q4_K_M, IQ4_XS, Q3_K_M) and each importance (none, bench_imatrix's two controls, its three
matrices), every weight matrix of the language model's layers is encoded as the type's mix encodes it
(row-length fallbacks included) and decoded again, and its output error is measured on the eval
prompts' own inputs to it (the BF16 model's): ``tr(dW C dW^T) / tr(W C W^T)`` with ``C`` the sum of
``x x^T`` over a group of positions: on image prompts the image positions, the answer (the scored
positions) and the rest of the text; on text prompts the answer and the rest.  The first table gives
the mean over the weight matrices (x 1000), then over the windows; the second, each importance's
change against the text-only matrix of the same window and in how many windows it is lower.
``output.weight`` (Q6_K in every mix, so one table for all three types) is measured apart, on the
positions the KL scores (those whose next token is text), image and text prompts apart.

This is what an importance matrix optimises (each column's mean square stands in for ``C``), one layer
at a time; ``bench_imatrix.py``'s KL is what comes out of the whole model.  Where the two disagree,
the matrix did its job layer by layer and the difference comes from how errors travel through the
model, not from what the matrix measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import tiny_name, tiny_with_reference  # noqa: E402
from bench_imatrix import CONTROLS, MATRICES, TYPES, control, slug  # noqa: E402

GROUPS = ("image: image positions", "image: other text", "image: answer", "text: other", "text: answer")
HEAD_GROUPS = ("image prompts", "text prompts")  # the LM head, at the scored positions


def position_groups(prepared: object, tokens: int) -> dict[str, object]:
    """Masks over a prompt's first ``tokens`` positions, by group (see ``GROUPS``)."""
    image, answer = prepared.image_mask[:tokens], prepared.answer_mask[:tokens]
    if prepared.has_image:
        return {GROUPS[0]: image, GROUPS[1]: ~image & ~answer, GROUPS[2]: answer}
    return {GROUPS[3]: ~answer, GROUPS[4]: answer}


def energy(w: object, c: object) -> float:
    """tr(w c w^T): the summed squared output of ``w`` over the inputs whose second moments are ``c``."""
    import torch

    return float(torch.einsum("ij,jk,ik->", w, c, w))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, required=True, help="a bench_imatrix.py work folder")
    ap.add_argument("--windows", type=int, nargs="+", default=[0], help="the calibration windows whose matrices to use")
    ap.add_argument("--calib", default="32x512", help="as given to bench_imatrix.py")
    ap.add_argument("--eval", type=int, nargs=2, default=[16, 16], metavar=("IMAGES", "TEXTS"))
    ap.add_argument("--held-out", type=int, default=0)
    ap.add_argument("--logit-scale", type=float, default=1.0)
    ap.add_argument("--per-tensor", action="store_true", help="also each matrix's figures")
    ap.add_argument("--model", type=Path, default=None, help="as given to bench_imatrix.py (another checkpoint)")
    a = ap.parse_args()
    import numpy as np
    import torch
    from gguf.quants import dequantize

    from r1v_quant.calibrate.dataset import load_samples
    from r1v_quant.calibrate.imatrix import LM_HEAD, gguf_names_of
    from r1v_quant.calibrate.prompts import prepare_samples
    from r1v_quant.engine import Engine, EngineOptions
    from r1v_quant.engine.llm import head_input
    from r1v_quant.formats.gguf_mix import llm_tensor_type
    from r1v_quant.quantize.ggml_encoders import quantize, row_nbytes
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.imatrix_file import load_imatrix
    from r1v_quant.read.layout import LLM
    from r1v_quant.validate.reference_file import scored_positions

    if a.model is not None and a.logit_scale != 1.0:
        sys.exit("--logit-scale names a scaled tiny checkpoint: not with --model")
    model_name = tiny_name(a.logit_scale)
    if a.model is None and not (a.work_dir / model_name / "config.json").is_file():  # the reference would build it
        sys.exit(f"{a.work_dir}: no {model_name} checkpoint; run bench_imatrix.py with this work folder first")
    model, data, _ = tiny_with_reference(a.work_dir, *a.eval, held_out=a.held_out, logit_scale=a.logit_scale,
                                         model=a.model)
    ckpt = open_checkpoint(model)
    by_window = []  # per window: importance kind -> matrix (None: no matrix)
    for d in a.windows:
        found = {}
        for kind in MATRICES:
            path = a.work_dir / f"{model.name}.{slug(kind)}-w{d}-{a.calib}.imatrix.gguf"
            if not path.is_file():
                sys.exit(f"{path}: not found; run bench_imatrix.py with this work folder first")
            found[kind] = load_imatrix(path)
        by_window.append({"none": None, **{c: control(found["text-only"], c, seed=d) for c in CONTROLS}, **found})

    prepared = prepare_samples(ckpt, load_samples(data), max_tiles=2)  # as the reference
    second_moments: dict[str, dict[str, torch.Tensor]] = {}  # linear -> group -> sum of x x^T
    calls: dict[str, int] = {}

    def hook(linear: str, x: torch.Tensor) -> None:
        if gguf_names_of(linear)[0] != "llm":
            return
        n = calls.get(linear, 0)
        calls[linear] = n + 1
        flat = x.reshape(-1, x.shape[-1]).double()
        for group, mask in position_groups(prepared[n % len(prepared)], flat.shape[0]).items():
            if mask.any():
                by_group = second_moments.setdefault(linear, {})
                by_group[group] = by_group.get(group, 0) + flat[mask].T @ flat[mask]

    engine = Engine(ckpt, EngineOptions(), on_linear_input=hook)
    head_moments: dict[str, torch.Tensor] = {}  # group -> sum of x x^T of the LM head's input, scored positions
    with torch.no_grad():
        hidden = engine.walk(LLM, engine.embed(prepared))
        head_unit = engine.load("llm.head")
        for x, p in zip(hidden, prepared):
            flat = head_input(ckpt.config, head_unit, x).reshape(-1, x.shape[-1])[scored_positions(p)]
            group = HEAD_GROUPS[0] if p.has_image else HEAD_GROUPS[1]
            head_moments[group] = head_moments.get(group, 0) + flat.double().T @ flat.double()
        del hidden
    linears = sorted(second_moments, key=lambda n: gguf_names_of(n)[1][0])
    n_layers, n_gqa = ckpt.config.llm.num_layers, ckpt.config.llm.num_heads // ckpt.config.llm.num_kv_heads
    weights = {linear: ckpt.read_tensor(linear + ".weight").float() for linear in linears}
    output_energy = {linear: {g: energy(weights[linear].double(), c) for g, c in second_moments[linear].items()}
                     for linear in linears}  # the denominators: the same whatever the type and importance

    def type_of(t: str, name: str, w: torch.Tensor, m: object) -> object:
        """The GGML type type ``t``'s mix gives the GGUF tensor ``name`` (row-length fallbacks included)."""
        layer = int(name.split(".")[1]) if name.startswith("blk.") else None
        return llm_tensor_type(t, name, tuple(w.shape), layer, n_layers, n_gqa=n_gqa, has_imatrix=m is not None)

    def rounding(qtype: object, name: str, w: torch.Tensor, m: object) -> torch.Tensor:
        """``w`` encoded as ``qtype`` with importance ``m`` (None: without) and decoded, minus ``w`` (float64)."""
        importance = None if m is None else torch.from_numpy(m.importance(name))
        code = quantize(w, qtype.name.lower(), name, importance).numpy()
        rows_bytes = code.reshape(w.shape[0], row_nbytes(qtype.name.lower(), w.shape[1]))
        return torch.from_numpy(dequantize(rows_bytes, qtype).astype(np.float64)) - w.double()

    def mean_error(t: str, m: object) -> dict[str, float]:
        """Relative output error x 1000 by group, mean over the weight matrices, type ``t``, importance ``m``."""
        errors: dict[str, list[float]] = {g: [] for g in GROUPS}
        for linear in linears:
            name, w = gguf_names_of(linear)[1][0], weights[linear]
            qtype = type_of(t, name, w, m)
            dw = rounding(qtype, name, w, m)
            for g, c in second_moments[linear].items():
                errors[g].append(1000 * energy(dw, c) / output_energy[linear][g])
                if a.per_tensor:
                    print(f"  {t} {name} ({qtype.name}) {g}: {errors[g][-1]:.3f}")
        return {g: sum(v) / len(v) for g, v in errors.items()}

    print(f"{len(prepared)} eval prompts, {len(linears)} weight matrices, importance from window(s) "
          f"{', '.join(map(str, a.windows))}\n")
    for t in TYPES:
        figures = [{kind: mean_error(t, m) for kind, m in window.items()} for window in by_window]
        print(f"{t.upper()}: relative output error x 1000, mean over the weight matrices, then over the windows\n\n"
              "| importance | " + " | ".join(GROUPS) + " |\n|---|" + "---|" * len(GROUPS))
        for kind in figures[0]:
            print(f"| {kind} | " + " | ".join(f"{sum(f[kind][g] for f in figures) / len(figures):.3f}"
                                              for g in GROUPS) + " |")
        print(f"\n{t.upper()}: against the text-only matrix of the same window, mean change; windows where lower\n\n"
              "| importance | " + " | ".join(GROUPS) + " |\n|---|" + "---|" * len(GROUPS))
        for kind in (k for k in figures[0] if k != "text-only"):
            change = {g: [f[kind][g] / f["text-only"][g] - 1 for f in figures] for g in GROUPS}
            print(f"| {kind} | " + " | ".join(f"{100 * sum(v) / len(v):+.1f}% ({sum(x < 0 for x in v)}/{len(v)})"
                                              for v in change.values()) + " |")
        print()

    head = ckpt.read_tensor(LM_HEAD + ".weight").float()
    head_energy = {g: energy(head.double(), c) for g, c in head_moments.items()}
    head_types = {type_of(t, "output.weight", head, m) for t in TYPES for m in (None, by_window[0]["text-only"])}
    assert len(head_types) == 1, f"output.weight's type differs between the mixes: {head_types}; one table won't do"
    head_type = head_types.pop()

    def head_error(m: object) -> dict[str, float]:
        """The LM head's relative output error x 1000 at the scored positions, by prompt group."""
        dw = rounding(head_type, "output.weight", head, m)
        return {g: 1000 * energy(dw, c) / head_energy[g] for g, c in head_moments.items()}

    figures = [{kind: head_error(m) for kind, m in window.items()} for window in by_window]
    print(f"output.weight ({head_type.name} in every mix): relative output error x 1000 at the scored positions, "
          "mean over the windows; change against the text-only matrix of the same window, windows where lower\n\n"
          "| importance | " + " | ".join(HEAD_GROUPS) + " | " + " | ".join(f"{g}, vs text-only" for g in HEAD_GROUPS)
          + " |\n|---|" + "---|" * 2 * len(HEAD_GROUPS))
    for kind in figures[0]:
        change = {g: [f[kind][g] / f["text-only"][g] - 1 for f in figures] for g in HEAD_GROUPS}
        print(f"| {kind} | " + " | ".join(f"{sum(f[kind][g] for f in figures) / len(figures):.3f}" for g in HEAD_GROUPS)
              + " | " + " | ".join(f"{100 * sum(v) / len(v):+.1f}% ({sum(x < 0 for x in v)}/{len(v)})"
                                   for v in change.values()) + " |")


if __name__ == "__main__":
    main()
