#!/usr/bin/env bash
# Installs the Python side of the ADBC / Flight SQL integration test:
# a virtualenv holding adbc-driver-flightsql and pyarrow from PyPI.
#
#   GRIDHUB_PY_VENV   where the venv lives (default: $HOME/.cache/gridhub-py)
#   GRIDHUB_PYTHON    interpreter used to create it (default: python3)
#
# Idempotent: when the packages are already importable in the venv it does
# nothing but print the path. The last stdout line is always the venv's
# python; everything else goes to stderr.
set -euo pipefail

VENV="${GRIDHUB_PY_VENV:-$HOME/.cache/gridhub-py}"
PY="${GRIDHUB_PYTHON:-python3}"
VPY="$VENV/bin/python"
PACKAGES=(adbc-driver-flightsql pyarrow)

log() { echo "setup.sh: $*" >&2; }

# True when the venv's python runs and can find both packages (find_spec
# does not import them, which keeps the already-installed path fast).
have_packages() {
    [ -x "$VPY" ] && "$VPY" - <<'EOF' >/dev/null 2>&1
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in
                  ("adbc_driver_flightsql", "adbc_driver_manager", "pyarrow")) else 1)
EOF
}

if have_packages; then
    echo "$VPY"
    exit 0
fi

make_venv() {
    # $1: interpreter
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$1" -m venv "$VENV" >&2
}

venv_ok() { [ -x "$VPY" ] && "$VPY" -m pip --version >/dev/null 2>&1; }

if ! venv_ok; then
    log "creating virtualenv at $VENV with $PY"
    if ! make_venv "$PY" || ! venv_ok; then
        # Debian's python3 ships venv/ensurepip separately.
        if command -v apt-get >/dev/null 2>&1; then
            log "python3 -m venv failed; installing Debian's python3-venv"
            apt-get update -qq >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        fi
        if ! { make_venv "$PY" && venv_ok; }; then
            # python3-venv belongs to the system interpreter, which may not
            # be the python3 first on PATH (e.g. pyenv).
            if [ -x /usr/bin/python3 ] && make_venv /usr/bin/python3 && venv_ok; then
                :
            else
                log "could not create a virtualenv at $VENV"
                exit 1
            fi
        fi
    fi
fi

log "installing ${PACKAGES[*]} into $VENV"
"$VPY" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2

if ! have_packages; then
    log "packages still not importable after pip install"
    exit 1
fi
echo "$VPY"
