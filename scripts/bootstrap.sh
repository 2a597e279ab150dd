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
stamp="$venv/.advprover-stamp"  # "<pyproject hash> extras=<what is installed, comma-separated>"
hash="$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
current="" installed=""
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$hash" ]; then
  current=1 installed=$(sed -n 's/^.* extras=//p' "$stamp")
fi
for extra in ${extras//,/ }; do
  case ",$installed," in *",$extra,"*) ;; *) current="" ;; esac
done
if [ -z "$current" ]; then
  union=$(echo "$installed,$extras" | tr ',' '\n' | grep -v '^$' | sort -u | paste -sd, -)
  echo "bootstrap: installing advprover${union:+[$union]} and its dependencies into $venv (torch==2.13.0 takes about a minute)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  spec="$here"
  [ -n "$union" ] && spec="$here[$union]"
  "$venv/bin/python" -m pip install --quiet -e "$spec"
  echo "$hash extras=$union" > "$stamp"
fi
