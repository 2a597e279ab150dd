#!/usr/bin/env bash
# Mutation testing of the adversarial learning logic (issue 16, item 4), with mutmut 3.
#
#   scripts/mutation.sh                                   # every module below
#   scripts/mutation.sh core/adversarial/rewards.py ...   # only the modules named
#
# What it mutates: core/adversarial/*.py (rewards, replay, generation's selection and rollout logic, topology,
# workspace, settings) and the learning parts of the roles (jobs/_trainer.py, jobs/generator_trainer.py,
# jobs/prover_trainer.py, jobs/generator_actor.py, jobs/prover_actor.py): the list is [tool.mutmut] only_mutate
# in pyproject.toml. Which tests judge a mutant: only the fast targeted ones (tests/adversarial and
# tests/jobs/test_learning_logic.py and the other files of [tool.mutmut] pytest_add_cli_args_test_selection, such as
# tests/jobs/test_trainer_loop.py and tests/jobs/test_prover_trainer_job.py), never chaos, SLURM or the journey;
# mutmut runs, per mutant, only the tests that call the mutated function.
#
# It prints, per module and in total, the mutants killed, timed out, survived and left without a test, and the
# kill rate: (killed + timeout) / every mutant checked (mutmut's own score: a mutant that hangs the tests is
# caught). The goal is at least 90%. Surviving mutants can be read with `mutmut show NAME`.
#
# Needs the `mutation` extra (pip install -e '.[mutation]'), a POSIX system (mutmut forks), and the shared test
# data (ADVPROVER_SHARED_DATA, default ../shared/data). It works in ./mutants (a copy of the packages, ignored
# by git) and keeps mutmut's results there between runs: delete the folder for a fresh run. Parallelism:
# MUTATION_JOBS (default 2). It takes minutes per module on two cores (README, "Mutation testing").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python}"
MUTMUT="${MUTMUT:-mutmut}"
export ADVPROVER_SHARED_DATA="${ADVPROVER_SHARED_DATA:-$ROOT/../shared/data}"

if ! "$MUTMUT" --version >/dev/null 2>&1; then
    echo "mutation.sh: mutmut not found; install the extra with: pip install -e '.[mutation]'" >&2
    exit 2
fi

MODULES=("$@")
if [ ${#MODULES[@]} -eq 0 ]; then
    MODULES=(core/adversarial/rewards.py core/adversarial/replay.py core/adversarial/settings.py
             core/adversarial/topology.py core/adversarial/workspace.py core/adversarial/generation.py
             jobs/prover_trainer.py jobs/generator_trainer.py jobs/_trainer.py
             jobs/generator_actor.py jobs/prover_actor.py)
fi

PATTERNS=()
DOTTED=()
for module in "${MODULES[@]}"; do
    if [ ! -f "$module" ]; then
        echo "mutation.sh: no module $module; name files such as core/adversarial/rewards.py" >&2
        exit 2
    fi
    dotted="${module%.py}"
    dotted="${dotted//\//.}"
    DOTTED+=("$dotted")
    PATTERNS+=("$dotted.*")
done

echo "mutation.sh: mutating ${MODULES[*]} (logs in mutants/mutation-run.log)"
mkdir -p mutants
start=$(date +%s)
if ! "$MUTMUT" run --max-children "${MUTATION_JOBS:-2}" "${PATTERNS[@]}" >mutants/mutation-run.log 2>&1; then
    echo "mutation.sh: mutmut run failed; see mutants/mutation-run.log" >&2
    exit 1
fi
echo "mutation.sh: mutmut ran for $(( $(date +%s) - start )) s"

"$MUTMUT" results --all true 2>/dev/null | "$PYTHON" scripts/mutation_report.py "${DOTTED[@]}"
