#!/usr/bin/env bash
# The paper's variant against the authors' on MVTec AD bottle: ./scripts/variants_bottle.sh [OUT]
#
# Trains nsa-logistic with --variant paper and --variant authors, 3 seeds each, at 100 epochs in bf16-mixed
# (`nsad compare`, so an interrupted run continues where it stopped: run the same command again), plus one
# fp32 run of the paper variant (seed 0) against bf16, evaluates all of them and writes OUT/variants.md:
# image AUROC, pixel AUROC and AU-PRO as mean ± standard deviation over the seeds (the standard error in
# brackets), and seconds per epoch. On this project's 2-core CPU one bf16 run takes about 16 min quiet
# (9.4 s/epoch), the fp32 run about 27 min: about 2 h in all; a GPU is much faster.
#
# Settings through the environment, e.g. a smoke test of the whole script:
#   EPOCHS=2 SEEDS=0 IMAGE_SIZE=96 BATCH=16 FP32=0 scripts/variants_bottle.sh /tmp/variants-smoke
# EPOCHS (100), SEEDS (0,1,2), IMAGE_SIZE (256), BATCH (64), PRECISION (bf16-mixed), FP32 (1: also the fp32
# run), DATA (../shared/data/mvtec_ad_256/bottle), WORKERS (nsad's default).
set -eu -o pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-runs/variants-bottle}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0,1,2}
IMAGE_SIZE=${IMAGE_SIZE:-256}
BATCH=${BATCH:-64}
PRECISION=${PRECISION:-bf16-mixed}
FP32=${FP32:-1}
DATA=${DATA:-$ROOT/../shared/data/mvtec_ad_256/bottle}
NSAD=${NSAD:-$([ -x .venv/bin/nsad ] && echo .venv/bin/nsad || echo nsad)}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
COMMON=(--data "$DATA" --epochs "$EPOCHS" --image-size "$IMAGE_SIZE" --batch-size "$BATCH" --no-progress)
[ -n "${WORKERS:-}" ] && COMMON+=(--workers "$WORKERS")

mkdir -p "$OUT"
echo "variants_bottle: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), into $OUT"
# Seed by seed, both variants each time, so that an interrupted measurement still compares them.
IFS=, read -ra SEED_LIST <<< "$SEEDS"
SEEDS_SO_FAR=
for seed in "${SEED_LIST[@]}"; do
    SEEDS_SO_FAR=${SEEDS_SO_FAR:+$SEEDS_SO_FAR,}$seed
    for variant in paper authors; do
        "$NSAD" compare "${COMMON[@]}" --methods nsa-logistic --seeds "$SEEDS_SO_FAR" --variant "$variant" \
            --precision "$PRECISION" --out "$OUT/$variant"
    done
done
if [ "$FP32" = 1 ]; then
    FP32_RUN=$OUT/fp32/nsa-logistic/seed0
    if ! [ -f "$FP32_RUN/run.json" ]; then
        RESUME=()
        [ -f "$FP32_RUN/checkpoints/last.ckpt" ] && RESUME=(--resume)
        BEGIN=$(date +%s)
        "$NSAD" train "${COMMON[@]}" --seed 0 --precision 32-true --out "$FP32_RUN" "${RESUME[@]}"
        [ ${#RESUME[@]} -eq 0 ] && echo $(( $(date +%s) - BEGIN )) > "$OUT/fp32/train_seconds.txt"
    fi
    [ -f "$FP32_RUN/metrics.json" ] || "$NSAD" evaluate --run "$FP32_RUN" > /dev/null
fi

"$PY" - "$OUT" "$EPOCHS" "$PRECISION" <<'EOF'
import csv, json, math, sys
from pathlib import Path
from nsad.metrics import mean_sem
out, epochs, precision = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keys = ("image_auroc", "pixel_auroc", "aupro")
lines = ["| variant | precision | seeds | image AUROC | pixel AUROC | AU-PRO | s / epoch |", "|---|---|---|---|---|---|---|"]
for variant in ("paper", "authors"):
    runs = sorted((out / variant / "nsa-logistic").glob("seed*"))
    metrics = [json.loads((run / "metrics.json").read_text())["metrics"] for run in runs]
    seconds = [json.loads((run / "compare.json").read_text()).get("train_seconds") for run in runs]
    finite = [s / epochs for s in seconds if s is not None]
    cells = [mean_sem([m[k] for m in metrics]).format(spread="std+sem") for k in keys]
    per_epoch = f"{sum(finite) / len(finite):.1f}" if finite else "n/a"
    lines.append(f"| {variant} | {precision} | {len(runs)} | " + " | ".join(cells) + f" | {per_epoch} |")
fp32 = out / "fp32" / "nsa-logistic" / "seed0" / "metrics.json"
if fp32.is_file():
    metrics = json.loads(fp32.read_text())["metrics"]
    timing = out / "fp32" / "train_seconds.txt"
    per_epoch = f"{float(timing.read_text().split()[-1]) / epochs:.1f}" if timing.is_file() else "n/a"
    lines.append("| paper | 32-true | 1 (seed 0) | " + " | ".join(f"{100 * metrics[k]:.1f}" for k in keys)
                 + f" | {per_epoch} |")
text = (f"# nsa-logistic on bottle: paper vs authors variant, {epochs} epochs\n\n"
        "Mean ± standard deviation over the seeds (ddof 1), the standard error in brackets (se), in %; "
        "AU-PRO up to FPR 0.3. Seconds per epoch: wall time of the whole training (setup and threshold "
        "included) divided by the epochs.\n\n" + "\n".join(lines) + "\n")
(out / "variants.md").write_text(text)
print(text)
EOF
