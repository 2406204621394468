#!/usr/bin/env bash
# Benchmarks Tycho against its peers in the same run: builds a Release
# binary, then calls the shared peer harness (../shared/bench/run-peers.sh,
# nginx + lua-nginx-module, Node.js, aiohttp, luv) with Tycho as the extra
# server. Prints the harness's markdown table; raw results go to bench/.run/.
#
#   bench/run.sh                         # all peers, one round
#   ROUNDS=2 bench/run.sh                # what docs/performance.md reports
#   PEERS=nginx,luv-lua54 bench/run.sh   # a subset (Tycho is always run)
#   DURATION=2 WARMUP=1 IDLE_CONNS=500 STARTUP_TRIALS=2 bench/run.sh  # smoke
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
SHARED="${SHARED:-$ROOT/../shared/bench}"
[ -x "$SHARED/run-peers.sh" ] || { echo "peer harness not found at $SHARED" >&2; exit 1; }

"$ROOT/scripts/install-deps"
cmake -S "$ROOT" -B "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build-release" -j "$(nproc)" >/dev/null

PORT="${TYCHO_BENCH_PORT:-18090}"
export EXTRA_CMD="$ROOT/build-release/tycho run $HERE/app.lua --port $PORT"
export EXTRA_PORT="$PORT"
export EXTRA_NAME=tycho
export EXTRA_VERSION="tycho $("$ROOT/build-release/tycho" -v | head -1) ($(git -C "$ROOT" rev-parse --short HEAD))"
# The harness runs only the servers PEERS names: a subset keeps Tycho in it.
if [ -n "${PEERS:-}" ] && [[ ",$PEERS," != *",tycho,"* ]]; then
  export PEERS="$PEERS,tycho"
fi
export BENCH_OUT="${BENCH_OUT:-$HERE/.run}"
mkdir -p "$BENCH_OUT"
exec "$SHARED/run-peers.sh" "$@"
