#!/usr/bin/env bash
# Table 1 at 20,000 iterations (issue #19) on a lent GPU, as one command (repo root on the
# device machine, .gpu_train/ carried: the training split packed by
# `python scripts/pack_training_images.py ../shared/datasets/train/BSD200
# ../shared/datasets/train/T91 --fit -o .gpu_train`, which fits beside the tracked files
# under the 64 MiB cap where the whole .gpu_data/ no longer does):
#
#   bash scripts/gpu_table1.sh SECONDS [ROW ...]
#
# ROWs default to every configs/table1_20k/ROW.yaml whose results/table1_20k/ROW.json is not
# committed yet. 1. records the card; 2. runs all those rows side by side for CALIB_ITERS
# iterations to measure seconds per iteration under that sharing; 3. trains as many rows as
# can finish all 20,000 iterations inside what is left (a row is trained whole or not at all:
# every row gets the same budget), side by side; 4. packs their weights and logs into
# $OUT/table1_20k.tar.gz (split into parts under 16 MiB). Rows that did not fit wait for the
# next lease. Here, afterwards: `bash scripts/table1.sh --unpack DIR` then
# `BUDGET=20k bash scripts/table1.sh`.
set -uo pipefail
total=${1:?usage: gpu_table1.sh SECONDS [ROW ...]}
shift
start=$(date +%s)
out=${OUT:-out/gpu_table1}
python=${PYTHON:-python3}
calib_iters=${CALIB_ITERS:-200}
configs=${TABLE1_CONFIGS:-configs/table1_20k}
runs=${TABLE1_RUNS:-runs/table1_20k}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
log=$out/gpu_table1_log.txt
jpegsr() { "$python" -m jpegsr.cli "$@"; }

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  for c in "$configs"/*.yaml; do
    row=$(basename "$c" .yaml)
    [ -f "results/table1_20k/$row.json" ] || rows+=("$row")
  done
fi
[ ${#rows[@]} -eq 0 ] && { echo "every row is done" | tee "$log"; exit 0; }

# 1. the machine
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  echo "rows: ${rows[*]}"; } 2>&1 | tee "$log"

# 2. seconds per iteration with every pending row sharing the device
rm -rf "${runs}_calib"
pids=()
for row in "${rows[@]}"; do
  jpegsr train "$configs/$row.yaml" --iterations "$calib_iters" --out-dir "${runs}_calib" \
    --no-progress >> "$log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
iterations=$("$python" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['iterations'])" \
  "$configs/${rows[0]}.yaml")
left=$(( total - ($(date +%s) - start) - 40 ))  # 40 s kept for data caching and packing
fit=$("$python" - "$runs" "$iterations" "$left" "${rows[@]}" <<'PY'
import csv, sys
from pathlib import Path
runs, iterations, left, rows = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
spi = max(float(list(csv.DictReader((Path(runs + "_calib") / r / "train_log.csv").open()))[-1]
                ["sec_per_iter"]) for r in rows)
# with fewer rows sharing the device each runs no slower: assume time scales with the count
k = len(rows) if iterations * spi <= left else int(left * len(rows) // (iterations * spi))
print(f"{spi:.4f} {min(k, len(rows))}")
PY
)
read -r spi k <<< "$fit"
echo "calibration: ${spi} s/iter with ${#rows[@]} rows sharing; ${left} s left; training $k" \
  | tee -a "$log"
[ "$k" -ge 1 ] || { echo "not even one row fits this lease" | tee -a "$log"; exit 1; }

# 3. the rows that fit, whole
train=("${rows[@]:0:$k}")
pids=()
for row in "${train[@]}"; do
  rm -rf "${runs:?}/$row"
  timeout "$left" "$python" -m jpegsr.cli train "$configs/$row.yaml" --no-progress \
    >> "$log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || echo "a row failed or ran out of time" | tee -a "$log"; done

# 4. weights and logs of the finished rows, packed
files=()
for row in "${train[@]}"; do
  for f in model.safetensors train_log.csv val_log.csv; do
    [ -f "$runs/$row/model.safetensors" ] && [ -f "$runs/$row/$f" ] && files+=("$runs/$row/$f")
  done
done
if [ ${#files[@]} -gt 0 ]; then
  tar czf "$out/table1_20k.tar.gz" "${files[@]}"
  split -b 15m -d "$out/table1_20k.tar.gz" "$out/table1_20k.tar.gz.part-" && rm "$out/table1_20k.tar.gz"
fi
echo "gpu_table1 done in $(( $(date +%s) - start )) s; packed: ${files[*]:-nothing}" | tee -a "$log"
