"""``release``: every requested artifact built, validated and described from one reference, for CI.

Layout of ``dist/`` (names from ``--name``, default the checkpoint folder's name)::

    dist/
      manifest.json              written last: its presence means the release finished
      eval/eval.jsonl, images/   the eval data the reference was made from (paths relative, so its
                                 hash does not depend on where the tool or the data is installed)
      reference.r1vref           the source model's logits on that data, computed once
      <name>-AWQ/                AWQ folder for vLLM / LMDeploy, with its README.md model card
      <name>-GGUF/               one <name>-<TYPE>.gguf per --gguf type, one shared mmproj, README.md
      .release/                  while running only: state.json and staging/ (removed at the end)

Each artifact is built, validated and given its card under ``.release/staging/``, and renamed into
``dist/`` only then, so a killed run never leaves an artifact under its final name that is not whole;
the manifest appears last, atomically.  A failed validation gate still publishes the artifact (for
inspection), marked ``"status": "failed"`` in the manifest and its card; the command exits 1.

Resume: ``.release/state.json`` holds the run's key (tool version, source fingerprint, data hashes,
every option that changes bytes) and one record per finished step (eval data, reference, each build,
each validation, each publish).  A step is recorded only after its outputs are complete, hashed and
renamed into place, so ``--resume`` skips exactly the recorded steps and redoes the one that was cut
off (the AWQ build continues from its own per-layer work folder).  Another key refuses to resume.

Reproducibility: the writers are deterministic; the manifest and cards hold no timestamps, timings,
host names or absolute paths (data files are named, then hashed), JSON is written with sorted keys,
and validation figures are rounded to 6 significant digits.  ``verify`` re-hashes every file.

Modules: :mod:`.plan` (options, names, steps, disk preflight), :mod:`.eval_data`, :mod:`.state`,
:mod:`.runner` (the steps), :mod:`.manifest` (schema, hashing, verify), :mod:`.model_card`.
"""
