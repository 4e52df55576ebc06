# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: make sure the project's virtualenv exists and
# holds requirements-dev.lock, then put it first on PATH.
#
#   RECSITE_VENV   the virtualenv directory (default: <repo>/.venv)
#   PYTHON         the interpreter that creates it (default: python3, must be >= 3.11)
#
# Dependencies come from requirements-dev.lock (every package pinned, with hashes; made
# from requirements*.txt by scripts/lock) and are (re)installed only when a requirements
# or lock file or the interpreter changed: a stamp file in the virtualenv records the hash
# of what was last installed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECSITE_VENV:-$ROOT/.venv}"
export RECSITE_VENV="$VENV"

_venv_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
_venv_die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

_venv_requirements_hash() {
    # Every requirements and lock file, plus the interpreter version.
    {
        cat "$ROOT"/requirements*.txt "$ROOT"/requirements*.lock
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        local python="${PYTHON:-python3}"
        command -v "$python" >/dev/null \
            || _venv_die "$python not found: install Python 3.11 or newer (apt-get install python3 python3-venv)."
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || _venv_die "$python is $("$python" -V 2>&1); recsite needs Python 3.11 or newer (set PYTHON=...)."
        _venv_say "Creating the virtualenv $VENV"
        "$python" -m venv "$VENV" \
            || _venv_die "could not create $VENV (on Debian: apt-get install python3-venv)."
    fi

    local stamp="$VENV/.recsite-requirements.sha256" wanted
    wanted="$(_venv_requirements_hash)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
        _venv_say "Installing requirements-dev.lock into $VENV (requirements changed or first run)"
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip \
            || _venv_die "pip could not upgrade itself (is PyPI reachable?)."
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
            --require-hashes -r "$ROOT/requirements-dev.lock" \
            || _venv_die "installing requirements-dev.lock failed (see pip's output above)."
        printf '%s\n' "$wanted" >"$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
    export VIRTUAL_ENV="$VENV"
}
