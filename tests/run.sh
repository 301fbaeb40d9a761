#!/usr/bin/env bash
# Runs every gridhub check and test: formatting, clippy (warnings are errors), and the whole
# workspace's tests (unit, end-to-end over the synthetic city, CLI). This is the README's
# test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one target dir across clones and runs: a clean DataFusion build takes many minutes.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridhub-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Services the tests need are brought up here (files and SQLite need none).
if [ -x deploy/dev-services.sh ]; then
    deploy/dev-services.sh
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
