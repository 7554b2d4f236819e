#!/usr/bin/env bash
# Everything one lent-GPU lease does, prepared as one command (run from the repo root on the
# device machine, with .gpu_train/ carried: the training split, packed by
# `python scripts/pack_training_images.py ../shared/datasets/train/BSD200
# ../shared/datasets/train/T91 --fit -o .gpu_train`; or .gpu_photos/ with CONFIG naming a
# configs/gpu/continuing_photos*.yaml):
#
#   bash scripts/gpu_lease.sh SECONDS
#   BENCH_COMPILE=reduce-overhead bash scripts/gpu_lease.sh SECONDS   # + compiled speed rows
#   PROFILE=1 bash scripts/gpu_lease.sh SECONDS      # + where the eager step's time goes
#                                                    #   (benchmarks/train_profile.{json,md})
#   CUDA_GRAPH=1 bash scripts/gpu_lease.sh SECONDS   # + rows of the step as one CUDA graph; the
#                                                    # run then uses it where it measured faster
#
# 1. records the card and software; 2. measures the GPU rows of benchmarks/train_speed.json;
# 3. continues the continuing run (configs/gpu/continuing.yaml) with one cosine schedule
# sized by scripts/gpu_train.sh to what is left of SECONDS; 4. copies weights, logs and the
# speed table to $OUT (at most 8 files come back from a lease). If the run is cut short its
# last checkpoint's EMA weights are exported instead, marked partial.
set -uo pipefail
total=${1:?usage: gpu_lease.sh SECONDS}
start=$(date +%s)
out=${OUT:-out/gpu_lease}
config=${CONFIG:-configs/gpu/continuing.yaml}
device=${BENCH_DEVICE:-cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
log=$out/gpu_lease_log.txt

# 1. the machine
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$python" -c "import torch, PIL, numpy; print('torch', torch.__version__, 'pillow', \
PIL.__version__, 'numpy', numpy.__version__)"; } 2>&1 | tee "$log"

# 2. training speed on this device (rows of other devices in the JSON are kept)
[ -z "${SKIP_BENCH:-}" ] && timeout 150 "$python" benchmarks/train_speed.py --device "$device" 2>&1 | tee -a "$log"
# BENCH_COMPILE=reduce-overhead (or default): also time torch.compile in that mode
[ -n "${BENCH_COMPILE:-}" ] && timeout 240 "$python" benchmarks/train_speed.py --device "$device" \
  --compile --compile-mode "$BENCH_COMPILE" 2>&1 | tee -a "$log"
[ -n "${CUDA_GRAPH:-}" ] && timeout 150 "$python" benchmarks/train_speed.py --device "$device" \
  --cuda-graph 2>&1 | tee -a "$log"
[ -n "${PROFILE:-}" ] && timeout 150 "$python" benchmarks/train_speed.py --device "$device" \
  --shape 64x64 --profile 2>&1 | tee -a "$log"
cp benchmarks/train_speed.json benchmarks/train_speed.md "$out/"
# one file for the pair: a lease brings back at most 8 (here: `tar xf train_profile.tar`)
[ -n "${PROFILE:-}" ] && tar cf "$out/train_profile.tar" benchmarks/train_profile.json benchmarks/train_profile.md
# the CUDA-graph step trains the run only where it measured faster than the eager step
train_flags=$("$python" - "$device" <<'PY'
import json, sys
rows = json.load(open("benchmarks/train_speed.json"))["rows"]
ms = {r["compile"]: r["ms_per_iter"] for r in rows if r["device"] == "cuda" and r["batch"] == 64}
faster = "cuda-graph" in ms and ms["cuda-graph"] < ms.get(False, 1e9)
print("--cuda-graph" if sys.argv[1] == "cuda" and faster else "")
PY
)
echo "training flags: ${train_flags:-none}" | tee -a "$log"

# 3. the continuing run, sized to what is left (15 s kept for step 4)
left=$(( total - ($(date +%s) - start) - 15 ))
echo "training budget: ${left} s" | tee -a "$log"
if [ "$left" -lt 60 ]; then echo "too little time left to train" | tee -a "$log"; exit 1; fi
name=$("$python" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$config")
runs=${GPU_RUNS:-runs/gpu}
rm -rf "${runs:?}/$name"
TRAIN_FLAGS=$train_flags CALIB_ITERS=${CALIB_ITERS:-300} GPU_RUNS=$runs PYTHON=$python \
  timeout "$left" bash scripts/gpu_train.sh "$left" "$config" 2>&1 | tee -a "$log"

# 4. bring back what the next stretch needs
run=$runs/$name
if [ ! -f "$run/model.safetensors" ] && [ -f "$run/checkpoint.pt" ]; then
  echo "run cut short: exporting the last checkpoint's EMA (partial)" | tee -a "$log"
  "$python" scripts/export_checkpoint.py "$config" --out-dir "$runs" 2>&1 | tee -a "$log"
fi
for f in model.safetensors train_log.csv val_log.csv config.yaml; do
  [ -f "$run/$f" ] && cp "$run/$f" "$out/"
done
echo "lease script done in $(( $(date +%s) - start )) s" | tee -a "$log"
