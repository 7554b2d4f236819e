#!/usr/bin/env bash
# Train several configs side by side on one GPU inside a wall-clock budget.
#
#   bash scripts/gpu_train.sh SECONDS CONFIG.yaml [CONFIG.yaml ...]
#
# A GPU lease is short and fixed, so the iteration count is not known ahead: this first runs
# every config together for a few iterations (runs/gpu_calib/) to measure seconds per
# iteration under the same sharing, then trains each with --iterations set so all end inside
# SECONDS (the cosine schedule then completes; MAX_ITERS=N caps the count). Runs go to
# runs/gpu/<name>/; no GPU is ever needed to use the resulting weights.
set -euo pipefail
budget=$1
shift
start=$(date +%s)
calib_iters=${CALIB_ITERS:-150}
out=${GPU_RUNS:-runs/gpu}
calib=${out}_calib  # scratch: replaced on every call
rm -rf "$calib"
python=${PYTHON:-python3}
read -r -a flags <<< "${TRAIN_FLAGS:-}"  # e.g. --cuda-graph, passed to every `jpegsr train`
jpegsr() { "$python" -m jpegsr.cli "$@"; }

pids=()
for config in "$@"; do
  jpegsr train "$config" --iterations "$calib_iters" --out-dir "$calib" --no-progress "${flags[@]}" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# seconds per iteration of the slowest run, from the last log row of each calibration
spi=$("$python" - "$calib" "$@" <<'PY'
import csv, sys, yaml
from pathlib import Path
worst = 0.0
for config in sys.argv[2:]:
    name = yaml.safe_load(Path(config).read_text())["name"]
    rows = list(csv.DictReader((Path(sys.argv[1]) / name / "train_log.csv").open()))
    worst = max(worst, float(rows[-1]["sec_per_iter"]))
print(worst)
PY
)
elapsed=$(( $(date +%s) - start ))
# keep 45 s for data caching, validation and export
iters=$("$python" -c "print(max(100, int(($budget - $elapsed - 45) / $spi) // 100 * 100))")
# MAX_ITERS caps the count (e.g. to match a control run's schedule exactly)
[ -n "${MAX_ITERS:-}" ] && [ "$iters" -gt "$MAX_ITERS" ] && iters=$MAX_ITERS
echo "calibration: ${spi} s/iter with $# runs sharing the GPU; ${elapsed} s used; training ${iters} iterations each"

pids=()
for config in "$@"; do
  jpegsr train "$config" --iterations "$iters" --out-dir "$out" --no-progress "${flags[@]}" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "done in $(( $(date +%s) - start )) s"
exit $status
