#!/usr/bin/env bash
# advprover's launcher: bootstraps .venv, then hands over to the Python launcher (jobs/launch.py).
#   ./launch.sh                      the main job: a bounded local adversarial run on the default database
#   ./launch.sh local|slurm ...      see `./launch.sh --help`
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/scripts/bootstrap.sh"
exec "$here/.venv/bin/python" -m jobs.launch "$@"
