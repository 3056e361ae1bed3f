#!/usr/bin/env bash
# Install (first time) and launch supportdesk on its embedded defaults: sample KB, sample adapter.
# The app opens at once: on the first run it builds the sample adapter in a background process
# (low priority) and answers with the bare base model until the adapter has passed its evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/supportdesk "$@"
