#!/usr/bin/env bash
# Install (first time), check the import layers and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/lint-imports --no-cache --no-logo  # the layers in pyproject.toml only point down
exec .venv/bin/python -m pytest "$@"
