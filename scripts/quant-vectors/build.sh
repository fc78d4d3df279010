#!/bin/bash
# Builds ./harness against the reference build's libggml-base.a (the library llama-quantize
# links), so the quantizers are the very objects llama-quantize runs.
set -eu
. /root/.cache/ggufs-reference/env.sh
here=$(cd "$(dirname "$0")" && pwd)
build=/root/.cache/ggufs-reference/build
out=${1:-$here/harness}
# -ffp-contract=off and no -march: the generator's f32 arithmetic must round exactly like Rust's.
cc -O2 -ffp-contract=off -std=gnu11 -I"$LLAMA_CPP/ggml/include" "$here/harness.c" \
   "$build/ggml/src/libggml-base.a" -fopenmp -lstdc++ -lm -lpthread -o "$out"
echo "$out"
