#!/usr/bin/env bash
# Installs what ggufs's build and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
"$(dirname "$0")/dev-null.sh"
need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The independent GGUF reader the tests cross-check with (llama.cpp's gguf-py from PyPI).
python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check gguf numpy
