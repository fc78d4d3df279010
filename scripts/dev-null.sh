#!/usr/bin/env bash
# Makes /dev/null the character device it must be. Some sandboxes ship it as a regular file:
# then every `2>/dev/null` appends to it and every reader of /dev/null (cargo gives rustc's
# target probe /dev/null as stdin) reads those bytes back, so builds fail at random with
# "failed to run rustc to learn about target-specific information". Needs root; a no-op
# when /dev/null is already the device.
set -euo pipefail
if [ ! -c /dev/null ]; then
  echo "note: /dev/null is not a character device here; recreating it" >&2
  rm -f /dev/null.ggufs
  if mknod -m 666 /dev/null.ggufs c 1 3; then
    mv -f /dev/null.ggufs /dev/null
  else
    echo "warning: cannot recreate /dev/null (not root?); builds may fail at random" >&2
  fi
fi
