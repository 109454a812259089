#!/usr/bin/env bash
# The device session's checks as one prepared script (issues 17 and 18). On a lent GPU machine it installs
# the carried wheels (bench/device/kit.py wheels, run here first) beside the image's packages, checks that
# every dependency is there, then runs the named steps in order and leaves their results in $OUT:
#
#   gpu-tests   the tests marked gpu (about a minute): the CUDA paths the CPU cannot test
#   train       octopi-serve train families-refine (7 min on an H200) -> $OUT/families-refine.tgz.part-*
#   models      bench_models: the shipped model against runs/families-refine/best (after train)
#   throughput  bench_gpu end to end (about 5 min on an H200)           -> $OUT/gpu-*.json
#
# From the session:  run(command="bash bench/device/run.sh train", carry=[".device"], timeout_s=590)
# Back here:         cat <files_at>/families-refine.tgz.part-* | tar -xzf - -C runs
# Overrides: TRAIN_CONFIG (a preset or file; its output_dir is what is packed), MODELS_ARGS, GPU_BENCH_ARGS,
# and PYTHON / WHEELS / SITE for a rehearsal on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.device/wheels}
SITE=${SITE:-/tmp/octopi-device-site}
OUT=${OUT:-/tmp/octopi-device-out}
TRAIN_CONFIG=${TRAIN_CONFIG:-families-refine}
mkdir -p "$OUT"

ls "$WHEELS"/*.whl >/dev/null || { echo "no wheels in $WHEELS: run 'make device-kit' first, carry .device" >&2; exit 2; }
"$PYTHON" -m pip install --quiet --upgrade --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
"$PYTHON" bench/device/kit.py check
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

output_dir() {  # where a training config writes its run
  "$PYTHON" -c 'import sys; from octopi_core.train.config import load_train_config; print(load_train_config(sys.argv[1]).output_dir)' "$1"
}

for step in "$@"; do
  echo "== $step ($(date -u +%H:%M:%S))"
  case "$step" in
    gpu-tests)
      "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA: the gpu tests would only skip"'
      "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/core
      ;;
    train)
      "$PYTHON" -m octopi_core.cli train "$TRAIN_CONFIG"
      run_dir=$(output_dir "$TRAIN_CONFIG")
      # One archive of the checkpoint and its curves, cut under the 16 MiB a returned file may have.
      name=$(basename "$run_dir")
      (cd "$(dirname "$run_dir")" && tar -czf - "$name/best" "$name/metrics.jsonl" "$name/curves.png") \
        | split -b 15m - "$OUT/$name.tgz.part-"
      ;;
    models)
      # shellcheck disable=SC2086  # MODELS_ARGS is a list of arguments
      "$PYTHON" bench/bench_models.py --models shipped "new=$(output_dir "$TRAIN_CONFIG")/best" \
        --layouts default fast ${MODELS_ARGS:-}
      cp "$(ls -t bench/results/models-*.json | head -1)" "$OUT/"
      ;;
    throughput)
      # shellcheck disable=SC2086  # GPU_BENCH_ARGS is a list of arguments
      "$PYTHON" bench/bench_gpu.py ${GPU_BENCH_ARGS:-}
      cp "$(ls -t bench/results/gpu-*.json | head -1)" "$OUT/"
      ;;
    *)
      echo "unknown step '$step': gpu-tests, train, models or throughput" >&2
      exit 2
      ;;
  esac
done
ls -la "$OUT"
