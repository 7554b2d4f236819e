#!/usr/bin/env bash
# Table 1 under an equal budget: train each row's config, then benchmark it (and the (M) rows:
# the clean-trained models on pre-denoised input). Resumable: a finished run is skipped, a
# killed one resumes from its checkpoint. Then assembles results/table1.md/.json.
#   bash scripts/table1.sh [ROW ...]     (default: all rows)
set -euo pipefail
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(slwsr32_clean slwsr32_cjpg two_stage_nocycle two_stage_cycle rcan_clean dbpn_clean)
sets=Set5,Set14,BSD100,Urban100
for row in "${rows[@]}"; do
  weights=runs/table1/$row/model.safetensors
  [ -f "$weights" ] || jpegsr train "configs/table1/$row.yaml" --resume --no-progress
  jpegsr benchmark --method "$weights" --sets $sets --scale 4 --quality 20 \
    --json "results/table1/$row.json" --no-progress
  case $row in *_clean)
    jpegsr benchmark --method "denoise+$weights" --sets $sets --scale 4 --quality 20 \
      --json "results/table1/${row}_M.json" --no-progress ;;
  esac
done
jpegsr report table1
