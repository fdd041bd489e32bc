#!/bin/sh
# Makes the Python package openapi-spec-validator (PyPI) available when it is missing and
# prints, on stdout, a Python interpreter that can run it as `python -m openapi_spec_validator`.
# Called by the OpenAPI test (crates/server/tests/api/openapi.rs), so a fresh machine or CI
# needs nothing installed by hand. Everything else this script says goes to stderr.
#
# A python3 that already has the package is used as it is. Otherwise the package goes into
# a virtual environment under target/ (ignored by git, removed by cargo clean): a venv needs
# no root and cannot collide with a distribution's externally managed Python.
set -eu
VERSION="0.9.0"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="${OPENAPI_VALIDATOR_VENV:-$ROOT/target/openapi-validator-venv}"

has_validator() {
    "$1" -c "import openapi_spec_validator" >/dev/null 2>&1
}

if command -v python3 >/dev/null 2>&1 && has_validator python3; then
    command -v python3
    exit 0
fi
if [ -x "$VENV/bin/python" ] && has_validator "$VENV/bin/python"; then
    echo "$VENV/bin/python"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is not installed; it is needed to validate the OpenAPI document" >&2
    exit 1
fi

echo "installing openapi-spec-validator $VERSION into $VENV ..." >&2
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
    "openapi-spec-validator==$VERSION" >&2
has_validator "$VENV/bin/python"
echo "$VENV/bin/python"
