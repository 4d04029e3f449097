#!/usr/bin/env bash
# Re-pin requirements.lock from pyproject.toml: resolve in a throwaway venv, freeze it.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -e '.[dev]'
{
  echo "# Pinned transitive dependencies: pip install -c requirements.lock -e '.[dev]'"
  echo "# Regenerate after changing pyproject.toml: scripts/lock.sh"
  grep -o 'setuptools==[0-9.]*' pyproject.toml
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^kring'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) pins"
