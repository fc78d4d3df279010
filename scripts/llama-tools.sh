#!/usr/bin/env bash
# Builds llama.cpp's llama-completion (CPU only) from the llama.cpp tree vendored in the
# PyPI source package llama-cpp-python 0.3.36 (the reference pin), once, into a cache dir.
# Prints the bin directory. Used by the tests that load virtual files with llama.cpp.
set -euo pipefail
DIR=${GGUFS_LLAMA_DIR:-$HOME/.cache/ggufs-llama}
BIN="$DIR/build/bin"
if [ -x "$BIN/llama-completion" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$DIR/dl" "$DIR/src"
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq cmake ninja-build >&2
fi
python3 -m pip install -q --disable-pip-version-check scikit-build-core >&2
[ -f "$DIR/dl/llama_cpp_python-0.3.36.tar.gz" ] || \
  python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation \
    llama-cpp-python==0.3.36 -d "$DIR/dl" >&2
[ -d "$DIR/src/llama_cpp_python-0.3.36" ] || tar xzf "$DIR/dl/llama_cpp_python-0.3.36.tar.gz" -C "$DIR/src"
LL="$DIR/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
cmake -S "$LL" -B "$DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=ON >&2
cmake --build "$DIR/build" -j"$(nproc)" --target llama-completion >&2
echo "$BIN"
