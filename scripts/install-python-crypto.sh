#!/bin/sh
# Makes the Python package `cryptography` (PyPI) available when it is missing and prints,
# on stdout, a Python interpreter that can import it. Called by the identity-token test
# (crates/server/tests/api/identity.rs), which checks tokens with scripts/verify-identity.py:
# a separate program that knows only the published key. Everything else goes to stderr.
#
# A python3 that already has the package is used as it is; otherwise it goes into a
# virtual environment under target/ (ignored by git), as install-openapi-validator.sh does.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="${PYTHON_CRYPTO_VENV:-$ROOT/target/python-crypto-venv}"

has_crypto() {
    "$1" -c "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey" >/dev/null 2>&1
}

if command -v python3 >/dev/null 2>&1 && has_crypto python3; then
    command -v python3
    exit 0
fi
if [ -x "$VENV/bin/python" ] && has_crypto "$VENV/bin/python"; then
    echo "$VENV/bin/python"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is not installed; it is needed to verify identity tokens independently" >&2
    exit 1
fi
echo "installing cryptography into $VENV ..." >&2
if ! python3 -m venv --clear "$VENV" >&2; then
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
    "cryptography>=41,<50" >&2
has_crypto "$VENV/bin/python"
echo "$VENV/bin/python"
