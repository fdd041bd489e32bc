#!/bin/sh
# Makes the Python package openapi-spec-validator (PyPI) available when it is missing and
# prints, on stdout, a Python interpreter that can run it as `python -m openapi_spec_validator`.
# Called by the OpenAPI test (crates/server/tests/api/openapi.rs); the work is done by
# install-python-package.sh (a venv under target/ when the system Python lacks it).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec sh "$ROOT/scripts/install-python-package.sh" \
    "${OPENAPI_VALIDATOR_VENV:-$ROOT/target/openapi-validator-venv}" \
    "openapi-spec-validator==0.9.0" \
    "import openapi_spec_validator" \
    "to validate the OpenAPI document"
