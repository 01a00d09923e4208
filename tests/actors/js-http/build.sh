#!/usr/bin/env bash
# Build the JS wasi:http "hello" component with componentize-js (default features).
# Usage: tests/actors/js-http/build.sh OUT.wasm
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 OUT.wasm" >&2
  exit 2
fi
command -v node >/dev/null 2>&1 || { echo "js-http build: node not found (need node >= 20 and npm)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "js-http build: npm not found (need node >= 20 and npm)" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "js-http build: node $(node --version) is too old (need node >= 20)" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deps="$(cd "$here/../../../wit/deps" && pwd)"
out_dir="$(mkdir -p "$(dirname "$1")" && cd "$(dirname "$1")" && pwd)"
out="$out_dir/$(basename "$1")"

cd "$here"

# npm ci only when node_modules is missing or was installed from another package-lock.json.
stamp="node_modules/.lattice-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi

# Scratch WIT dir: world.wit + the host's vendored WASI 0.2.12 packages.
wit="$(mktemp -d)"
trap 'rm -rf "$wit" "$out.tmp"' EXIT
mkdir -p "$wit/deps"
cp world.wit "$wit/world.wit"
for p in cli clocks filesystem http io random sockets; do
  ln -s "$deps/$p" "$wit/deps/$p"
done

# Write to a temp file first so a failed build never leaves a truncated OUT.
node_modules/.bin/componentize-js --wit "$wit" --world-name hello -o "$out.tmp" app.js
mv -f "$out.tmp" "$out"
