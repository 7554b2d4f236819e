#!/usr/bin/env bash
# Table 1 at 20,000 iterations (issue #19) on a lent GPU, as one command (repo root on the
# device machine, .gpu_train/ carried: the training split packed by
# `python scripts/pack_training_images.py ../shared/datasets/train/BSD200
# ../shared/datasets/train/T91 --fit -o .gpu_train`, which fits beside the tracked files
# under the 64 MiB cap where the whole .gpu_data/ no longer does):
#
#   bash scripts/gpu_table1.sh SECONDS [ROW ...]
#
# ROWs default to every row of configs/table1_20k/ whose results/table1_20k/ROW.json is not
# committed yet, the rows the paper's claims turn on first. 1. records the card; 2. trains
# the rows one after another, each alone on the device: the lease of 2026-11-27 measured
# that rows sharing an H200 are time-sliced (results/table1_20k/leases/: three side by side
# each ran about three times slower an iteration than one alone), so sharing gains nothing
# and leaves every row unfinished when time runs short. A row is trained whole or not at all
# (every row gets the same budget): once PROBE_ROWS rows of its log are written its finish is
# projected from its measured seconds per iteration, and a row that cannot end inside
# SECONDS is stopped there and the next (perhaps lighter) row tried. 3. packs the finished
# rows' weights and logs into $OUT/table1_20k.tar.gz (split into parts under 16 MiB). Rows
# that did not fit wait for the next lease. Here, afterwards: `bash scripts/table1.sh
# --unpack DIR` then `BUDGET=20k bash scripts/table1.sh`.
set -uo pipefail
total=${1:?usage: gpu_table1.sh SECONDS [ROW ...]}
shift
start=$(date +%s)
out=${OUT:-out/gpu_table1}
python=${PYTHON:-python3}
probe_rows=${PROBE_ROWS:-3}  # log rows (of log_every iterations) before projecting
configs=${TABLE1_CONFIGS:-configs/table1_20k}
runs=${TABLE1_RUNS:-runs/table1_20k}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
log=$out/gpu_table1_log.txt

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  # the rows the claims turn on first (two-stage with and without the cycle loss, C-JPG)
  for c in "$configs"/two_stage_cycle.yaml "$configs"/two_stage_nocycle.yaml \
           "$configs"/slwsr32_cjpg.yaml "$configs"/slwsr32_denoised.yaml "$configs"/*.yaml; do
    row=$(basename "$c" .yaml)
    [ -f "$c" ] && [ ! -f "results/table1_20k/$row.json" ] && [[ " ${rows[*]} " != *" $row "* ]] \
      && rows+=("$row")
  done
fi
[ ${#rows[@]} -eq 0 ] && { echo "every row is done" | tee "$log"; exit 0; }

# 1. the machine
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
  echo "rows: ${rows[*]}"; } 2>&1 | tee "$log"

# 2. the rows one after another, each alone; 30 s kept for packing
deadline=$(( start + total - 30 ))
train=()
for row in "${rows[@]}"; do
  left=$(( deadline - $(date +%s) ))
  [ "$left" -lt 60 ] && { echo "$row: only ${left} s left, not started" | tee -a "$log"; continue; }
  rm -rf "${runs:?}/$row"
  iterations=$("$python" -c \
    "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['iterations'])" "$configs/$row.yaml")
  timeout "$left" "$python" -m jpegsr.cli train "$configs/$row.yaml" --no-progress >> "$log" 2>&1 &
  pid=$!
  verdict=""
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    [ -n "$verdict" ] && continue
    # once probe_rows are logged: iterations done and seconds per iteration -> projected end
    verdict=$("$python" - "$runs/$row/train_log.csv" "$iterations" "$probe_rows" \
      "$deadline" <<'PY'
import csv, sys, time
from pathlib import Path
log, iterations, probe, deadline = Path(sys.argv[1]), *map(int, sys.argv[2:5])
rows = list(csv.DictReader(log.open())) if log.exists() else []
if len(rows) >= probe:
    done, spi = int(rows[-1]["iteration"]), float(rows[-1]["sec_per_iter"])
    end = time.time() + (iterations - done) * spi * 1.05 + 15  # 5% and 15 s for the export
    print(f"fits {spi:.4f}" if end <= deadline else f"late {spi:.4f} {end - deadline:.0f}")
PY
)
    if [[ $verdict == late* ]]; then
      read -r _ spi over <<< "$verdict"
      echo "$row: ${spi} s/iter alone, would end ${over} s past the lease: stopped" | tee -a "$log"
      kill "$pid" 2>/dev/null
    elif [[ $verdict == fits* ]]; then
      echo "$row: ${verdict#fits } s/iter alone, ends inside the lease" | tee -a "$log"
    fi
  done
  if wait "$pid" && [ -f "$runs/$row/model.safetensors" ]; then
    train+=("$row")
    echo "$row: finished at $(( $(date +%s) - start )) s" | tee -a "$log"
  elif [[ $verdict != late* ]]; then
    echo "$row: failed or ran out of time" | tee -a "$log"
  fi
done
[ ${#train[@]} -ge 1 ] || { echo "no row finished in this lease" | tee -a "$log"; exit 1; }

# 3. weights and logs of the finished rows, packed
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
echo "gpu_table1 done in $(( $(date +%s) - start )) s; finished: ${train[*]}; packed: ${files[*]:-nothing}" | tee -a "$log"
