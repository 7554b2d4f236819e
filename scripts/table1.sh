#!/usr/bin/env bash
# Table 1 under an equal budget: train each row's config, then benchmark it. The (M) rows
# (*_denoised) are trained and tested on input pre-denoised by DnCNN, as the paper's; the
# clean-trained rows are also benchmarked on pre-denoised input (their "DnCNN at test only"
# rows). Resumable: a finished run is skipped, a killed one resumes from its checkpoint.
# Then assembles results/table1.md/.json.
#   bash scripts/table1.sh [ROW ...]               2,000 iterations on this CPU (default: all rows)
#   BUDGET=20k bash scripts/table1.sh [ROW ...]    20,000 iterations: benchmarks the rows whose
#                                                  weights came back from a GPU lease (or were
#                                                  trained here: configs/table1_20k_cpu/)
#   bash scripts/table1.sh --unpack DIR            unpacks what scripts/gpu_table1.sh left in
#                                                  DIR (the lease's $OUT) into runs/table1_20k/
set -euo pipefail
if [ "${1:-}" = --unpack ]; then
  cat "${2:?usage: table1.sh --unpack DIR}"/table1_20k.tar.gz.part-* | tar xzvf -
  exit 0
fi
case ${BUDGET:-2k} in
  2k) configs=configs/table1; runs=runs/table1; results=results/table1 ;;
  20k) configs=configs/table1_20k; runs=runs/table1_20k; results=results/table1_20k ;;
  *) echo "BUDGET must be 2k or 20k" >&2; exit 2 ;;
esac
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(slwsr32_clean slwsr32_denoised slwsr32_cjpg two_stage_nocycle
  two_stage_cycle rcan_clean rcan_denoised dbpn_clean dbpn_denoised)
sets=Set5,Set14,BSD100,Urban100
for row in "${rows[@]}"; do
  weights=$runs/$row/model.safetensors
  if [ ! -f "$weights" ] && [ "${BUDGET:-2k}" = 20k ] && [ -f "${runs}_cpu/$row/model.safetensors" ]; then
    weights=${runs}_cpu/$row/model.safetensors  # trained on this CPU (configs/table1_20k_cpu/)
  fi
  if [ ! -f "$weights" ]; then
    if [ "${BUDGET:-2k}" = 20k ]; then
      echo "$row: no weights in $runs/$row or ${runs}_cpu/$row (train it on a GPU:" \
        "scripts/gpu_table1.sh, or here: configs/table1_20k_cpu/)" >&2
      continue
    fi
    jpegsr train "$configs/$row.yaml" --resume --no-progress
  fi
  method=$weights
  case $row in *_denoised) method=dncnn+$weights ;; esac  # (M): fed as it was trained
  jpegsr benchmark --method "$method" --sets $sets --scale 4 --quality 20 \
    --json "$results/$row.json" --no-progress
  case $row in *_clean)
    # the clean-trained model on input pre-denoised by DnCNN at test time only
    jpegsr benchmark --method "dncnn+$weights" --sets $sets --scale 4 --quality 20 \
      --json "$results/${row}_M.json" --no-progress
    # the 2,000-iteration rows also keep the (M) rows as first made, with NLM
    if [ "${BUDGET:-2k}" = 2k ]; then
      jpegsr benchmark --method "nlm+$weights" --sets $sets --scale 4 --quality 20 \
        --json "$results/${row}_M_nlm.json" --no-progress
    fi ;;
  esac
done
jpegsr report table1
