#!/usr/bin/env bash
# Benchmark (not a test) of `tycho run --workers N`, with wrk on the same
# machine: throughput of one plain process, of a supervisor with 1 worker
# and with 2 workers, then a SIGHUP rolling restart (twice) under load,
# counting wrk's socket errors and non-2xx responses.
#
# On a small machine wrk competes with the workers for the cores: its
# threads (WRK_THREADS, default 1) take CPU that the workers then lack, so
# the scaling measured here is a lower bound of what separate client
# machines would see. The script prints the core count and wrk's setup.
#
#   bench/workers.sh
#   DURATION=5 CONNS=64 WRK_THREADS=2 bench/workers.sh
#   BUILD=build-release bench/workers.sh   # a binary built elsewhere
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
BUILD="${BUILD:-build-ops}"
TYCHO="$ROOT/$BUILD/tycho"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-64}"
WRK_THREADS="${WRK_THREADS:-1}"
ROUNDS="${ROUNDS:-2}"
[ -x "$TYCHO" ] || { echo "no binary at $TYCHO (cmake --build $BUILD)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not installed (scripts/install-deps)" >&2; exit 1; }
TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# start ARGS...: runs tycho on a free port; sets SERVER_PID and PORT.
start() {
  : >"$TMP/err" # (truncated here: the background redirect happens later)
  "$TYCHO" run "$HERE/app.lua" --port 0 "$@" 2>>"$TMP/err" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    PORT=$(grep -oE 'listening on http://[0-9.]+:[0-9]+' "$TMP/err" | grep -oE '[0-9]+$' || true)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "server did not start:" >&2; cat "$TMP/err" >&2; exit 1
}

stop() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
}

# CPU time (clock ticks) used so far by the server: the process and its
# workers.
cpu_ticks() {
  local total=0 p
  for p in "$SERVER_PID" $(pgrep -P "$SERVER_PID" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

run_wrk() { # prints "requests/s server-CPU-seconds-per-second"
  local before after
  before=$(cpu_ticks)
  wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$TMP/wrk"
  after=$(cpu_ticks)
  echo "$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk")" \
    "$(awk -v a="$after" -v b="$before" -v t="$(getconf CLK_TCK)" -v d="$DURATION" \
      'BEGIN {printf "%.2f", (a - b) / t / d}')"
}

echo "cores: $(nproc); wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s on the same machine; $ROUNDS rounds"
echo "tycho: $("$TYCHO" -v | head -1) ($BUILD)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores)"
declare -A best
for round in $(seq "$ROUNDS"); do
  for cfg in "single" "workers1" "workers2"; do
    case $cfg in
      single) start ;;
      workers1) start --workers 1 ;;
      workers2) start --workers 2 ;;
    esac
    wrk -t1 -c8 -d1s "http://127.0.0.1:$PORT/" >/dev/null # warm-up
    read -r rps cores < <(run_wrk)
    stop
    echo "round $round $cfg: $rps req/s, server used $cores cores," \
      "$(awk -v r="$rps" -v c="$cores" 'BEGIN {printf "%.0f", r / c}') req per CPU-second"
    prev=${best[$cfg]:-0}
    best[$cfg]=$(awk -v a="$rps" -v b="$prev" 'BEGIN {print (a > b) ? a : b}')
  done
done
echo
echo "best of $ROUNDS: single process ${best[single]}, --workers 1 ${best[workers1]}," \
  "--workers 2 ${best[workers2]} req/s"
awk -v a="${best[workers2]}" -v b="${best[single]}" \
  'BEGIN {printf "--workers 2 / single process: %.2fx\n", a / b}'

echo
echo "rolling restart: --workers 2, wrk -c$CONNS for ${DURATION}s, SIGHUP at 1/3 and 2/3"
start --workers 2
wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$TMP/wrk" &
WRK_PID=$!
third=$(awk -v d="$DURATION" 'BEGIN {print d / 3}')
sleep "$third"; kill -HUP "$SERVER_PID"
sleep "$third"; kill -HUP "$SERVER_PID"
wait "$WRK_PID"
stop
grep -E "requests in|Requests/sec|Socket errors|Non-2xx" "$TMP/wrk" || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
restarts=$(grep -c "rolling restart done" "$TMP/err" || true)
retired=$(grep -c "retired" "$TMP/err" || true)
errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$TMP/wrk")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/wrk")
echo "rolling restarts completed: $restarts (workers retired: $retired);" \
  "socket errors: ${errors:-0}; non-2xx: ${non2xx:-0}"
