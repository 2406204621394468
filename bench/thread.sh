#!/usr/bin/env bash
# Benchmark (not a test) of tycho.thread.run: while clients keep GET /work
# busy (about 50 ms of hashing per request), wrk measures the latency of
# GET / on the same server. MODE=offload runs the hashing on libuv's thread
# pool, MODE=inline on the event loop (the baseline that shows the problem);
# MODE=idle measures / with no /work load at all, the floor that the
# machine itself allows (on a shared 2-core box, not zero).
#
#   bench/thread.sh                      # both modes, 10 s each
#   DURATION=5 WORK_CONNS=2 bench/thread.sh
#   BUILD=build-release bench/thread.sh  # a binary built elsewhere
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
BUILD="${BUILD:-build-thread}"
TYCHO="$ROOT/$BUILD/tycho"
DURATION="${DURATION:-10}"
WORK_CONNS="${WORK_CONNS:-1}"  # concurrent /work requests
ROOT_CONNS="${ROOT_CONNS:-10}" # concurrent / requests, measured
WORK_ITERS="${WORK_ITERS:-3000000}"
[ -x "$TYCHO" ] || { echo "no binary at $TYCHO: cmake --build $BUILD" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: run scripts/install-deps" >&2; exit 1; }
OUT="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$OUT"' EXIT

start_server() { # mode
  MODE="$1" WORK_ITERS="$WORK_ITERS" "$TYCHO" run "$HERE/thread_app.lua" --port 0 \
    --block-warn 0 2>"$OUT/server.err" &
  SERVER=$!
  for _ in $(seq 1 100); do
    PORT=$(grep -oE 'listening on http://[0-9.]+:[0-9]+' "$OUT/server.err" | grep -oE '[0-9]+$' || true)
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$OUT/server.err" >&2; exit 1
}

run_mode() { # mode
  local mode=$1
  [ "$mode" = idle ] && mode=offload
  start_server "$mode"
  local base="http://127.0.0.1:$PORT"
  local ms
  ms=$(curl -s "$base/calibrate")
  curl -s "$base/work" >/dev/null # warm: a worker state exists
  echo "0 requests in (none)" >"$OUT/work.txt"
  local load=""
  if [ "$1" != idle ]; then
    wrk -t1 -c"$WORK_CONNS" -d"${DURATION}s" "$base/work" >"$OUT/work.txt" 2>&1 &
    load=$!
  fi
  wrk -t1 -c"$ROOT_CONNS" -d"${DURATION}s" --latency "$base/" >"$OUT/root.txt" 2>&1
  [ -n "$load" ] && wait "$load"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  local p50 p99 rps works
  p50=$(awk '$1 == "50%" {print $2}' "$OUT/root.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$OUT/root.txt")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/root.txt")
  works=$(awk '/requests in/ {print $1}' "$OUT/work.txt")
  printf '| %-7s | %8s ms | %8s | %8s | %9s | %10s |\n' "$1" "$ms" "$p50" "$p99" "$rps" "$works"
}

echo "tycho.thread.run benchmark: $(nproc) cores, UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-4}," \
  "${DURATION}s per mode, $WORK_CONNS conn(s) on /work, $ROOT_CONNS on / (wrk -t1 each)"
echo "| mode    | work/call   | / p50    | / p99    | / req/s   | /work done |"
echo "|---------|-------------|----------|----------|-----------|------------|"
for mode in ${MODES:-idle offload inline}; do run_mode "$mode"; done
