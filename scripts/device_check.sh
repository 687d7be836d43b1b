#!/usr/bin/env bash
# The GPU check, in one go: ./scripts/device_check.sh OUTDIR
#
# On a machine with a CUDA GPU (about 4-6 minutes, at most 8):
#   1. the CUDA-only tests (every test with "cuda" in its name under tests/synth and the device-synthesis
#      training tests)                                                   -> OUTDIR/cuda_tests.json
#   2. scripts/bench_device_synth.py: patches/s and examples/s by batch size, CPU and CUDA
#                                                                        -> OUTDIR/bench_device_synth.json
#   3. a short bottle training (256 px, batch 64, bf16-mixed) with the loader path and with --synth-on-device:
#      seconds per epoch, images per second, peak GPU memory              -> OUTDIR/training.json
# plus OUTDIR/machine.json (GPU, driver, torch, CPUs, load) and OUTDIR/summary.json (what ran, what was skipped,
# seconds per step).
# On a machine without CUDA it says so, skips the CUDA tests and the CUDA rows, and runs the CPU parts at a tiny
# size (64-patch batches, an 80-px training of 16 examples, no held-out images) only to show that the script
# works; there the time limits are looser (a busy 2-core CPU takes minutes for that).
#
# The data default to the MVTec AD bottle folder beside the repository (../shared/data/mvtec_ad_256/bottle);
# set NSAD_BOTTLE to point elsewhere. Uses .venv/bin/python when present, else python3.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DATA=${NSAD_BOTTLE:-$ROOT/../shared/data/mvtec_ad_256/bottle}
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
START=$(date +%s)

if ! [ -d "$DATA/train/good" ]; then
    echo "device_check: no bottle data at $DATA (set NSAD_BOTTLE)" >&2
    exit 2
fi
CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
"$PY" - "$OUT/machine.json" <<'EOF'
import json, os, platform, subprocess, sys
import torch
info = {"cuda": torch.cuda.is_available(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()]}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,mig.mode.current",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        info["nvidia_smi"] = f"unavailable: {error}"
open(sys.argv[1], "w").write(json.dumps(info, indent=1) + "\n")
print("device_check: machine", json.dumps(info))
EOF

declare -A STATUS SECONDS_OF
step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, record its status and seconds
    local name=$1 limit=$2
    shift 2
    local begin=$(date +%s)
    timeout "$limit" "$@"
    local rc=$?
    STATUS[$name]=$([ $rc -eq 0 ] && echo ok || { [ $rc -eq 124 ] && echo "timed out after ${limit}s" || echo "failed ($rc)"; })
    SECONDS_OF[$name]=$(( $(date +%s) - begin ))
    echo "device_check: $name: ${STATUS[$name]} in ${SECONDS_OF[$name]} s"
}

if [ "$CUDA" = 1 ]; then
    echo "device_check: CUDA found; running the CUDA tests, the device benchmark and the GPU trainings"
    step cuda_tests 180 "$PY" -m pytest -q -p no:cacheprovider -rs -k cuda --junitxml="$OUT/cuda_tests.xml" \
        tests/synth tests/pipeline/test_device_synth_training.py
    step bench_device_synth 150 bash -c "'$PY' scripts/bench_device_synth.py --data '$DATA' --batches 64 256 1024 \
        > '$OUT/bench_device_synth.jsonl'"
    step training 240 "$PY" scripts/device_train_probe.py --data "$DATA" --image-size 256 --batch-size 64 \
        --extra-epochs 3 --out "$OUT/training.json"
else
    echo "device_check: no CUDA device here: the CUDA tests, the CUDA benchmark rows and the GPU trainings are" \
         "skipped; the CPU parts run at a tiny size only to show that the script works"
    STATUS[cuda_tests]="skipped: no CUDA device"
    SECONDS_OF[cuda_tests]=0
    step bench_device_synth 300 bash -c "'$PY' scripts/bench_device_synth.py --data '$DATA' --images 16 \
        --batches 64 --repeats 1 --devices cpu > '$OUT/bench_device_synth.jsonl'"
    step training 900 "$PY" scripts/device_train_probe.py --data "$DATA" --image-size 80 --batch-size 8 \
        --examples-per-epoch 16 --extra-epochs 1 --workers 0 --holdout 0 --out "$OUT/training.json"
fi

"$PY" - "$OUT" "$CUDA" "$(( $(date +%s) - START ))" \
    "cuda_tests=${STATUS[cuda_tests]}|${SECONDS_OF[cuda_tests]}" \
    "bench_device_synth=${STATUS[bench_device_synth]}|${SECONDS_OF[bench_device_synth]}" \
    "training=${STATUS[training]}|${SECONDS_OF[training]}" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path
out, cuda, total = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
steps = {}
for item in sys.argv[4:]:
    name, rest = item.split("=", 1)
    status, seconds = rest.rsplit("|", 1)
    steps[name] = {"status": status, "seconds": int(seconds)}
junit = out / "cuda_tests.xml"
if junit.is_file():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = [{"test": f"{c.get('classname')}::{c.get('name')}", "seconds": float(c.get("time", 0)),
              "outcome": "failed" if c.find("failure") is not None or c.find("error") is not None
              else "skipped" if c.find("skipped") is not None else "passed"} for c in suite.iter("testcase")]
    (out / "cuda_tests.json").write_text(json.dumps({"tests": cases, "counts": {
        k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "skipped")}}, indent=1) + "\n")
    junit.unlink()
bench = out / "bench_device_synth.jsonl"
if bench.is_file():
    rows = [json.loads(line) for line in bench.read_text().splitlines() if line.strip()]
    (out / "bench_device_synth.json").write_text(json.dumps(rows, indent=1) + "\n")
    bench.unlink()
summary = {"cuda": cuda, "total_seconds": total, "steps": steps,
           "files": sorted(p.name for p in out.iterdir() if p.name != "summary.json"),
           "note": None if cuda else "no CUDA device: CUDA tests, CUDA benchmark rows and GPU trainings skipped; "
                                     "CPU parts at a tiny size"}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print("device_check:", json.dumps(summary))
EOF
for name in cuda_tests bench_device_synth training; do
    case ${STATUS[$name]} in ok|skipped*) ;; *) exit 1 ;; esac
done
