#!/bin/sh
# Makes the Python package `cryptography` (PyPI) available when it is missing and prints,
# on stdout, a Python interpreter that can import it. Called by the identity-token test
# (crates/server/tests/api/identity.rs), which checks tokens with scripts/verify-identity.py:
# a separate program that knows only the published key. The work is done by
# install-python-package.sh (a venv under target/ when the system Python lacks it).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec sh "$ROOT/scripts/install-python-package.sh" \
    "${PYTHON_CRYPTO_VENV:-$ROOT/target/python-crypto-venv}" \
    "cryptography>=41,<50" \
    "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey" \
    "to verify identity tokens independently"
