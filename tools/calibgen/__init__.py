"""Generate the calibration and evaluation data shipped in ``calib_data/``.

    python -m tools.calibgen                 # from the repository root; rewrites calib_data/ in place
    python -m tools.calibgen --out /tmp/data --calib-images 16 --calib-text 8 --eval-images 8 --eval-text 4

or, with the repository root on ``sys.path``::

    from tools.calibgen import generate
    generate(out_dir, n_calib_images, n_calib_text, n_eval_images, n_eval_text)

The generator lives here, outside the ``r1v_quant`` package, so it is not
installed with it: the wheel ships only its output (``r1v_quant._calib_data``).

Everything is drawn here with Pillow and numpy (no fonts, photos or text from
elsewhere), so the data has no third-party licence and is reproducible: every
sample draws from its own ``random.Random`` seeded by ``split:kind:index``, and
running the generator twice gives byte-identical files.

Why synthetic data: quantization scales are fitted to the activations of the
samples, so the samples should look like the model's real work -- charts,
tables, geometry, formulas, documents and natural-ish scenes through the vision
tower, and long ``<think>`` reasoning chains through the LLM.  Because the
generator drew the numbers itself, every answer is computed, never guessed, and
the eval split can score answers as well as compare logits.

Layout, one domain per module:

- ``common``: colours, palettes, names, the font, number formatting, small helpers
- ``reasoning``: the R1-style chain (``r1_chain``) and the phrase tables all builders share
- ``charts/``: bar, line, pie and scatter charts (``chart`` cycles through them)
- ``geometry``, ``tables``, ``formulas``, ``documents`` (paragraphs and receipts), ``scenes``
- ``text_problems/``: math, science and code questions (``text_sample``)
- ``build``: splits, seeding, interleaving, ``generate`` and the command line (``main``)
"""

from __future__ import annotations

from .build import DEFAULT_OUT, generate, generate_split, main

__all__ = ["DEFAULT_OUT", "generate", "generate_split", "main"]
