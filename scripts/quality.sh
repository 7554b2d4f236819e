#!/usr/bin/env bash
# Issue #5's measurements: the shipped models at JPEG q = 10, 20, 30, 50 on the four sets,
# beside bicubic (results/baselines), then `jpegsr report quality`. Existing results are kept.
#   bash scripts/quality.sh [MODEL ...]     (default: every shipped model)
set -euo pipefail
sets=Set5,Set14,BSD100,Urban100
models=("$@")
[ ${#models[@]} -eq 0 ] && models=($(python -c "from jpegsr.weights_io import shipped_models as s; print(*s())"))
for q in 10 20 30 50; do
  [ -f results/baselines/bicubic_q$q.json ] || jpegsr benchmark --method bicubic --sets $sets \
    --scale 4 --quality $q --json results/baselines/bicubic_q$q.json --no-progress
  for m in "${models[@]}"; do
    [ -f results/models/${m}_q$q.json ] || jpegsr benchmark --method "$m" --sets $sets \
      --scale 4 --quality $q --json results/models/${m}_q$q.json --no-progress
  done
done
jpegsr report quality
