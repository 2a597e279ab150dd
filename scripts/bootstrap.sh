#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent, quiet when nothing changed).
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. scripts/bootstrap.sh test,bench
set -euo pipefail
# Under `set -e -o pipefail` a command that "fails" harmlessly (grep selecting nothing, `[ ... ] && x` as
# a statement) ends the script silently: this script uses `if` for tests and no filter that can fail.
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

# The union of two comma-separated lists of extras, sorted, without duplicates or empty items ("" if none).
union_of_extras() {
  local item
  local -a items=()
  for item in ${1//,/ } ${2//,/ }; do items+=("$item"); done
  if [ "${#items[@]}" -gt 0 ]; then
    printf '%s\n' "${items[@]}" | sort -u | paste -sd, -
  fi
}

if [ -f "$stamp" ]; then  # the extras installed are kept when pyproject.toml changes (reinstalled with it)
  stamp_line=$(<"$stamp")
  case "$stamp_line" in *" extras="*) installed=${stamp_line#* extras=} ;; esac
  if [ "${stamp_line%% *}" = "$hash" ]; then current=1; fi
fi
for extra in ${extras//,/ }; do
  case ",$installed," in *",$extra,"*) ;; *) current="" ;; esac
done
if [ -z "$current" ]; then
  union=$(union_of_extras "$installed" "$extras")
  echo "bootstrap: installing advprover${union:+[$union]} and its dependencies into $venv (torch==2.13.0 takes about a minute)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  spec="$here"
  if [ -n "$union" ]; then spec="$here[$union]"; fi
  "$venv/bin/python" -m pip install --quiet -e "$spec"
  echo "$hash extras=$union" > "$stamp"
fi
