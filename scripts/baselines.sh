#!/usr/bin/env bash
# The bicubic rows (issue: harness) and the pre-denoised ones (the (M) input: the DnCNN
# denoiser, and NLM, the earlier stand-in), q = 20 and 50, on the four sets.
# Writes results/baselines/<method>_q<q>.json and per-image CSVs, then their README table.
set -euo pipefail
for q in 20 50; do
  for m in bicubic dncnn+bicubic nlm+bicubic; do
    slug=${m//+/_}
    jpegsr benchmark --method "$m" --sets Set5,Set14,BSD100,Urban100 --scale 4 --quality "$q" \
      --json "results/baselines/${slug}_q${q}.json" --out "results/baselines/${slug}_q${q}" \
      --no-progress
  done
done
jpegsr report baselines
