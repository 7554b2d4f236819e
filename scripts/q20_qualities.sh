#!/usr/bin/env bash
# The shipped q20 model (trained at q=20 only) and bicubic at JPEG q = 10, 30, 50 on the four sets:
# how a single-quality model fares on other qualities (results/models, results/baselines).
set -euo pipefail
sets=Set5,Set14,BSD100,Urban100
for q in 10 30; do
  [ -f results/baselines/bicubic_q$q.json ] || jpegsr benchmark --method bicubic --sets $sets \
    --scale 4 --quality $q --json results/baselines/bicubic_q$q.json --no-progress
done
for q in 10 30 50; do
  jpegsr benchmark --method q20 --sets $sets --scale 4 --quality $q \
    --json results/models/q20_q$q.json --no-progress
done
