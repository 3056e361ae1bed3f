#!/usr/bin/env bash
# Build llama.cpp's C++ OpenAI-compatible server (llama-server: parallel slots, continuous
# batching) from the llama.cpp sources vendored in the llama-cpp-python release supportdesk
# pins, so it runs the same GGUF and LoRA code as the embedded backend. Optional: only the
# benchmark rows of 'bench/generation.py --llama-server .llama-server/bin/llama-server' use it.
# Takes about 10 minutes on 2 cores; the result lives in .llama-server/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(grep -o 'llama-cpp-python==[0-9.]*' constraints.txt | cut -d= -f3)
OUT=.llama-server
if [[ -x $OUT/bin/llama-server ]]; then
  echo "$OUT/bin/llama-server is built"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$VERSION"
tar xzf "$work"/llama_cpp_python-"$VERSION".tar.gz -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$work/build" --target llama-server -j"$(nproc)"
mkdir -p "$OUT/bin"
cp "$work/build/bin/llama-server" "$OUT/bin/"
echo "built $OUT/bin/llama-server (llama.cpp vendored in llama-cpp-python $VERSION)"
