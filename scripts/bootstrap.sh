#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent, quiet when nothing changed).
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. scripts/bootstrap.sh test,bench
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-}
venv="$here/.venv"
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "bootstrap: advprover needs Python >= 3.10 ($python is $("$python" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.advprover-stamp"
want="$(sha256sum "$here/pyproject.toml" | cut -c1-16) extras=$extras"
if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
  echo "bootstrap: installing advprover${extras:+[$extras]} and its dependencies into $venv (torch==2.13.0 takes about a minute)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  spec="$here"
  [ -n "$extras" ] && spec="$here[$extras]"
  "$venv/bin/python" -m pip install --quiet -e "$spec"
  echo "$want" > "$stamp"
fi
