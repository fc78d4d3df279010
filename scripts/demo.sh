#!/usr/bin/env bash
# The demo: serve the bundled SmolLM2 fixture through a local fake Hub, mount it with
# ggufs, and show that the virtual GGUF files are the reference converter's files (sha256
# against the bundled golden), readable by anything (and by llama.cpp if it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q --workspace --bins
BIN=target/debug
WORK=$(mktemp -d)
MNT="$WORK/models"; mkdir -p "$MNT"
PORT=${GGUFS_DEMO_PORT:-18555}
cleanup() {
  "$BIN/ggufs" unmount "$MNT" >/dev/null 2>&1 || true
  [ -n "${HUB_PID:-}" ] && kill "$HUB_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN/ggufs-fakehub" --root tests/fixtures/hub --port "$PORT" > "$WORK/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 50); do grep -q http "$WORK/hub.log" 2>/dev/null && break; sleep 0.1; done
export HF_ENDPOINT="http://127.0.0.1:$PORT"
REPO=HuggingFaceTB/SmolLM2-135M-Instruct

echo "== ggufs inspect $REPO (metadata only)"
"$BIN/ggufs" inspect "$REPO" --outtype q8_0 | sed -n '1,4p;/virtual GGUF/,/tokenizer.ggml.model/p'

echo; echo "== ggufs mount $MNT"
"$BIN/ggufs" mount "$MNT" --model "$REPO" --log-file "$WORK/ggufs.log"
ls -l "$MNT/$REPO"

echo; echo "== sha256 of each virtual file vs the reference converter's output (golden)"
for t in F32 F16 BF16 Q8_0; do
  got=$(sha256sum "$MNT/$REPO/SmolLM2-135M-Instruct-$t.gguf" | cut -c1-64)
  want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['file']['sha256'])" \
    "tests/fixtures/golden/$REPO/$t.json")
  [ "$got" = "$want" ] && echo "  $t: identical ($got)" || { echo "  $t: DIFFERENT ($got vs $want)"; exit 1; }
done
echo; echo "== sha256 of each virtual k-quant file vs llama-quantize on the reference F16 (tests/fixtures/kquant)"
for t in Q4_K_M Q5_K_M Q6_K Q4_0; do
  got=$(sha256sum "$MNT/$REPO/SmolLM2-135M-Instruct-$t.gguf" | cut -c1-64)
  want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['outputs'][sys.argv[2]]['sha256'])" \
    "tests/fixtures/kquant/$REPO.json" "$t")
  [ "$got" = "$want" ] && echo "  $t: identical ($got)" || { echo "  $t: DIFFERENT ($got vs $want)"; exit 1; }
done

LLAMA=${GGUFS_LLAMA_BIN:-$HOME/.cache/ggufs-llama/build/bin/llama-completion}
if [ -x "$LLAMA" ]; then
  echo; echo "== llama.cpp reading the virtual Q8_0 file straight from the mount (random weights: nonsense text)"
  "$LLAMA" -m "$MNT/$REPO/SmolLM2-135M-Instruct-Q8_0.gguf" -p "Hello" -n 8 --temp 0 -no-cnv --no-warmup 2>/dev/null
  echo
else
  echo; echo "(llama.cpp not built; scripts/llama-tools.sh builds it, then this demo also runs it on the mount)"
fi
echo; echo "== ggufs unmount"
"$BIN/ggufs" unmount "$MNT"
