#!/usr/bin/env bash
# The test command: formatting, lints, then every unit and integration test (real FUSE
# mounts and a fake Hub on 127.0.0.1). Needs ../shared/fixtures (or GGUFS_SHARED_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/dev-null.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
