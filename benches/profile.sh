#!/usr/bin/env bash
# Where Lintel's CPU per request goes, on loopback: one Lintel worker in front of an nginx
# upstream (`return 200`), a bounded wrk load, and one of two profilers around the proxy.
#
#   bash benches/profile.sh callgrind   # user-space instructions per request (repeatable,
#                                       # unaffected by other load); annotated top functions
#   bash benches/profile.sh perf        # perf record (cpu-clock) at saturation; perf report
#
# Knobs (environment): TLS=1 (HTTPS keep-alive instead of HTTP), SECS (load seconds; default
# 10 for callgrind, 8 for perf), CONNS (default 8), PORT_BASE (default 18100), SKIP_BUILD=1,
# OUT (directory for the raw profiles; default a temporary one, removed on exit), BUS=1 (callgrind
# also counts locked, i.e. atomic, instructions: each costs tens of cycles, yet one instruction).
# Needs nginx, wrk, valgrind or perf (installed from Debian packages when missing).
set -euo pipefail

MODE=${1:-callgrind}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT_BASE=${PORT_BASE:-18100}
CONNS=${CONNS:-8}
TLS=${TLS:-0}
UP_PORT=$((PORT_BASE + 1)) LT_HTTP=$((PORT_BASE + 2)) LT_HTTPS=$((PORT_BASE + 3)) LT_ADMIN=$((PORT_BASE + 4))
HOST=app.bench.local
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

case $MODE in
callgrind) SECS=${SECS:-10} tool=valgrind ;;
perf) SECS=${SECS:-8} tool=perf ;;
*) log "usage: $0 callgrind|perf"; exit 2 ;;
esac
need nginx wrk openssl curl "$tool"
build_lintel
work_dir profile
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
WAIT_SECS=60 # valgrind starts slowly
certificate
start_upstream "$UP_PORT"
lintel_manifests "$HOST" "$UP_PORT"

args=(run --manifests "$WORK/lt" --worker-threads 1 --access-log false --default-certificate default/bench
    --http-addr "127.0.0.1:$LT_HTTP" --https-addr "127.0.0.1:$LT_HTTPS" --admin-addr "127.0.0.1:$LT_ADMIN")
if [[ $MODE == callgrind ]]; then
    # Collection starts at zero after the warm-up (callgrind_control -z) and is dumped after the load.
    bus=()
    [[ ${BUS:-0} == 1 ]] && bus=(--collect-bus=yes)
    taskset -c 1 valgrind --tool=callgrind "${bus[@]}" --callgrind-out-file="$OUT/callgrind.out.%p" \
        "$LINTEL" "${args[@]}" >"$WORK/lintel.log" 2>&1 &
else
    taskset -c 1 "$LINTEL" "${args[@]}" >"$WORK/lintel.log" 2>&1 &
fi
LT_PID=$!
PIDS+=("$LT_PID")
wait_http "http://127.0.0.1:$LT_ADMIN/readyz"
if [[ $TLS == 1 ]]; then URL=https://127.0.0.1:$LT_HTTPS/api/v1/items; else URL=http://127.0.0.1:$LT_HTTP/api/v1/items; fi
wait_http "$URL" -H "Host: $HOST"

cat >"$WORK/count.lua" <<'EOF'
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
EOF
load() { # SECONDS: wrk on core 0; prints completed requests
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$1s" --timeout 10s -s "$WORK/count.lua" -H "Host: $HOST" "$URL" |
        awk '/^RESULT/ {split($2, r, "="); split($3, e, "="); if (e[2] > 0) print "errors: " e[2] > "/dev/stderr"; print r[2]}'
}

log "warm-up"
load 2 >/dev/null
if [[ $MODE == callgrind ]]; then
    callgrind_control -z "$LT_PID" >/dev/null
    requests=$(load "$SECS")
    callgrind_control -d "$LT_PID" >/dev/null
    sleep 1
    file=$(ls -t "$OUT"/callgrind.out.* | head -1)
    total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    log "requests: $requests; instructions: $total"
    awk -v t="$total" -v r="$requests" 'BEGIN {printf "instructions per request: %.0f\n", t / r}'
    if [[ ${BUS:-0} == 1 ]]; then
        atomics=$(callgrind_annotate --show=Ge "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
        awk -v t="$atomics" -v r="$requests" 'BEGIN {printf "atomic instructions per request: %.1f\n", t / r}'
        callgrind_annotate --show=Ge --sort=Ge --inclusive=no "$file" 2>/dev/null | sed -n '/^Ge/,$p' | head -30
    fi
    callgrind_annotate --inclusive=no "$file" 2>/dev/null | sed -n '/^Ir/,$p' | head -45
else
    perf record -q -F 2000 -g -p "$LT_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
    PERF=$!
    requests=$(load "$SECS")
    wait "$PERF" || true
    log "requests: $requests in ${SECS}s"
    perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^$' | grep '%' | head -50
fi
