#!/usr/bin/env bash
# Create .venv and install supportdesk into it. Idempotent: a second run with unchanged
# dependency files takes a second. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.supportdesk-installed
want=$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)

if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ ! -x $VENV/bin/python ]]; then
  echo "supportdesk: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  # First, alone: otherwise a dependency pulls a multi-GB CUDA torch.
  echo "supportdesk: installing PyTorch 2.13.0 (CPU build)" >&2
  pip install -q torch==2.13.0
fi
echo "supportdesk: installing supportdesk and its dependencies into $VENV" >&2
pip install -q -c constraints.txt -e '.[test]'
echo "$want" > "$STAMP"
