#!/bin/bash
# Regenerates src/quant/ggml/testdata/vectors.txt from the reference quantizers.
# Line format: <kind> <type|-> <dist> <nrows> <n_per_row> <seed> <value>
#   input: value = sha256 of the generated f32 input (checks the mirrored generator)
#   sha:   value = sha256 of the quantized bytes
#   hex:   value = the quantized bytes in hex (small cases, to locate a differing block)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
h=$(mktemp -d)/harness
"$here/build.sh" "$h" >/dev/null
out="$root/src/quant/ggml/testdata/vectors.txt"
types="Q8_0 Q4_0 Q6_K Q4_K Q5_K Q5_0 Q5_1"
{
  for dist in 0 1 2 3 4 5 6 7 8 9 10; do
    echo "input - $dist 4 512 $((1000 + dist)) $("$h" input $dist 4 512 $((1000 + dist)) | sha256sum | cut -d' ' -f1)"
  done
  for ty in $types; do
    for dist in 0 1 2 3 4 5 6 7 8 9 10; do
      echo "sha $ty $dist 4 512 $((1000 + dist)) $("$h" gen $ty $dist 4 512 $((1000 + dist)) | sha256sum | cut -d' ' -f1)"
    done
    echo "sha $ty 9 16 4096 42 $("$h" gen $ty 9 16 4096 42 | sha256sum | cut -d' ' -f1)"
    echo "hex $ty 9 1 256 5 $("$h" gen $ty 9 1 256 5 | xxd -p | tr -d '\n')"
    echo "hex $ty 7 1 256 6 $("$h" gen $ty 7 1 256 6 | xxd -p | tr -d '\n')"
  done
} > "$out"
echo "wrote $out ($(wc -l < "$out") cases)"
