#!/usr/bin/env bash
# Sets up a machine (idempotent) and runs lattice's whole test suite: formatting, lints, and every test
# (unit, real components, real nats-server and redis-server started by the tests on free loopback ports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
