#!/usr/bin/env bash
# Sets up this machine (idempotent) and runs the lattice demo:
#   1. builds the CLI and the kv-counter example actor, signs it with the local development issuer,
#   2. runs it locally with `lattice run` (in-memory key-value, counter rises 1, 2, 3),
#   3. starts a local lattice with `lattice up` (nats-server + host zone=a) and a second host (zone=b),
#   4. `lattice apply lattice.toml --env test`: the app from the manifest, 2 replicas spread over the zones,
#      in-memory key-value; calls it,
#   5. starts a Redis and `lattice apply lattice.toml --env prod`: the same actor moves to Redis, live; the
#      counter is then read straight from Redis,
#   6. `lattice status`, `lattice delete`, and stops everything it started.
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
  --out "$work/kv_counter.signed.wasm" >/dev/null
"$lattice" claims inspect "$work/kv_counter.signed.wasm"

step "lattice run: three messages, one local runtime, in-memory key-value"
"$lattice" run "$work/kv_counter.signed.wasm" --trusted-issuer dev \
  --link keyvalue:default=inmemory --message visits --repeat 3

step "lattice up: a local lattice (nats-server with JetStream + host zone=a), and a second host (zone=b)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LATTICE_NATS="nats://127.0.0.1:$port" LATTICE_NAME="demo"
"$lattice" up --nats-port "$port" --trusted-issuer dev --host-id demo-a --label zone=a \
  >"$work/up.log" 2>&1 &
up_pid=$!
pids=("$up_pid")
redis_pid=""
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  "$lattice" hosts -o json 2>/dev/null | grep -q demo-a && break
  sleep 0.1
done
"$lattice" host --trusted-issuer dev --trusted-operator dev --reconciler-key dev --host-id demo-b --label zone=b \
  --provider-allow 'redis://127.0.0.1:*' >"$work/host-b.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do
  [ "$("$lattice" hosts -o json 2>/dev/null | grep -c '"up"')" -ge 2 ] && break
  sleep 0.1
done
"$lattice" hosts

step "lattice apply lattice.toml --env test: kv-counter, 2 replicas spread over zone a and b, in-memory key-value"
# lattice.toml's artifact is target/demo/kv_counter.signed.wasm, the component signed above.
"$lattice" apply lattice.toml --env test
for _ in 1 2 3; do "$lattice" call kv-counter visits; done
echo "(each host has its own in-memory store, so the two replicas count apart; with Redis they share one)"
"$lattice" status counter

step "a Redis for the prod environment, on 127.0.0.1:6379 (the manifest's url)"
if redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "a Redis already answers on 6379: using it"
else
  redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "started redis-server on 6379"
fi
redis-cli -p 6379 del lattice:default:visits >/dev/null

step "lattice apply lattice.toml --env prod: the same actor moves to Redis while it runs"
"$lattice" diff lattice.toml --env prod
"$lattice" apply lattice.toml --env prod
for _ in 1 2 3; do "$lattice" call kv-counter visits; done
echo "in Redis: lattice:default:visits = $(redis-cli -p 6379 get lattice:default:visits)"
"$lattice" status counter
"$lattice" inventory demo-a
"$lattice" events --last 12

step "lattice delete counter: everything the app placed goes"
"$lattice" delete counter
"$lattice" apps

step "stopping the lattice"
cleanup
trap - EXIT
tail -n 3 "$work/up.log"
