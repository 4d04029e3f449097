# Sourced by the scripts: makes sure $venv holds Kring and its pinned dependencies.
venv="${KRING_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ] || [ "$repo/requirements.lock" -nt "$venv/.kring-installed" ] \
    || [ "$repo/pyproject.toml" -nt "$venv/.kring-installed" ]; then
    echo "[venv] installing Kring and its pinned dependencies into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -c "$repo/requirements.lock" \
        -e "$repo[dev]" >&2
    touch "$venv/.kring-installed"
fi
