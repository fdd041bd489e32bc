#!/bin/sh
# Makes a Python package from PyPI importable when it is missing and prints, on stdout, a
# Python interpreter that can import it. Shared by install-openapi-validator.sh and
# install-python-crypto.sh, which the tests call, so a fresh machine or CI needs nothing
# installed by hand. Everything else this script says goes to stderr.
#
# usage: install-python-package.sh VENV_DIR PIP_REQUIREMENT PYTHON_IMPORT_STATEMENT WHY
#
# A python3 that can already run the import is used as it is. Otherwise the package goes
# into a virtual environment at VENV_DIR (under target/, ignored by git): a venv needs no
# root and cannot collide with a distribution's externally managed Python.
set -eu
VENV="$1"
REQUIREMENT="$2"
IMPORT="$3"
WHY="$4"

has_it() {
    "$1" -c "$IMPORT" >/dev/null 2>&1
}

if command -v python3 >/dev/null 2>&1 && has_it python3; then
    command -v python3
    exit 0
fi
if [ -x "$VENV/bin/python" ] && has_it "$VENV/bin/python"; then
    echo "$VENV/bin/python"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is not installed; it is needed $WHY" >&2
    exit 1
fi

echo "installing $REQUIREMENT into $VENV ..." >&2
# --clear: an interrupted earlier attempt may have left a venv without the package.
if ! python3 -m venv --clear "$VENV" >&2; then
    # Debian ships the venv module separately.
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            SUDO="sudo"
        fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-venv >&2
        python3 -m venv --clear "$VENV" >&2
    else
        exit 1
    fi
fi
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet --no-input \
    "$REQUIREMENT" >&2
has_it "$VENV/bin/python"
echo "$VENV/bin/python"
