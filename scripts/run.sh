#!/usr/bin/env bash
# Install (first time) and launch supportdesk on its embedded defaults: sample KB, sample adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [[ $# -eq 0 ]]; then
  # First run: build, evaluate and activate the sample brand-voice adapter (minutes on CPU).
  .venv/bin/supportdesk adapter bootstrap ||
    echo "supportdesk: the sample adapter could not be built (see above); starting with the bare base model" >&2
fi
exec .venv/bin/supportdesk "$@"
