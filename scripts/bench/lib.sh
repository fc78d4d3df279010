# Helpers of scripts/bench.sh (sourced; uses BIN, WORK, MNT, PORT, REPO, NAME, SHARED).

now() { date +%s.%N; }

# timed CMD... -> prints the wall seconds CMD took (its output goes to $WORK/cmd.log).
timed() {
  local t0 t1
  t0=$(now)
  "$@" >>"$WORK/cmd.log" 2>&1 || { echo "failed: $*" >&2; tail -5 "$WORK/cmd.log" >&2; return 1; }
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# median_of N CMD...: runs CMD (which prints seconds) N times, prints the median.
median_of() {
  local n=$1 i
  shift
  for ((i = 0; i < n; i++)); do "$@" || return 1; echo; done | sort -n | awk 'NF { v[n++] = $1 } END { print v[int((n - 1) / 2)] }'
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", (s > 0) ? n / s / 1e6 : 0 }'; }

# figure NAME VALUE RATIO TARGET -> one result line.
figure() {
  local verdict
  verdict=$(awk -v r="$3" -v t="$4" 'BEGIN { print (r + 0 >= t + 0) ? "PASS" : "FAIL" }')
  echo "$1: $2, ratio $3 (target >= $4) $verdict"
}

# parallel_download URL SIZE N: N ranged curls of equal parts, at once.
parallel_download() {
  local url=$1 size=$2 n=$3 part i a b pids=()
  part=$(((size + n - 1) / n))
  for ((i = 0; i < n; i++)); do
    a=$((i * part)); b=$(((i + 1) * part - 1)); [ "$b" -ge "$size" ] && b=$((size - 1))
    curl -sfL -r "$a-$b" -o /dev/null "$url" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

start_hub() {
  "$BIN/ggufs-fakehub" --root "$WORK/hub" --port "$PORT" >"$WORK/hub.out" 2>"$WORK/hub.err" &
  HUB_PID=$!
  for _ in $(seq 600); do grep -q http "$WORK/hub.out" 2>/dev/null && break; sleep 0.2; done
  HF_ENDPOINT=$(head -1 "$WORK/hub.out")
  [ -n "$HF_ENDPOINT" ] || { echo "fake Hub did not start" >&2; cat "$WORK/hub.err" >&2; exit 1; }
  export HF_ENDPOINT
}

# mount_ggufs CACHE_DIR MEMORY_CACHE: a foreground daemon in the background (DAEMON_PID).
mount_ggufs() {
  "$BIN/ggufs" mount "$MNT" --foreground --cache-dir "$1" --memory-cache "$2" --endpoint "$HF_ENDPOINT" \
    >>"$WORK/mount.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 300); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
  echo "mount did not come up" >&2; tail -20 "$WORK/mount.log" >&2; exit 1
}

unmount_ggufs() {
  "$BIN/ggufs" unmount "$MNT" >>"$WORK/mount.log" 2>&1 || fusermount -u "$MNT" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}

# drop_caches PATH...: the kernel page cache, globally if allowed, else per file (fadvise).
drop_caches() {
  sync
  if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    find "$@" -type f -exec dd if={} iflag=nocache count=0 status=none \;
  fi
}

# virtual_size TYPE: size of the virtual file (from the golden-free source: a stat in a mount).
virtual_size() {
  cat "$WORK/size-$1"
}

# reference_convert OUT -> seconds of the reference converter (--remote) writing OUT as F16.
reference_convert() {
  local env=/root/.cache/ggufs-reference/env.sh
  [ -f "$env" ] || bash "$SHARED/tools/reference/setup.sh" >&2
  (
    # shellcheck disable=SC1090
    . "$env"
    HF_HOME=$(mktemp -d) timed python "$SHARED/tools/reference/convert-remote.py" "$REPO" --outtype f16 \
      --outfile "$1"
  )
}

cleanup() {
  [ -n "${DAEMON_PID:-}" ] && unmount_ggufs
  mountpoint -q "$MNT" 2>/dev/null && fusermount -u "$MNT" 2>/dev/null
  [ -n "${HUB_PID:-}" ] && kill "$HUB_PID" 2>/dev/null
  true
}
