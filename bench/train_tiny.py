"""Train the tiny checkpoint (a quarter of an hour on 2 cores), so measurements can be taken on a learned model.

The tiny demo checkpoint is random. Its LM head is far sharper than a trained model's (a near-lossless
Q8_0 costs it 0.49 nats of KL), and nothing taught it to treat image positions differently from text
ones. A trained VLM is taught only at the positions whose next token is text: its image positions'
states are shaped only by what later text reads from them through attention. Whether an importance
matrix measured over images helps depends on exactly that, so `bench_imatrix.py --model` on the
checkpoint this writes asks the question on a model shaped the way the real one is.

Training: next-token cross-entropy at every position whose next token is text (prompt and answer;
not the positions before an image slot, whose prediction the image replaces), images through the
vision tower, the projector and the language model, every tensor trained (AdamW, warm-up then cosine
decay, gradients clipped), on a split the calibration generator draws fresh ("train"): no image and
no text question of the shipped calibration or eval sets. Seeded (weights, data, order of samples) and
run with torch's deterministic algorithms: the same arguments at the same thread count give the same
bytes (`tests/test_train_tiny.py`, and two 6-step runs of this script; the 144-step run was made once).

    python bench/train_tiny.py --out /tmp/tiny-trained
    python bench/train_tiny.py --check /tmp/tiny-trained    # eval loss; own image against another's
    python bench/bench_imatrix.py --model /tmp/tiny-trained --work-dir /tmp/bimx-trained ...
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools.calibgen: the repository, not the wheel

from r1v_quant.calibrate.dataset import load_samples  # noqa: E402
from r1v_quant.calibrate.prompts import prepare_samples  # noqa: E402
from r1v_quant.demo import PRESETS, build_demo_checkpoint  # noqa: E402
from r1v_quant.engine.linear import Linears  # noqa: E402
from r1v_quant.engine.llm import decoder_layer, lm_head, rope_for  # noqa: E402
from r1v_quant.engine.prompt import Prepared  # noqa: E402
from r1v_quant.engine.runner import VISION_PREFIX  # noqa: E402
from r1v_quant.engine.vision import embed_patches, project, shuffle_tokens, vision_layer  # noqa: E402
from r1v_quant.read import open_checkpoint  # noqa: E402
from r1v_quant.read.config import ModelConfig  # noqa: E402
from tools.calibgen import generate_split  # noqa: E402

EVAL_DATA = Path(__file__).resolve().parents[1] / "calib_data" / "eval.jsonl"  # held out from training


def forward_loss(cfg: ModelConfig, w: Linears, s: Prepared) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose next token is text; the engine's own
    layer functions, with autograd on."""
    x = w["language_model.model.embed_tokens.weight"][s.input_ids].unsqueeze(0)
    if s.pixels is not None:
        v = embed_patches(cfg, w, s.pixels, VISION_PREFIX)
        for i in range(cfg.vision.num_layers):
            v = vision_layer(cfg, w, v, f"{VISION_PREFIX}encoder.layers.{i}.")
        image = project(cfg, w, shuffle_tokens(cfg, v)).reshape(-1, x.shape[-1])
        x = x.masked_scatter(s.image_mask[None, :, None], image.unsqueeze(0))
    rope = rope_for(cfg, x.shape[1], x.device, x.dtype)
    for i in range(cfg.llm.num_layers):
        x = decoder_layer(cfg, w, x, i, rope)
    scored = s.predicts_text()[:-1]  # the last position has no next token here
    logits = lm_head(cfg, w, x[0, :-1][scored])
    return F.cross_entropy(logits, s.input_ids[1:][scored])


def mean_loss(cfg: ModelConfig, w: Linears, samples: list[Prepared]) -> float:
    with torch.no_grad():
        return sum(float(forward_loss(cfg, w, s)) for s in samples) / len(samples)


