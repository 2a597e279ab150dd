#!/usr/bin/env bash
# Issue 17's measurements on a GPU machine, in one call: search speed (item 6) and the learned provers at 200
# expansions on the GPU against the model-free baseline at 200 and 2000 expansions on one CPU core, on prop.mm's
# test split and the seeded tautologies (goal 1, "at no more wall-clock", on the same machine).
#
#   benchmarks/provers_gpu.sh CHECKPOINT DATABASE OUT_FOLDER
#
# The baselines run beside the GPU runs (CPU only, one thread each); the GPU runs go one after another, so that
# their timings share the GPU with nothing. Each step has a time limit and writes its own file, so a run cut
# short still returns what it finished. Settings through the environment: PYTHON (python3), DEVICE (cuda),
# BATCH (searches together on the GPU: 90), THEOREMS (90), TAUTOLOGIES (90), LOW/HIGH (200/2000 expansions),
# SPEED_THEOREMS/SPEED_EXPANSIONS (32/16), LIMIT_S (170 s per learned step).
set -u
checkpoint=$1 database=$2 out=$3
py=${PYTHON:-python3} device=${DEVICE:-cuda} batch=${BATCH:-90} limit=${LIMIT_S:-170}
theorems=${THEOREMS:-90} tautologies=${TAUTOLOGIES:-90} low=${LOW:-200} high=${HIGH:-2000}
speed_theorems=${SPEED_THEOREMS:-32} speed_expansions=${SPEED_EXPANSIONS:-16}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
    "$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    echo "cpus $(nproc)"
} | tee "$out/env.txt"
baselines=("$py" benchmarks/provers.py --database "$database" --threads 1 --seconds 0 --device cpu --provers baseline)
provers=("$py" benchmarks/provers.py --database "$database" --checkpoint "$checkpoint" --threads 1 --seconds 0)
"${baselines[@]}" --expansions "$low,$high" --theorems "$theorems" --tautologies 0 >"$out/baseline-test.txt" 2>&1 &
"${baselines[@]}" --expansions "$low,$high" --theorems 0 --tautologies "$tautologies" \
    >"$out/baseline-tautologies.txt" 2>&1 &
timeout 150 "$py" benchmarks/search.py --database "$database" --checkpoint "$checkpoint" --prover backward,htps \
    --policy baseline,merged --theorems "$speed_theorems" --expansions "$speed_expansions" \
    --batch "$speed_theorems" --devices "$device" --threads 1 >"$out/search.txt" 2>&1
echo "search: exit $?"
timeout "$limit" "${provers[@]}" --device "$device" --batch "$batch" --expansions "$low" --theorems "$theorems" \
    --tautologies 0 --provers merged,htps >"$out/learned-test.txt" 2>&1
echo "learned test: exit $?"
timeout "$limit" "${provers[@]}" --device "$device" --batch "$batch" --expansions "$low" --theorems 0 \
    --tautologies "$tautologies" --provers merged,htps >"$out/learned-tautologies.txt" 2>&1
echo "learned tautologies: exit $?"
wait
echo "baselines: done"
tail -n +1 "$out"/*.txt
