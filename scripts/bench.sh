#!/usr/bin/env bash
# Speed benchmark (README "Benchmarks"; not part of CI). Builds release, serves a generated
# ~1 GiB BF16 Llama-style repo from the fake Hub, and prints six figures side by side, one line
# each: "figure: value, ratio X (target >= Y) PASS/FAIL". Exits non-zero if a figure cannot be
# measured (a missed target is reported, not an error).
#
# Environment: GGUFS_SHARED_DIR (default ../shared), BENCH_DIR (work dir, default /tmp/ggufs-bench;
# the generated model is kept there between runs), BENCH_PORT (default 18600), BENCH_LAYERS (10),
# BENCH_RUNS (3): timings of figures 1-4 are the median of that many runs on each side (one
# run swings by ±30 % on a small shared VM); the reference converter runs once (it takes
# 20-40 s and its spread hardly moves the ratio's order).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${GGUFS_SHARED_DIR:-$ROOT/../shared}
[ -d "$SHARED/corpus" ] || { echo "no corpus at $SHARED/corpus (set GGUFS_SHARED_DIR)" >&2; exit 2; }
WORK=${BENCH_DIR:-/tmp/ggufs-bench}
RUNS=${BENCH_RUNS:-3}
PORT=${BENCH_PORT:-18600}
REPO=bench/Llama-1G
NAME=Llama-1G
BIN=$ROOT/target/release
MNT=$WORK/mnt
mkdir -p "$WORK" "$MNT"
. "$ROOT/scripts/bench/lib.sh"
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building release"
cargo build --release -q --workspace --bins
echo "== conversion kernels (cargo bench --bench convert)"
cargo bench -q --bench convert 2>/dev/null | tee "$WORK/convert.txt"

if [ ! -f "$WORK/hub/$REPO/model.safetensors" ]; then
  echo "== generating the model"
  python3 scripts/bench/gen_model.py "$SHARED/corpus/HuggingFaceTB/SmolLM2-135M-Instruct" "$WORK/hub/$REPO" \
    "${BENCH_LAYERS:-10}"
fi
SRC=$WORK/hub/$REPO/model.safetensors
SRC_BYTES=$(stat -c %s "$SRC")
start_hub
echo "== fake Hub at $HF_ENDPOINT serving $SRC ($SRC_BYTES bytes)"

# Raw download of the same source bytes: one curl, and 8 parallel ranged curls; the faster is
# the reference (the stricter ratio).
URL="$HF_ENDPOINT/$REPO/resolve/main/model.safetensors"
curl -sfL -o /dev/null "$URL" # warm the server's page cache: it is not what we measure
T_CURL1=$(median_of "$RUNS" timed curl -sfL -o /dev/null "$URL")
T_CURL8=$(median_of "$RUNS" timed parallel_download "$URL" "$SRC_BYTES" 8)
T_RAW=$(min "$T_CURL1" "$T_CURL8")
raw_download() { # the faster of the two ways above
  if [ "$T_RAW" = "$T_CURL1" ]; then curl -sfL -o /dev/null "$URL"; else parallel_download "$URL" "$SRC_BYTES" 8; fi
}
echo "   raw download: 1 stream $(rate "$SRC_BYTES" "$T_CURL1"), 8 streams $(rate "$SRC_BYTES" "$T_CURL8")"

# (1), (2): cold cp of the virtual file (fresh disk cache, fresh mount).
cold_cp() { # TYPE -> seconds
  rm -rf "$WORK/cache"
  mount_ggufs "$WORK/cache" 256M
  local f="$MNT/$REPO/$NAME-$1.gguf"
  stat -c %s "$f" >"$WORK/size-$1"
  local t; t=$(timed cp "$f" /dev/null)
  unmount_ggufs
  echo "$t"
}
T_F16=$(median_of "$RUNS" cold_cp F16)
T_Q8=$(median_of "$RUNS" cold_cp Q8_0)

# (4): warm cp: the disk cache of the F16 run above... was replaced by the Q8_0 run's cache, which
# holds the same source blocks (content-keyed). Kernel caches dropped; local file of the same size.
F16_BYTES=$(virtual_size F16)
warm_cp() {
  drop_caches "$WORK/cache"
  mount_ggufs "$WORK/cache" 256M
  local t; t=$(timed cp "$MNT/$REPO/$NAME-F16.gguf" /dev/null)
  unmount_ggufs
  echo "$t"
}
T_WARM=$(median_of "$RUNS" warm_cp)
LOCAL=$WORK/local.bin
[ "$(stat -c %s "$LOCAL" 2>/dev/null || echo 0)" = "$F16_BYTES" ] || head -c "$F16_BYTES" /dev/urandom > "$LOCAL"
local_cp() {
  drop_caches "$LOCAL"
  timed cp "$LOCAL" /dev/null
}
T_LOCAL=$(median_of "$RUNS" local_cp)

