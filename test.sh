#!/usr/bin/env bash
# The project's test command: bootstraps .venv, then runs the whole suite.
#   ./test.sh            every test (SLURM tests run when a cluster answers, else they skip and say why)
#   ./test.sh quick      the quick local suite (no SLURM marker)
#   ./test.sh -- ARGS    extra pytest arguments, e.g. ./test.sh -- tests/metamath -x
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/scripts/bootstrap.sh" test
cd "$here"
args=()
if [ "${1:-}" = quick ]; then args+=(-m "not slurm"); shift; fi
[ "${1:-}" = "--" ] && shift
exec "$here/.venv/bin/python" -m pytest "${args[@]}" "$@"
