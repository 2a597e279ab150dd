#!/usr/bin/env bash
# The project's test command: bootstraps .venv, then runs the whole suite.
#   ./test.sh            every test (SLURM tests run when a cluster answers, else they skip and say why)
#   ./test.sh quick      the quick local suite (no SLURM marker)
#   ./test.sh -- ARGS    extra pytest arguments, e.g. ./test.sh -- tests/metamath -x (one pytest run, as given)
# Without ARGS the suite runs in two parts: the tests not marked slow on $ADVPROVER_TEST_WORKERS pytest-xdist
# workers (default 2), then the slow ones (whole runs of processes, timed) one at a time; both parts always
# run, and the exit status is 1 if either failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/scripts/bootstrap.sh" test
cd "$here"
select=()
quick=""
if [ "${1:-}" = quick ]; then select=(-m "not slurm"); quick=1; shift; fi
[ "${1:-}" = "--" ] && shift
pytest=("$here/.venv/bin/python" -m pytest)
if [ "$#" -gt 0 ]; then
  exec "${pytest[@]}" "${select[@]}" "$@"
fi
slow="slow or slurm"
if [ -n "$quick" ]; then slow="slow and not slurm"; fi
status=0
if ! "${pytest[@]}" -m "not slow and not slurm" -n "${ADVPROVER_TEST_WORKERS:-2}"; then status=1; fi
if ! "${pytest[@]}" -m "$slow"; then status=1; fi
exit "$status"
