#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, in about 5 minutes,
#   1. a short `tiny` adversarial run with every role's models on the device (checked in the jobs' logs);
#   2. training steps/s of the `small` and `base` provers on the device against the CPU (benchmarks/training.py);
#   3. batched decoding tokens/s and expansions/s of a model policy on the device (benchmarks/search.py);
#   4. a prover trainer trained on the device, resumed on the CPU, and back: its step, weights and optimizer
#      state carried over (scripts/device_resume_check.py);
#   5. with two GPUs or more, a 2-rank data-parallel prover trainer (nccl).
# Usage: scripts/gpu_check.sh [--device cuda|cpu] [--out DIR] [--minutes M]
# `--device cpu` runs the same steps on the CPU (smaller sizes), to check the script's own logic anywhere.
# The figures it prints go into the README's benchmark table when a GPU machine is available.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
device=cuda out="" minutes=1.5
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in cpu|cuda|cuda:[0-9]*) ;; *) echo "gpu_check: --device must be cpu or cuda[:N], got $device" >&2; exit 2 ;; esac
"$here/scripts/bootstrap.sh"
python="$here/.venv/bin/python"
cd "$here"
out=${out:-$(mktemp -d -t advprover-gpu-check-XXXXXX)}
mkdir -p "$out"
gpus=$("$python" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [ "$device" != cpu ] && [ "$gpus" = 0 ]; then
  echo "gpu_check: --device $device but torch sees no CUDA GPU here; use --device cpu to check the script" >&2
  exit 2
fi
echo "== gpu_check: device $device ($gpus CUDA GPUs), results in $out"
failed=0

echo "== 1. a tiny adversarial run with every model on $device"
sets=()
for role in generator_actor prover_actor generator_trainer prover_trainer evaluator; do
  sets+=(--set "$role.device=$device")
done
if ADVPROVER_THREADS=1 ./launch.sh local --preset tiny --exp "$out/tiny" --minutes "$minutes" "${sets[@]}" \
    > "$out/tiny.log" 2>&1; then
  tail -n 12 "$out/tiny.log"
else
  echo "gpu_check: the tiny run failed (its output: $out/tiny.log)"; tail -n 30 "$out/tiny.log"; failed=1
fi
placed=$(grep -rhoE "models run on [a-z0-9:]+" "$out/tiny/runs" 2>/dev/null | sort | uniq -c || true)
echo "$placed"
if ! grep -q "models run on ${device%%:*}" <<<"$placed" || grep -v "models run on ${device%%:*}" <<<"$placed" | grep -q .; then
  echo "gpu_check: not every job ran its models on $device"; failed=1
fi

echo "== 2. training steps/s on $device against the CPU"
if [ "$device" = cpu ]; then
  training=(--cpu-only --sizes tiny small --seconds 3 --steps 30 --threads 1)
else
  training=(--sizes small base --seconds 10 --steps 100)
fi
"$python" benchmarks/training.py "${training[@]}" --json "$out/training.json" || failed=1

echo "== 3. batched decoding on $device"
size=$([ "$device" = cpu ] && echo tiny || echo small)
"$python" benchmarks/search.py --policy model --model-size "$size" --devices "$device" --theorems 16 \
    --batch 16 --expansions 8 || failed=1

echo "== 4. a prover trainer resumed across devices ($([ "$device" = cpu ] && echo "cpu -> cpu -> cpu" || echo "$device -> cpu -> $device"))"
"$python" scripts/device_resume_check.py --device "$device" --out "$out" || failed=1

if [ "$gpus" -ge 2 ] && [ "$device" != cpu ]; then
  echo "== 5. a 2-rank data-parallel prover trainer (nccl)"
  if ! ./launch.sh local --preset tiny --exp "$out/group" --minutes 1 --set prover_trainer.count=2 "${sets[@]}" \
      > "$out/group.log" 2>&1; then
    echo "gpu_check: the 2-rank run failed ($out/group.log)"; tail -n 30 "$out/group.log"; failed=1
  fi
else
  echo "== 5. skipped: a 2-rank group needs two GPUs"
fi
echo "== gpu_check: $([ $failed = 0 ] && echo passed || echo FAILED) (logs and JSON in $out)"
exit $failed