# Context for (1), (2). A cold cp is the download plus ggufs's local work on the bytes:
# conversion and FUSE delivery. Measured alone, that local work is a "hot" cp: a new mount (nothing
# in its page cache) over a disk cache whose blocks are in the kernel page cache (it also maps and
# verifies them, which a cold cp does not). Run side by side with the download on the cores they
# share with the server, the pair shows what the download plus that work cost on this machine.
cat "$SRC" >/dev/null # the server's file, dropped above with the kernel caches
hot_cp() { # TYPE -> seconds
  mount_ggufs "$WORK/cache" 256M
  local t; t=$(timed cp "$MNT/$REPO/$NAME-$1.gguf" /dev/null)
  unmount_ggufs
  echo "$t"
}
pair() { # TYPE -> seconds of the download and a hot cp at once
  mount_ggufs "$WORK/cache" 256M
  local t0 t1 p
  t0=$(now)
  raw_download &
  p=$!
  cp "$MNT/$REPO/$NAME-$1.gguf" /dev/null
  wait "$p"
  t1=$(now)
  unmount_ggufs
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
hot_cp F16 >/dev/null # reads the blocks back into the page cache
T_HOT_F16=$(median_of "$RUNS" hot_cp F16)
T_PAIR_F16=$(median_of "$RUNS" pair F16)
T_PAIR_Q8=$(median_of "$RUNS" pair Q8_0)

# Context for (3): a pull writes the output and, by default, the source blocks to the cache, both
# at once; this is how long writing as many bytes with direct I/O takes (dd, one writer per file,
# at once) with nothing else running.
disk_write() { # BYTES... -> seconds to write one file of each size, all at once
  local t0 t1 i=0 pids=()
  t0=$(now)
  for n in "$@"; do
    dd if=/dev/zero of="$WORK/dd$i.bin" bs=4M count=$((n >> 22)) oflag=direct status=none &
    pids+=($!)
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(now)
  rm -f "$WORK"/dd*.bin
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
# Once each: repeated, these gigabytes of writes slowed this VM's disk for minutes.
sync
T_DISK=$(disk_write "$F16_BYTES" "$SRC_BYTES")
T_DISK_OUT=$(disk_write "$F16_BYTES")

# (5): peak RSS of the daemon copying the model cold with a small memory cache.
MEMCACHE_MB=64
rm -rf "$WORK/cache"
mount_ggufs "$WORK/cache" "${MEMCACHE_MB}M"
cp "$MNT/$REPO/$NAME-F16.gguf" /dev/null
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
unmount_ggufs

# (3): ggufs pull vs the reference converter --remote (both F16, both cold).
pull_f16() { # CACHE_ARGS... -> seconds of a cold pull to $WORK/pull.gguf (kept for the comparison)
  rm -rf "$WORK/cache" "$WORK/pull.gguf"
  timed "$BIN/ggufs" pull "$REPO" --outtype f16 -o "$WORK/pull.gguf" "$@"
}
rm -f "$WORK/ref.gguf"
T_PULL=$(median_of "$RUNS" pull_f16 --cache-dir "$WORK/cache")
T_REF=$(reference_convert "$WORK/ref.gguf")
SAME=$(cmp -s "$WORK/pull.gguf" "$WORK/ref.gguf" && echo "byte-identical" || echo "DIFFERENT")
# The same pull without storing source blocks in the cache (what the reference does not do
# either): shown beside the default, the ratio is the default's.
T_PULL_NC=$(median_of "$RUNS" pull_f16 --no-cache)
cmp -s "$WORK/pull.gguf" "$WORK/ref.gguf" || SAME=DIFFERENT
rm -f "$WORK/pull.gguf" "$WORK/ref.gguf"

echo
echo "== results ($(nproc) cores)"
Q8_BYTES=$(virtual_size Q8_0)
figure "1 cold cp F16 vs raw download" "$(rate "$F16_BYTES" "$T_F16") vs $(rate "$SRC_BYTES" "$T_RAW")" \
  "$(ratio "$T_RAW" "$T_F16")" 0.9
figure "2 cold cp Q8_0 vs raw download" "$(rate "$Q8_BYTES" "$T_Q8") out, ${T_Q8}s vs ${T_RAW}s" \
  "$(ratio "$T_RAW" "$T_Q8")" 0.8
figure "3 pull F16 vs reference --remote" \
  "${T_PULL}s (--no-cache: ${T_PULL_NC}s, ratio $(ratio "$T_REF" "$T_PULL_NC")) vs ${T_REF}s, outputs $SAME" \
  "$(ratio "$T_REF" "$T_PULL")" 20
figure "4 warm cp F16 vs local cp" "$(rate "$F16_BYTES" "$T_WARM") vs $(rate "$F16_BYTES" "$T_LOCAL")" \
  "$(ratio "$T_LOCAL" "$T_WARM")" 0.5
LIMIT_MB=$((256 + MEMCACHE_MB))
figure "5 daemon peak RSS, --memory-cache ${MEMCACHE_MB}M, $((F16_BYTES >> 20)) MiB copied" \
  "$((HWM_KB >> 10)) MiB (limit $LIMIT_MB MiB)" "$(ratio "$((LIMIT_MB << 10))" "$HWM_KB")" 1
conv=$(grep -o 'convert [^:]*: [0-9.]* GB/s' "$WORK/convert.txt" | sed 's/convert //; s/ GB\/s//' | paste -sd, | sed 's/,/, /g')
[ -n "$conv" ] || { echo "conversion throughput not measured" >&2; exit 1; }
echo "6 conversion GB/s of output per core: $conv"
echo "== what this machine allows (context for 1-3, not figures)"
echo "   hot cp F16 (conversion and FUSE delivery from page-cached blocks, no network): ${T_HOT_F16}s, $(rate "$F16_BYTES" "$T_HOT_F16")"
side_by_side() { # NAME T_COLD T_PAIR
  echo "   $1: the download and a hot cp side by side take ${3}s (ratio $(ratio "$T_RAW" "$3")); cold cp, doing both, ${2}s (ratio $(ratio "$T_RAW" "$2"))"
}
side_by_side "1 F16" "$T_F16" "$T_PAIR_F16"
side_by_side "2 Q8_0" "$T_Q8" "$T_PAIR_Q8"
echo "   3: dd (direct I/O) writes the output and the cache blocks in ${T_DISK}s (ratio $(ratio "$T_REF" "$T_DISK") vs the reference), the output alone in ${T_DISK_OUT}s (ratio $(ratio "$T_REF" "$T_DISK_OUT"))"
[ "$SAME" = "byte-identical" ] || { echo "pull and the reference differ" >&2; exit 1; }
