#!/usr/bin/env bash
# The README's comparison: every method of the papers on MVTec AD bottle under one small CPU budget.
#
#   scripts/compare_bottle.sh                 # defaults below; override with environment variables:
#   EPOCHS=320 IMAGE_SIZE=256 BATCH_SIZE=64 SEEDS=0,1,2,3,4 scripts/compare_bottle.sh   # the papers' protocol
#
# Writes OUT/comparison.md, OUT/comparison.csv, OUT/heatmaps.png and OUT/machine.txt (CPU, cores, wall
# time). Finished runs are kept, so running it again continues an interrupted comparison.
# The budget (2 epochs at 128 px, batch 16, 2 seeds, SSAE at half Table 1's width, CutPaste patches on a
# 32-px grid at the 256-px frame) is what fits in about 25 minutes of a shared 2-core CPU; the papers
# train 256-320 epochs at 256 px over 5 seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/mvtec_ad_256/bottle}
OUT=${OUT:-runs/compare-bottle}
METHODS=${METHODS:-nsa-logistic,cutpaste-e2e,fpi,pii,cutpaste-3way,ssae}
SEEDS=${SEEDS:-0,1}
EPOCHS=${EPOCHS:-2}
IMAGE_SIZE=${IMAGE_SIZE:-128}
BATCH_SIZE=${BATCH_SIZE:-16}
OPTIONS=${OPTIONS:-"--option base_channels=16 --option stride_px=32"}
NSAD=${NSAD:-.venv/bin/nsad}

mkdir -p "$OUT"
start=$(date +%s)
# shellcheck disable=SC2086  # OPTIONS holds several words on purpose
"$NSAD" compare --data "$DATA" --methods "$METHODS" --seeds "$SEEDS" --epochs "$EPOCHS" \
    --image-size "$IMAGE_SIZE" --batch-size "$BATCH_SIZE" $OPTIONS --out "$OUT" --no-progress
seconds=$(( $(date +%s) - start ))
{
    echo "command: $NSAD compare --data $DATA --methods $METHODS --seeds $SEEDS --epochs $EPOCHS" \
         "--image-size $IMAGE_SIZE --batch-size $BATCH_SIZE $OPTIONS --out $OUT --no-progress"
    echo "wall time: ${seconds} s (this invocation; runs finished earlier are not counted)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "torch: $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
} | tee "$OUT/machine.txt"
