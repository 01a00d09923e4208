#!/usr/bin/env bash
# Sets up this machine (idempotent) and runs the lattice demo:
#   1. builds the CLI and the kv-counter example actor,
#   2. signs kv-counter with the local development issuer (created on first use),
#   3. runs it locally with `lattice run` (in-memory key-value, counter rises 1, 2, 3),
#   4. starts a local lattice with `lattice up` (nats-server + one host), pushes, starts and calls kv-counter,
#   5. stops the lattice (Ctrl-C equivalent) and cleans up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building the lattice CLI and the kv-counter actor"
cargo build --quiet -p lattice-cli
cargo build --quiet -p kv-counter --profile guest --target wasm32-wasip2 --target-dir target/guests
lattice="$PWD/target/debug/lattice"
work="$PWD/target/demo"
mkdir -p "$work"
wasm="$PWD/target/guests/wasm32-wasip2/guest/kv_counter.wasm"

step "signing kv-counter with the development issuer ($("$lattice" keys dev | tail -n1))"
"$lattice" claims sign "$wasm" --issuer dev --name kv-counter --version 0.1.0 --cap wasi:keyvalue \
  -o "$work/kv_counter.signed.wasm" >/dev/null
"$lattice" claims inspect "$work/kv_counter.signed.wasm"

step "lattice run: three messages, one local runtime, in-memory key-value"
"$lattice" run "$work/kv_counter.signed.wasm" --trusted-issuer dev \
  --link keyvalue:default=inmemory --message visits --repeat 3

step "lattice up: a local lattice (nats-server with JetStream + one host)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LATTICE_NATS="nats://127.0.0.1:$port" LATTICE_NAME="demo"
"$lattice" up --nats-port "$port" --trusted-issuer dev --host-id demo-host --label zone=local \
  >"$work/up.log" 2>&1 &
up_pid=$!
cleanup() { kill -INT "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  "$lattice" hosts -o json 2>/dev/null | grep -q demo-host && break
  sleep 0.1
done
"$lattice" hosts

step "push, start and call kv-counter through the lattice"
"$lattice" push "$work/kv_counter.signed.wasm" --name kv-counter
"$lattice" start kv-counter --link keyvalue:default=inmemory
for _ in 1 2 3; do "$lattice" call kv-counter visits; done
"$lattice" inventory demo-host
"$lattice" events --last 10

step "stopping the lattice"
cleanup
trap - EXIT
tail -n 3 "$work/up.log"
