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
# OUT (directory for the raw profiles; default a temporary one, removed on exit).
# Needs nginx, wrk, valgrind or perf (installed from Debian packages when missing).
set -euo pipefail

MODE=${1:-callgrind}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT_BASE=${PORT_BASE:-18100}
CONNS=${CONNS:-8}
TLS=${TLS:-0}
UP_PORT=$((PORT_BASE + 1)) LT_HTTP=$((PORT_BASE + 2)) LT_HTTPS=$((PORT_BASE + 3)) LT_ADMIN=$((PORT_BASE + 4))
HOST=app.bench.local
log() { printf '>> %s\n' "$*" >&2; }

case $MODE in
callgrind) SECS=${SECS:-10} tool=valgrind ;;
perf) SECS=${SECS:-8} tool=perf ;;
*) log "usage: $0 callgrind|perf"; exit 2 ;;
esac
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v "$tool" >/dev/null || need+=("$( [[ $tool == perf ]] && echo linux-perf || echo valgrind)")
if ((${#need[@]})); then
    log "installing ${need[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
    if [[ -f /run/nginx.pid ]]; then nginx -s quit 2>/dev/null || true; fi
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin lintel)
fi
LINTEL=$ROOT/target/release/lintel

WORK=$(mktemp -d /tmp/lintel-profile.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # URL [curl args]: waits up to 60 s (valgrind starts slowly)
    local url=$1 i
    shift
    for i in $(seq 600); do
        curl -fsk -o /dev/null "$@" "$url" && return 0
        sleep 0.1
    done
    log "no answer from $url"
    return 1
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=bench.local \
    -addext "subjectAltName=DNS:*.bench.local" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

mkdir -p "$WORK/up" "$WORK/lt"
cat >"$WORK/up/nginx.conf" <<EOF
$( ((EUID == 0)) && echo "user root;")
worker_processes 1;
master_process off;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/up/body;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
taskset -c 0 nginx -p "$WORK/up/" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" &
PIDS+=("$!")
wait_http "http://127.0.0.1:$UP_PORT/"

cat >"$WORK/lt/routes.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: lintel}
spec: {controller: lintel.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-1, namespace: default, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: $UP_PORT}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
---
apiVersion: v1
kind: Secret
metadata: {name: bench, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 <"$WORK/tls.crt")
  tls.key: $(base64 -w0 <"$WORK/tls.key")
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default}
spec:
  ingressClassName: lintel
  rules:
    - host: $HOST
      http:
        paths:
          - {path: /health, pathType: Exact, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
EOF

args=(run --manifests "$WORK/lt" --worker-threads 1 --access-log false --default-certificate default/bench
    --http-addr "127.0.0.1:$LT_HTTP" --https-addr "127.0.0.1:$LT_HTTPS" --admin-addr "127.0.0.1:$LT_ADMIN")
if [[ $MODE == callgrind ]]; then
    # Collection starts at zero after the warm-up (callgrind_control -z) and is dumped after the load.
    taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
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
    callgrind_annotate --inclusive=no "$file" 2>/dev/null | sed -n '/^Ir/,$p' | head -45
else
    perf record -q -F 2000 -g -p "$LT_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
    PERF=$!
    requests=$(load "$SECS")
    wait "$PERF" || true
    log "requests: $requests in ${SECS}s"
    perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^$' | grep '%' | head -50
fi
