#!/usr/bin/env bash
# The GPU checks of the GGUF encoders (issue 15), in one prepared run:
#   * the encoders on the GPU against ggml's own quantizer (`ggml_quantize_chunk` in llama-cpp-python's
#     libggml-base), every type, with and without an importance vector: tests/test_ggml_encoders.py's
#     CUDA tests, which CI (no GPU) skips;
#   * `imatrix --device cuda` beside `--device cpu` on the tiny checkpoint (float sums: close, not equal);
#   * `gguf --imatrix FILE --device cuda` byte-identical to `--device cpu` for Q4_K_M, IQ4_XS, Q3_K_M
#     and Q2_K, language model and mmproj (Q4_0, which takes the matrix; Q8_0 ignores it);
#   * one full-width matrix (ROWS x 27648, ffn_down's row length in the 38B) encoded with importance on
#     the GPU and on all CPU cores: same bytes, and the time of each.
# Needs gguf and llama-cpp-python (its libggml-base is the reference) beside torch: on a lent machine
# without them, copy their site-packages folders (and llama_cpp's diskcache) from a venv here into an
# ignored folder, carry it and put it on PYTHONPATH with the checkout.  268 s on an H200 (README).
# Sized for a few minutes on one H100/H200.  DEVICE=cpu runs it all against the CPU (the CUDA tests
# skip), which checks the script:  DEVICE=cpu ROWS=64 WORK=/tmp/gpucheck bench/gpu_check_gguf.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/r1v-gpu-gguf}
ROWS=${ROWS:-2048}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$WORK"
r1v() { "$PY" -m r1v_quant "$@"; }
t() { local s=$SECONDS; "$@"; echo "    ($((SECONDS - s)) s)" >&2; }

echo "== r1v-quant GGUF GPU check: device $DEVICE, $(nproc) CPU cores"
"$PY" -c "import torch, gguf, llama_cpp; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', '| llama_cpp', llama_cpp.__version__)"

echo "== encoders on the GPU against ggml_quantize_chunk"
ENCODERS=passed
t "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_ggml_encoders.py -k "cuda or nan_scale" \
  || ENCODERS=failed

echo "== imatrix and gguf --imatrix on $DEVICE and on cpu (tiny checkpoint)"
[ -f "$WORK/tiny/config.json" ] || r1v demo-checkpoint "$WORK/tiny" > /dev/null
IMX="--samples 16 --seq-len 256 --max-tiles 1 --force"
t r1v imatrix "$WORK/tiny" --out "$WORK/imx-cpu.gguf" --device cpu $IMX
t r1v imatrix "$WORK/tiny" --out "$WORK/imx-$DEVICE.gguf" --device "$DEVICE" $IMX
for type in q4_k_m iq4_xs q3_k_m q2_k; do
  for d in "$DEVICE" cpu; do
    [ "$d" = cpu ] && [ "$DEVICE" = cpu ] && [ -d "$WORK/g-cpu-$type" ] && continue
    t r1v gguf "$WORK/tiny" --type "$type" --imatrix "$WORK/imx-cpu.gguf" --mmproj-type q4_0 \
      --out "$WORK/g-$d-$type" --device "$d" --force --json > "$WORK/g-$d-$type.json"
  done
done

"$PY" - "$WORK" "$DEVICE" "$ROWS" "$ENCODERS" <<'PYEOF'
import filecmp, json, os, sys, time
from pathlib import Path
import numpy as np
import torch
from r1v_quant.read.imatrix_file import load_imatrix
from r1v_quant.quantize.ggml_encoders import quantize

work, dev, rows = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
print("== results")
print(f"encoder tests against ggml: {sys.argv[4]}")
a, b = load_imatrix(work / "imx-cpu.gguf"), load_imatrix(work / f"imx-{dev}.gguf")
worst = max(float((abs(a.sums[n] - b.sums[n]) / np.maximum(abs(a.sums[n]), 1e-30)).max()) for n in a.sums)
print(f"imatrix {dev} vs cpu: {len(b.sums)} of {len(a.sums)} entries, same counts: {a.counts == b.counts}, "
      f"largest relative difference of a sum {worst:.2e}")
ok = sys.argv[4] == "passed" and sorted(a.sums) == sorted(b.sums) and a.counts == b.counts and worst < 1e-3
for type in ("q4_k_m", "iq4_xs", "q3_k_m", "q2_k"):
    files = [Path(f["path"]) for f in json.loads((work / f"g-{dev}-{type}.json").read_text())["files"]]
    same = [filecmp.cmp(f, work / f"g-cpu-{type}" / f.name, shallow=False) for f in files]
    ok &= all(same) and len(same) == 2
    print(f"gguf {type} --imatrix on {dev} and cpu: {sum(same)} of {len(same)} files identical "
          f"({', '.join(f.name for f in files)})")

g = torch.Generator().manual_seed(15)
x = torch.randn(rows, 27648, generator=g)
x = torch.where(torch.rand(x.shape, generator=g) < 0.01, 8 * x, x)  # heavy tails, like the demo weights
imp = torch.rand(27648, generator=g) ** 4 * 100 + 1e-3
torch.set_num_threads(os.cpu_count() or 1)
for qtype in ("q4_k", "iq4_xs", "q3_k", "q6_k"):
    s = time.perf_counter(); want = quantize(x, qtype, importance=imp); cpu_s = time.perf_counter() - s
    if dev == "cpu":
        print(f"{qtype:7s} {rows}x27648 with importance: cpu {cpu_s:.2f} s ({torch.get_num_threads()} threads)")
        continue
    xd, impd = x.to(dev), imp.to(dev)
    quantize(xd[:8], qtype, importance=impd)  # warm-up: kernels, allocator
    torch.cuda.synchronize(); s = time.perf_counter()
    got = quantize(xd, qtype, importance=impd); torch.cuda.synchronize(); gpu_s = time.perf_counter() - s
    same = torch.equal(got.cpu(), want)
    ok &= same
    print(f"{qtype:7s} {rows}x27648 with importance: {dev} {gpu_s:.3f} s, cpu {cpu_s:.2f} s "
          f"({torch.get_num_threads()} threads), {cpu_s / gpu_s:.1f}x; bytes identical: {same}")
print("ALL SAME" if ok else "DIFFERENCES FOUND")
sys.exit(0 if ok else 1)
PYEOF
