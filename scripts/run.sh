#!/usr/bin/env bash
# Install (first time) and launch supportdesk on its embedded defaults: sample KB, sample adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/supportdesk "$@"
