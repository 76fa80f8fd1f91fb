#!/usr/bin/env bash
# The GPU checks, in one prepared run (issue 12): on the `slice` checkpoint (real widths), `awq`,
# `reference`, `validate` and `gguf` with --device cuda, each compared with the same command on the CPU:
#   * awq: seconds per decoder layer and peak GPU memory (from --json), and the CUDA artifact's KL to
#     the BF16 reference beside the CPU artifact's (bfloat16 on the GPU, float32 on the CPU: the two
#     must agree within noise);
#   * reference: the CUDA reference validated against the CPU one (KL ~ 0);
#   * gguf: Q4_K_M + the default mmproj encoded on the GPU, byte-identical to the CPU files, with GB/s.
# Sized to finish in under 8 minutes on one H100/H200 (16 CPU cores).  On a machine without a GPU,
# DEVICE=cpu runs every step on the CPU against itself, which checks the script (use a small MODEL).
#
#   bench/gpu_check.sh                                  # slice, built in $WORK if missing
#   DEVICE=cpu MODEL=/tmp/tiny WORK=/tmp/gpucheck bench/gpu_check.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/r1v-gpu-check}
MODEL=${MODEL:-$WORK/slice}
THREADS=${THREADS:-$(nproc)}
AWQ_OPTS=${AWQ_OPTS:-"--samples 4 --seq-len 256 --max-tiles 1"}   # same calibration for both devices
EVAL=${EVAL:-"2 2"}                                                # eval samples: images, texts
mkdir -p "$WORK"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
r1v() { "$PY" -m r1v_quant "$@"; }
t() { local s=$SECONDS; "$@"; echo "    ($((SECONDS - s)) s)" >&2; }  # stderr: stdout may be a --json file

echo "== r1v-quant GPU check: device $DEVICE, model $MODEL, $THREADS CPU threads"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
[ -f "$MODEL/config.json" ] || t r1v demo-checkpoint "$MODEL" --preset slice
"$PY" - "$WORK/eval.jsonl" $EVAL <<'PYEOF'
import sys
from pathlib import Path
from r1v_quant.calibrate.dataset import write_eval_subset
write_eval_subset(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
PYEOF

echo "== awq on $DEVICE and on cpu"
t r1v awq "$MODEL" --out "$WORK/awq-$DEVICE" --device "$DEVICE" $AWQ_OPTS --force --json > "$WORK/awq-$DEVICE.json"
t r1v awq "$MODEL" --out "$WORK/awq-cpu" --device cpu $AWQ_OPTS --force --json > "$WORK/awq-cpu.json"

echo "== reference on $DEVICE and on cpu"
t r1v reference "$MODEL" --out "$WORK/ref-cpu.r1vref" --data "$WORK/eval.jsonl" --max-tiles 2 --device cpu --force
t r1v reference "$MODEL" --out "$WORK/ref-$DEVICE.r1vref" --data "$WORK/eval.jsonl" --max-tiles 2 --device "$DEVICE" --force

echo "== validate on $DEVICE"
LOOSE="--max-kl 1000 --min-top1 0 --max-ppl-ratio 1000"  # figures, not a gate: the demo weights are random
v() { r1v validate "$1" --reference "$2" --data "$WORK/eval.jsonl" --device "$DEVICE" $LOOSE --json > "$3" || true; }
t v "$MODEL" "$WORK/ref-cpu.r1vref" "$WORK/val-ref.json"               # the GPU reference vs the CPU one
t v "$WORK/awq-$DEVICE" "$WORK/ref-cpu.r1vref" "$WORK/val-awq-$DEVICE.json"
t v "$WORK/awq-cpu" "$WORK/ref-cpu.r1vref" "$WORK/val-awq-cpu.json"

echo "== gguf q4_k_m + the default mmproj on $DEVICE and on cpu"
t r1v gguf "$MODEL" --type q4_k_m --out "$WORK/gguf-$DEVICE" --device "$DEVICE" --threads "$THREADS" --force --json \
  > "$WORK/gguf-$DEVICE.json"
t r1v gguf "$MODEL" --type q4_k_m --out "$WORK/gguf-cpu" --device cpu --threads "$THREADS" --force --json \
  > "$WORK/gguf-cpu.json"

"$PY" - "$WORK" "$DEVICE" <<'PYEOF'
import filecmp, json, sys
from pathlib import Path
work, dev = Path(sys.argv[1]), sys.argv[2]
j = lambda n: json.loads((work / n).read_text())
print("== results")
for d in (dev, "cpu"):
    a = j(f"awq-{d}.json")
    peaks = a["measured_peaks"]["layer"]
    gpu = peaks["device_bytes"]
    per_layer = "  ".join(f"{stack} {sum(s) / len(s):.1f}" for stack, s in a["seconds_per_layer"].items() if s)
    print(f"awq {d:5s}: {a['options']['dtype']}, {a['calibration']['tokens']} tokens, mean seconds per layer "
          f"{per_layer}, peak host {peaks['host_bytes'] / 1e9:.2f} GB"
          + (f", peak GPU {gpu / 1e9:.2f} GB (plan {a['plan']['peak_device_bytes'] / 1e9:.2f})" if gpu else ""))
for name in ("val-ref.json", f"val-awq-{dev}.json", "val-awq-cpu.json"):
    r = j(name)
    print(f"{name:18s} " + "  ".join(f"{g}: KL {v['kl_mean']:.4f} top-1 {v['top1']:.3f}" for g, v in r["groups"].items()))
files = [f["path"] for f in j(f"gguf-{dev}.json")["files"]]
same = [filecmp.cmp(f, f.replace(f"gguf-{dev}", "gguf-cpu"), shallow=False) for f in files]
for d in (dev, "cpu"):
    g = j(f"gguf-{d}.json")
    size = sum(f["bytes"] for f in g["files"])
    print(f"gguf {d:5s}: {g['seconds']} s, {size / 1e9 / max(g['seconds'], 1e-9):.3f} GB/s written")
print(f"gguf files identical on {dev} and cpu: {all(same)} ({sum(same)} of {len(same)})")
sys.exit(0 if all(same) else 1)
PYEOF
