#!/usr/bin/env bash
# The GPU checks, in one prepared run, on the `slice` checkpoint (the 38B's real widths, 2 + 2 layers).
# Steps run most valuable first, each report written to $REPORTS as soon as it exists, so a run cut
# short by its time limit still says what it measured:
#   1. awq --device cuda at the 38B's own default calibration (128 samples x 2048 tokens, 4 tiles):
#      every layer has the real widths and the real number of calibration tokens, so the peak GPU
#      memory and seconds per layer measured here are the 38B's per layer (only the layer count
#      differs); then the same with --offload (its files compared byte for byte), and at a small
#      calibration (AWQ_SMALL), the second size that shows the slope (AWQ_RUNS picks and orders them);
#      each run's peaks are listed per step of the plan, measured beside planned;
#   2. reference on $DEVICE and on the CPU, the $DEVICE one validated against the CPU's (KL ~ 0), and
#      the CUDA AWQ artifact's KL to the BF16 reference;
#   3. gguf Q4_K_M on $DEVICE and on the CPU: bytes identical, GB/s (the language model only: see MMPROJ);
#   4. (CPU_AWQ=1) awq on the CPU (float32) at the small calibration, its KL beside the CUDA one's.
# On a machine without a GPU, DEVICE=cpu runs every step on the CPU, which checks the script (use a
# small MODEL and small calibrations).
#
#   bench/gpu_check.sh                                  # slice, built in $WORK if missing
#   DEVICE=cpu MODEL=/tmp/tiny WORK=/tmp/gpucheck AWQ_FULL="--samples 8 --seq-len 256" bench/gpu_check.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/r1v-gpu-check}
REPORTS=${REPORTS:-$WORK/reports}                                    # the JSON reports and results.txt
MODEL=${MODEL:-$WORK/slice}
THREADS=${THREADS:-$(nproc)}
AWQ_FULL=${AWQ_FULL:-""}                                             # awq's defaults: the 38B's calibration
AWQ_SMALL=${AWQ_SMALL:-"--samples 8 --seq-len 512 --max-tiles 1"}
AWQ_RUNS=${AWQ_RUNS:-"full full-offload small"}                     # which of step 1's runs, in order
CPU_AWQ=${CPU_AWQ:-1}
EVAL=${EVAL:-"2 2"}                                                  # eval samples: images, texts
mkdir -p "$WORK" "$REPORTS"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
r1v() { "$PY" -m r1v_quant "$@"; }
t() { local s=$SECONDS; "$@"; echo "    ($((SECONDS - s)) s)" >&2; }  # stderr: stdout may be a --json file
results() { "$PY" bench/gpu_check_results.py "$REPORTS" "$WORK" "$DEVICE" | tee "$REPORTS/results.txt"; }

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
LOOSE="--max-kl 1000 --min-top1 0 --max-ppl-ratio 1000"  # figures, not a gate: the demo weights are random
v() { r1v validate "$1" --reference "$2" --data "$WORK/eval.jsonl" --device "$DEVICE" $LOOSE --json > "$3" || true; }
awq() {  # awq NAME DEVICE OPTIONS...: the artifact in $WORK/NAME, its report in $REPORTS/NAME.json
  local name=$1 dev=$2; shift 2
  t r1v awq "$MODEL" --out "$WORK/$name" --device "$dev" "$@" --force --json > "$REPORTS/$name.json"
}

echo "== awq on $DEVICE: $AWQ_RUNS"
for run in $AWQ_RUNS; do
  case $run in
    full) awq awq-full "$DEVICE" $AWQ_FULL ;;
    full-offload) awq awq-full-offload "$DEVICE" $AWQ_FULL --offload ;;
    small) awq awq-small "$DEVICE" $AWQ_SMALL ;;
    *) echo "AWQ_RUNS: unknown run $run (full, full-offload, small)" >&2; exit 2 ;;
  esac
  results
done

echo "== reference on $DEVICE and on cpu; validate on $DEVICE"
t r1v reference "$MODEL" --out "$WORK/ref-$DEVICE.r1vref" --data "$WORK/eval.jsonl" --max-tiles 2 --device "$DEVICE" \
  --force
for name in awq-full awq-small; do
  if [ -d "$WORK/$name" ]; then t v "$WORK/$name" "$WORK/ref-$DEVICE.r1vref" "$REPORTS/val-$name.json"; fi
done
t r1v reference "$MODEL" --out "$WORK/ref-cpu.r1vref" --data "$WORK/eval.jsonl" --max-tiles 2 --device cpu --force
t v "$MODEL" "$WORK/ref-cpu.r1vref" "$REPORTS/val-ref.json"             # the $DEVICE model vs the CPU reference
results

# the mmproj needs the 38B's own 45 vision layers: for a 3200-wide tower of any other depth, llama.cpp
# takes LayerNorm for the RMSNorm it has and `gguf` refuses to write it (the GPU encoders of the vision
# tower's types are checked by gpu_check_gguf.sh); MMPROJ= (empty) asks for it, on the 38B itself
MMPROJ=${MMPROJ---no-mmproj}
echo "== gguf q4_k_m ($MMPROJ) on $DEVICE and on cpu"
g() { t r1v gguf "$MODEL" --type q4_k_m $MMPROJ --out "$WORK/gguf-$1" --device "$1" --threads "$THREADS" --force \
        --json > "$REPORTS/gguf-$1.json"; }
g "$DEVICE"
g cpu
results

if [ "$CPU_AWQ" = 1 ]; then
  echo "== awq on cpu (float32), small calibration"
  awq awq-small-cpu cpu $AWQ_SMALL
  t v "$WORK/awq-small-cpu" "$WORK/ref-$DEVICE.r1vref" "$REPORTS/val-awq-small-cpu.json"
  results
fi
! grep -q "^MISMATCH" "$REPORTS/results.txt"