@contextmanager
def deterministic():
    """Autograd's CPU kernels with a fixed order of accumulation, for the length of a training run.

    Without it the embedding's gradient (many positions adding into the same vocabulary rows on two
    threads) differed between runs in its last bits, and two runs of the same command ended 0.012 nats
    apart. Restored afterwards: the flag is process-wide, and tests share the process."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def train_steps(cfg: ModelConfig, params: dict[str, torch.Tensor], train: list[Prepared], epochs: int,
                batch: int, lr: float, seed: int, t0: float) -> None:
    """Train ``params`` in place: AdamW, linear warm-up then cosine decay to 0, gradients clipped at 1,
    ``batch`` samples a step in a seeded order. Same arguments and thread count, same bits."""
    w = Linears(params)
    opt = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=0.0)
    steps = epochs * math.ceil(len(train) / batch)
    warm = max(1, steps // 20)

    def rate(k: int) -> float:  # linear warm-up, then cosine decay to 0 at the last step
        if k < warm:
            return (k + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (k - warm) / max(1, steps - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    order = torch.Generator().manual_seed(seed)
    step = 0
    with deterministic():
        for epoch in range(epochs):
            perm = torch.randperm(len(train), generator=order).tolist()
            for first in range(0, len(perm), batch):
                group = [train[i] for i in perm[first:first + batch]]
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for s in group:
                    loss = forward_loss(cfg, w, s) / len(group)
                    loss.backward()
                    total += float(loss.detach())
                torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
                opt.step()
                sched.step()
                step += 1
                if step % 10 == 0 or step == steps:
                    print(f"epoch {epoch + 1} step {step}/{steps}: train loss {total:.3f} "
                          f"({time.time() - t0:.0f} s)", flush=True)


def check(model: Path, max_tiles: int) -> None:
    """Print a checkpoint's eval loss, and the image prompts' loss with their own image against the next
    image prompt's (same tile count): how much it reads its images (``--check``)."""
    ckpt = open_checkpoint(model)
    cfg, w = ckpt.config, Linears({n: ckpt.read_tensor(n).float() for n in ckpt.tensor_names})
    held = prepare_samples(ckpt, load_samples(EVAL_DATA), max_tiles)
    with torch.no_grad():
        losses = {s.id: float(forward_loss(cfg, w, s)) for s in held}
    with_image = [s for s in held if s.pixels is not None]
    own, swapped = [], []
    for k, s in enumerate(with_image):
        other = next((o for o in with_image[k + 1:] + with_image[:k] if o.pixels.shape == s.pixels.shape), None)
        if other is not None:
            own.append(losses[s.id])
            swapped.append(replace(s, pixels=other.pixels))
    print(f"{model}: eval loss {sum(losses.values()) / len(losses):.3f} nats; image prompts "
          f"{sum(own) / len(own):.3f} with their own image, {mean_loss(cfg, w, swapped):.3f} with another's",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="the trained checkpoint's folder (replaced)")
    ap.add_argument("--check", type=Path, metavar="DIR",
                    help="instead of training: DIR's eval loss, and how much it reads its images")
    ap.add_argument("--images", type=int, default=384, help="training samples with an image")
    ap.add_argument("--texts", type=int, default=192, help="training samples without")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4, help="samples per optimiser step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-tiles", type=int, default=2, help="as the reference of bench_imatrix's prompts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.check:
        return check(a.check, a.max_tiles)
    if a.out is None:
        ap.error("--out DIR (or --check DIR) is required")
    torch.manual_seed(a.seed)
    t0 = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo_checkpoint(Path(tmp) / "tiny", PRESETS["tiny"], seed=a.seed)
        ckpt = open_checkpoint(base)
        cfg = ckpt.config
        params = {n: ckpt.read_tensor(n).float().requires_grad_() for n in ckpt.tensor_names}
        train_data = generate_split(Path(tmp) / "data", "train", a.images, a.texts)
        train = prepare_samples(ckpt, load_samples(train_data), a.max_tiles)
        held = prepare_samples(ckpt, load_samples(EVAL_DATA), a.max_tiles)
    w = Linears(params)
    print(f"{len(train)} training samples ({a.images} with an image), {sum(len(s.input_ids) for s in train)} tokens; "
          f"held out: the shipped eval set's {len(held)}", flush=True)
    before = mean_loss(cfg, w, held)
    print(f"eval loss before: {before:.3f} nats (uniform over the vocabulary: {math.log(cfg.llm.vocab_size):.3f})",
          flush=True)

    train_steps(cfg, params, train, a.epochs, a.batch, a.lr, a.seed, t0)
    after = mean_loss(cfg, w, held)
    print(f"eval loss after: {after:.3f} nats", flush=True)
    for n, t in params.items():
        if not torch.isfinite(t).all():
            raise SystemExit(f"{n}: not finite after training; try a lower --lr")
    info = {"trained": {"script": "bench/train_tiny.py", "images": a.images, "texts": a.texts, "epochs": a.epochs,
                        "batch": a.batch, "lr": a.lr, "max_tiles": a.max_tiles, "threads": a.threads,
                        "eval_loss_before": round(before, 4), "eval_loss_after": round(after, 4)}}
    build_demo_checkpoint(a.out, PRESETS["tiny"], seed=a.seed, overwrite=True,
                          weights=lambda n: params[n].detach(), demo_info=info)
    print(f"wrote {a.out} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
