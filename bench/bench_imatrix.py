"""Benchmark, side by side in one run: what an importance matrix buys GGUF, measured in llama.cpp.

Run:  python bench/bench_imatrix.py --work-dir DIR [--calib 32x512] [--draws 1] [--eval 16 16]
      [--held-out 0] [--threads 2] [--logit-scale 1] [--no-controls] [--model DIR] [--device cpu]

On the tiny checkpoint, against the BF16 reference on held-out prompts, image and text prompts apart
(mean KL, top-1 agreement), in llama.cpp's runtime (``validate --runtime llama.cpp``), for Q4_K_M,
IQ4_XS and Q3_K_M, each quantized

* without a matrix (what ``llama-quantize`` does by default),
* with a text-only matrix: ``r1v-quant imatrix --text-only`` over the text samples of the same
  calibration samples, which is all of them that ``llama-imatrix`` can measure,
* with the multimodal matrix: those calibration samples, images through the vision tower into the
  language model and text as text (the same text tokens as the text-only matrix, plus the images),
  the samples with and without images weighing alike (``--balance prompts``, the default),
* and the same multimodal samples summed every token alike (``--balance tokens``, as
  ``llama-imatrix`` sums), where the image positions dominate.

Which way a few percent of KL goes between two matrices depends on the luck of the rounding as much
as on the matrix: ``--draws N`` measures every matrix kind from N disjoint windows of the calibration
set (samples 0..S-1, S..2S-1, ...) and ``--held-out M`` adds the calibration set's last M samples,
which no window reaches, to the shipped eval prompts.  The verdict table gives, per type, each
matrix's KL minus the text-only matrix's of the same window: the mean over the windows, its standard
error over the prompts (paired, prompt by prompt) and in how many windows it is lower.

Two controls tell what the matrices' figures are made of.  "flat" weighs every column alike: the
same matrix whatever the window, so it keeps only what handing llama.cpp's encoders any matrix
changes (their importance-weighted scale searches).  "text-only, columns shuffled" is each window's
text-only matrix with its columns permuted (seeded, per tensor): the same spread of weights, but on
the wrong columns.  Where a matrix does no better than these, what it measured about the columns is
not what its KL shows.

The mmproj is the release default (Q8_0, position table rolled for llama.cpp's graph) in every row,
so what differs is the language model file.  ``DIR`` may be shared with ``bench_vision.py`` (same
checkpoint).  Q8_0 without a matrix is measured too, as the floor: how far near-lossless 8 bits
already move this model.

The tiny model's random LM head is far sharper than a trained one's (the reference line printed
gives its top-1 probability and the logits' size), so a small change of the hidden state costs it
whole nats of KL.  ``--logit-scale 0.25`` builds the checkpoint with the LM head divided by 4: a
power of two, so every quantized file is the same but for its head, exactly divided, top-1 agreement
moves only where near-ties flip, and KL is that of the same models' logits at temperature 4, a
gentler regime.

``--model DIR`` measures the same rows on another checkpoint, the real 38B, instead of the tiny one
(its BF16 reference made once in the work folder, with ``--device`` for it, the matrices and the
encoders; llama.cpp's runtime runs as its build does).  On a random model the verdict is what these
weights do with a few percent of rounding error; only the trained model's says what users get.
``bench/train_tiny.py --out DIR`` trains the tiny checkpoint for a quarter of an hour on a CPU, so
that ``--model DIR`` can be asked the question on a learned model of the same shape.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import tiny_with_reference  # noqa: E402

TYPES = ("q4_k_m", "iq4_xs", "q3_k_m")
FLOOR = "q8_0"  # measured without a matrix only: how far near-lossless 8 bits already moves this model
# name -> (text only, balance); "multimodal" is what `imatrix` and `gguf --imatrix auto` make
MATRICES = {"text-only": (True, "prompts"), "multimodal, tokens alike": (False, "tokens"),
            "multimodal": (False, "prompts")}
GROUPS = ("image", "text")
FLAT, SHUFFLED = "flat", "text-only, columns shuffled"  # controls (see the module's docstring)
CONTROLS = (FLAT, SHUFFLED)


def control(m: object, kind: str, seed: int) -> object:
    """The control ``kind`` made from the text-only matrix ``m``: ``FLAT`` (every importance 1) or
    ``SHUFFLED`` (each tensor's sums with their columns permuted, numpy seeded by ``seed``)."""
    import copy

    import numpy as np

    out = copy.copy(m)
    rng = np.random.default_rng(seed)
    if kind == FLAT:
        out.sums = {n: np.ones_like(s) for n, s in m.sums.items()}
        out.counts = dict.fromkeys(m.sums, 1.0)
    else:
        out.sums = {n: m.sums[n][rng.permutation(len(m.sums[n]))] for n in sorted(m.sums)}
    return out


def slug(kind: str) -> str:
    """A matrix's name as a file or folder name: "multimodal, tokens alike" -> "multimodal-tokens-alike"."""
    return kind.replace(", ", "-").replace(" ", "-")


def paired(runs: list[tuple[list[dict], list[dict]]], group: str) -> tuple[float, float]:
    """Mean KL of ``a`` minus ``b`` over one prompt group, averaged over the (a, b) pairs (one per
    window), and its standard error with the prompts as the units: each prompt's difference is
    averaged over the windows first, then weighed by its scored positions as the group mean is."""
    per_window = [[(x["positions"], x["kl_mean"] - y["kl_mean"]) for x, y in zip(a, b) if x["group"] == group]
                  for a, b in runs]
    n = [w for w, _ in per_window[0]]
    d = [sum(win[i][1] for win in per_window) / len(per_window) for i in range(len(n))]
    total = sum(n)
    mean = sum(w * x for w, x in zip(n, d)) / total
    var = sum((w * (x - mean)) ** 2 for w, x in zip(n, d)) / total**2 * len(n) / max(1, len(n) - 1)
    return mean, math.sqrt(var)


def confidence(ref_path: Path) -> str:
    """How sure the BF16 model is of its next token, over the scored positions: the sharper, the more
    a small change in the hidden state costs in KL (a random model's LM head is sharper than a trained one's)."""
    from r1v_quant.validate.reference_file import load_reference

    ref = load_reference(ref_path).tensors
    top1 = ref["topk.logprobs"][:, 0].exp()
    return (f"reference: top-1 probability mean {top1.mean():.3f}, median {top1.median():.3f}; "
            f"log-sum-exp of the logits mean {ref['pos.lse'].mean():.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--calib", default="32x512", help="imatrix calibration, SAMPLESxSEQLEN")
    ap.add_argument("--draws", type=int, default=1,
                    help="disjoint calibration windows, a matrix of each kind from each (0: the rows without one)")
    ap.add_argument("--eval", type=int, nargs=2, default=[16, 16], metavar=("IMAGES", "TEXTS"))
    ap.add_argument("--held-out", type=int, default=0, help="the calibration set's last N samples as more eval prompts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--logit-scale", type=float, default=1.0,
                    help="build the tiny checkpoint with its LM head times this (0.25: logits at temperature 4)")
    ap.add_argument("--no-controls", action="store_true", help="leave out the flat and shuffled controls")
    ap.add_argument("--model", type=Path, default=None,
                    help="measure this checkpoint (the real 38B) instead of the tiny one built in the work folder")
    ap.add_argument("--device", default="cpu", help="for the reference, the matrices and the encoders (cuda: a GPU)")
    a = ap.parse_args()
    if a.model is not None and a.logit_scale != 1.0:
        sys.exit("--logit-scale builds a scaled tiny checkpoint: not with --model")
    controls = () if a.no_controls else CONTROLS
    from r1v_quant.calibrate.dataset import shipped_rows
    from r1v_quant.pipelines.gguf import export_gguf
    from r1v_quant.pipelines.imatrix import ImatrixOptions, compute_imatrix
    from r1v_quant.pipelines.validate import ValidateOptions, validate_artifact
    from r1v_quant.read import open_checkpoint
    from r1v_quant.read.imatrix_file import load_imatrix
    from r1v_quant.validate.report import Thresholds

    samples, seq_len = (int(x) for x in a.calib.split("x"))
    calib = shipped_rows("calib")
    if a.draws * samples + a.held_out > len(calib):
        sys.exit(f"{a.draws} windows of {samples} and {a.held_out} held out: the calibration set has {len(calib)}")
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="r1v-bench-imatrix-"))
    work.mkdir(parents=True, exist_ok=True)
    model, data, ref = tiny_with_reference(work, *a.eval, held_out=a.held_out, logit_scale=a.logit_scale,
                                           model=a.model, device=a.device)
    ckpt = open_checkpoint(model)
    loose = Thresholds(max_kl=1e9, min_top1=0.0, max_ppl_ratio=1e9)  # figures, not a gate
    gguf = work / "gguf-imatrix"
    mmproj = gguf / f"mmproj-{model.name}-Q8_0.gguf"
    if not mmproj.is_file():
        export_gguf(ckpt, gguf, "f16", "q8_0", name=model.name, llm=False, roll_position_embd=True, overwrite=True,
                    device=a.device)

    def measure(t: str, matrix: object, folder: Path) -> tuple[dict, list[dict]]:
        """Figures and per-prompt KL of type ``t`` with ``matrix``; kept in ``folder`` and reused, like the
        matrices (delete the work folder to measure again)."""
        done = folder / f"{t}.{ref.stem}.json"
        if done.is_file():
            kept = json.loads(done.read_text())
            return kept["figures"], kept["per_sample"]
        llm, _ = export_gguf(ckpt, folder, t, mmproj=False, overwrite=True, imatrix=matrix, device=a.device,
                             threads=a.threads)
        r = validate_artifact(llm, ref, ValidateOptions(data=data, thresholds=loose, threads=a.threads,
                                                        runtime="llama.cpp", mmproj=mmproj))
        figures = {f"{k}_{g}": round(v[k], 4) for g, v in r.groups.items() for k in ("kl_mean", "top1")}
        done.write_text(json.dumps({"figures": figures, "per_sample": r.info["per_sample"]}))
        llm.unlink()
        return figures, r.info["per_sample"]

    rows, per_sample = [], {}
    for t in (FLOOR, *TYPES):
        figures, per_sample[t, "none", 0] = measure(t, None, gguf / "none")
        rows.append({"type": t.upper(), "window": "-", "imatrix": "none", **figures})
        print(rows[-1], flush=True)
    counts = {}
    windows = [f"{d * samples}-{(d + 1) * samples - 1}" for d in range(a.draws)]
    for d, label in enumerate(windows):
        span = calib[d * samples:(d + 1) * samples]
        window = work / f"calib-{label}.jsonl"
        window.write_text("".join(json.dumps(r) + "\n" for r in span))
        texts = sum(not r["images"] for r in span)
        for kind, (text_only, balance) in MATRICES.items():
            path = work / f"{model.name}.{slug(kind)}-w{d}-{samples}x{seq_len}.imatrix.gguf"
            if not path.is_file():
                compute_imatrix(ckpt, path, ImatrixOptions(data=window, samples=texts if text_only else samples,
                                                           seq_len=seq_len, max_tiles=1, text_only=text_only,
                                                           balance=balance, device=a.device), overwrite=True)
            m = load_imatrix(path)
            counts[f"{kind} w{d}"] = (m.chunk_count, len(m.sums))
            for t in TYPES:
                figures, per_sample[t, kind, d] = measure(t, m, gguf / f"{slug(kind)}-w{d}-{samples}x{seq_len}")
                rows.append({"type": t.upper(), "window": label, "imatrix": kind, **figures})
                print(rows[-1], flush=True)
            if kind != "text-only":
                continue
            for ctl in [c for c in controls if d == 0 or c != FLAT]:  # flat is the same matrix in every window
                folder = gguf / (slug(ctl) if ctl == FLAT else f"{slug(ctl)}-w{d}-{samples}x{seq_len}")
                for t in TYPES:
                    figures, per_sample[t, ctl, d] = measure(t, control(m, ctl, seed=d), folder)
                    rows.append({"type": t.upper(), "window": "-" if ctl == FLAT else label, "imatrix": ctl,
                                 **figures})
                    print(rows[-1], flush=True)

    print(f"\n{confidence(ref)}")
    caption = (f"per calibration window ({' / '.join(windows)}; no matrix: one figure)" if windows
               else "without a matrix")
    print(f"\nKL and top-1 {caption}\n\n"
          "| type | matrix | KL image | KL text | top-1 image | top-1 text |\n|---|---|---|---|---|---|")
    for t in (FLOOR, *TYPES):
        for kind in ("none", *MATRICES, *controls) if t != FLOOR and a.draws else ("none",):
            mine = [r for r in rows if r["type"] == t.upper() and r["imatrix"] == kind]
            print(f"| {t.upper()} | {kind} | " + " | ".join(" / ".join(f"{r[c]:.{4 if c.startswith('kl') else 3}f}"
                                                                         for r in mine)
                                                            for c in ("kl_mean_image", "kl_mean_text", "top1_image",
                                                                      "top1_text")) + " |")

    verdict = []
    if not a.draws:
        print("\nno calibration windows (--draws 0): no verdict")
    else:
        print(f"\nKL minus the text-only matrix's, mean over {a.draws} window(s) +- standard error over the prompts; "
              "windows where lower:\n\n| type | matrix | image | lower | text | lower |\n|---|---|---|---|---|---|")
        for t in TYPES:
            for kind in ("none", *(k for k in MATRICES if k != "text-only"), *controls):
                runs = [(per_sample[t, kind, 0 if kind in ("none", FLAT) else d], per_sample[t, "text-only", d])
                        for d in range(a.draws)]
                row = {"type": t.upper(), "imatrix": kind}
                for g in GROUPS:
                    mean, se = paired(runs, g)
                    lower = sum(paired([r], g)[0] < 0 for r in runs)
                    row |= {f"delta_{g}": round(mean, 4), f"se_{g}": round(se, 4), f"lower_{g}": lower}
                verdict.append(row)
                print(f"| {t.upper()} | {kind} | {row['delta_image']:+.4f} +- {row['se_image']:.4f} | "
                      f"{row['lower_image']}/{a.draws} | {row['delta_text']:+.4f} +- {row['se_text']:.4f} | "
                      f"{row['lower_text']}/{a.draws} |")
    out = work / "imatrix-results.json"
    out.write_text(json.dumps({"rows": rows, "verdict": verdict, "matrices": counts,
                               "per_sample": {f"{t} {k} w{d}": v for (t, k, d), v in per_sample.items()}}, indent=1))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
