#!/usr/bin/env bash
# Lintel against nginx as reverse proxies, side by side, on loopback: the same routes to the
# same upstream, one worker each, the proxy under test pinned alone to core 1, the load
# generator (wrk) and the upstream (a second nginx, `return 200`) on core 0.
#
#   bash benches/compare.sh            # full run, ~10-12 minutes; writes benches/RESULTS.md
#   QUICK=1 bash benches/compare.sh    # smoke run, ~1-2 minutes (figures are rough)
#
# Installs what it needs from Debian packages when missing (needs root then). Every load is
# bounded in time; every process it starts is stopped by PID on exit.
#
# Knobs (environment): QUICK, DURATION (s per saturation run), ROUNDS (alternating saturation
# rounds per scenario, medians reported; 3, or 1 with QUICK), CONNS, TLS_CONNS, PORT_BASE,
# OUT (report path; default benches/RESULTS.md), SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then DEFAULT_DURATION=3; else DEFAULT_DURATION=10; fi
DURATION=${DURATION:-$DEFAULT_DURATION}
CONNS=${CONNS:-50}
TLS_CONNS=${TLS_CONNS:-16}
PORT_BASE=${PORT_BASE:-18000}
OUT=${OUT:-$ROOT/benches/RESULTS.md}
if [[ $QUICK == 1 ]]; then SCALES=(10 1000); CHURN_SECS=3; else SCALES=(10 1000 10000); CHURN_SECS=10; fi
if [[ $QUICK == 1 ]]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-3}; fi

UP_PORT=$((PORT_BASE + 1))
NG_HTTP=$((PORT_BASE + 10)) NG_HTTPS=$((PORT_BASE + 11))
LT_HTTP=$((PORT_BASE + 20)) LT_HTTPS=$((PORT_BASE + 21)) LT_ADMIN=$((PORT_BASE + 22))
HOST=app-1.bench.local
URL_PATH=/api/v1/items

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log() { printf '>> %s\n' "$*" >&2; }

# ---------------------------------------------------------------- dependencies and build
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    log "installing ${need[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    pkgs=("${need[@]/nginx/nginx-light}")
    apt-get install -y -qq "${pkgs[@]}" >/dev/null || apt-get install -y -qq "${need[@]}" >/dev/null
    # The Debian package starts a system nginx; it is not ours to measure, and it holds port 80.
    if [[ -f /run/nginx.pid ]]; then nginx -s quit 2>/dev/null || true; fi
fi
if [[ $(nproc) -lt 2 ]]; then log "needs at least 2 cores (proxy on core 1, load on core 0)"; exit 1; fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin lintel --example bench_scale)
fi
LINTEL=$ROOT/target/release/lintel
SCALE_BIN=$ROOT/target/release/examples/bench_scale

# ---------------------------------------------------------------- processes, stopped on exit
WORK=$(mktemp -d /tmp/lintel-compare.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "failed: line $LINENO: $BASH_COMMAND"' ERR

stop() { # PID: stops one process we started and forgets it
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

wait_http() { # URL [curl args]: waits up to 10 s for any answer
    local url=$1 i
    shift
    for i in $(seq 100); do
        curl -fsk -o /dev/null "$@" "$url" && return 0
        sleep 0.1
    done
    log "no answer from $url"
    return 1
}

# ---------------------------------------------------------------- certificates
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=bench.local \
    -addext "subjectAltName=DNS:*.bench.local,DNS:bench.local" \
    -keyout "$WORK/ecdsa.key" -out "$WORK/ecdsa.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=bench.local \
    -addext "subjectAltName=DNS:*.bench.local,DNS:bench.local" \
    -keyout "$WORK/rsa.key" -out "$WORK/rsa.crt" 2>/dev/null

# ---------------------------------------------------------------- upstream (core 0)
mkdir -p "$WORK/up/logs"
cat >"$WORK/up/nginx.conf" <<EOF
$( ((EUID == 0)) && echo "user root;")
worker_processes 1;
master_process off;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/up/body;
    server {
        listen 127.0.0.1:$UP_PORT reuseport backlog=4096;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
taskset -c 0 nginx -p "$WORK/up/" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" &
UP_PID=$!
PIDS+=("$UP_PID")
wait_http "http://127.0.0.1:$UP_PORT/"

# ---------------------------------------------------------------- routes: nginx and Lintel
# Four hosts, each with Exact /health, Prefix /api and Prefix /; the load goes to
# app-1.bench.local/api/v1/items. EXTRA adds one more path per host (for the churn).
nginx_proxy_conf() { # CERT EXTRA_PATH
    local cert=$1 extra=${2:-} h
    cat <<EOF
$( ((EUID == 0)) && echo "user root;")
worker_processes 1;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/ng/body;
    proxy_temp_path $WORK/ng/proxy;
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 320; }
    ssl_certificate $WORK/$cert.crt;
    ssl_certificate_key $WORK/$cert.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    proxy_http_version 1.1;
    proxy_buffering off;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Real-IP \$remote_addr;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Host \$host;
    proxy_set_header X-Forwarded-Port \$server_port;
    # Request ids as Lintel makes them (and as ingress-nginx does upstream): the client's own,
    # else a random one; sent upstream and returned to the client.
    map \$http_x_request_id \$req_id { default \$http_x_request_id; "" \$request_id; }
    proxy_set_header X-Request-ID \$req_id;
    add_header X-Request-ID \$req_id always;
    server {
        listen 127.0.0.1:$NG_HTTP default_server backlog=4096;
        listen 127.0.0.1:$NG_HTTPS ssl default_server backlog=4096;
        return 404;
    }
EOF
    for h in 0 1 2 3; do
        cat <<EOF
    server {
        listen 127.0.0.1:$NG_HTTP;
        listen 127.0.0.1:$NG_HTTPS ssl;
        server_name app-$h.bench.local;
        location = /health { proxy_pass http://up; }
        location /api { proxy_pass http://up; }
        location / { proxy_pass http://up; }
$( [[ -n $extra ]] && echo "        location $extra { proxy_pass http://up; }")
    }
EOF
    done
    echo "}"
}

secret_yaml() { # NAME CERT
    cat <<EOF
---
apiVersion: v1
kind: Secret
metadata: {name: $1, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 <"$WORK/$2.crt")
  tls.key: $(base64 -w0 <"$WORK/$2.key")
EOF
}

lintel_manifests() { # EXTRA_PATH: the same routes as nginx_proxy_conf
    local extra=${1:-} h
    cat <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: lintel
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: lintel.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: up-1
  namespace: default
  labels: {kubernetes.io/service-name: up}
addressType: IPv4
ports: [{name: http, port: $UP_PORT}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
EOF
    for h in 0 1 2 3; do
        cat <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app-$h, namespace: default}
spec:
  rules:
    - host: app-$h.bench.local
      http:
        paths:
          - {path: /health, pathType: Exact, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
EOF
        [[ -n $extra ]] && echo "          - {path: $extra, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}"
    done
    return 0
}

NG_PID='' LT_PID=''
start_proxies() { # CERT: nginx and Lintel, both pinned to core 1, one worker each
    local cert=$1
    mkdir -p "$WORK/ng" "$WORK/lt"
    nginx_proxy_conf "$cert" >"$WORK/ng/nginx.conf"
    taskset -c 1 nginx -p "$WORK/ng/" -c "$WORK/ng/nginx.conf" -e "$WORK/ng/error.log" -g 'daemon off;' &
    NG_PID=$!
    PIDS+=("$NG_PID")
    rm -f "$WORK/lt/"*.yaml
    lintel_manifests >"$WORK/lt/routes.yaml"
    { secret_yaml bench-ecdsa ecdsa; secret_yaml bench-rsa rsa; } >"$WORK/lt/secrets.yaml"
    taskset -c 1 "$LINTEL" run --manifests "$WORK/lt" --worker-threads 1 --access-log false \
        --http-addr "127.0.0.1:$LT_HTTP" --https-addr "127.0.0.1:$LT_HTTPS" --admin-addr "127.0.0.1:$LT_ADMIN" \
        --default-certificate "default/bench-$cert" >>"$WORK/lintel.log" 2>&1 &
    LT_PID=$!
    PIDS+=("$LT_PID")
    wait_http "http://127.0.0.1:$LT_ADMIN/readyz"
    wait_http "http://127.0.0.1:$NG_HTTP$URL_PATH" -H "Host: $HOST"
    wait_http "http://127.0.0.1:$LT_HTTP$URL_PATH" -H "Host: $HOST"
    sleep 0.5
}
stop_proxies() {
    stop "$NG_PID"
    stop "$LT_PID"
}

# ---------------------------------------------------------------- measurement
# wrk prints one RESULT line from this script: completed requests, errors by kind, latency
# percentiles (µs). WRK_DELAY_MS turns each connection into a throttled client (fixed rate).
cat >"$WORK/report.lua" <<'EOF'
local d = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if d > 0 then
  function delay() return d end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
EOF

pids_of() { # PID: the process and its children (nginx master and workers)
    echo "$1"
    pgrep -P "$1" || true
}
cpu_ticks() { # PID...: utime+stime of every thread of each process, in clock ticks
    local total=0 p t
    for p in "$@"; do
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
vm() { # FIELD PID...: sum of a /proc/PID/status field, in kB
    local field=$1 total=0 p v
    shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
kv() { # KEY LINE: the value of KEY=VALUE in LINE
    tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}

HZ=$(getconf CLK_TCK)
wakes_core1() { # rescheduling + function-call interrupts taken by core 1 so far
    awk '$1 == "RES:" || $1 == "CAL:" {n += $3} END {print n + 0}' /proc/interrupts
}
declare -A R # results: R[name.field]

# run_wrk NAME PID URL SECONDS CONNS DELAY_MS [wrk args...]: one bounded load against URL,
# CPU of PID (and its children) measured around it.
run_wrk() {
    local name=$1 pid=$2 url=$3 secs=$4 conns=$5 delay=$6
    shift 6
    local pids before after up_before up_after wakes_before wakes_after line requests errors
    mapfile -t pids < <(pids_of "$pid")
    before=$(cpu_ticks "${pids[@]}") up_before=$(cpu_ticks "$UP_PID") wakes_before=$(wakes_core1)
    line=$(WRK_DELAY_MS=$delay /usr/bin/time -f '%U %S' -o "$WORK/wrk.time" taskset -c 0 wrk -t1 -c"$conns" \
        -d"${secs}s" --timeout 5s -s "$WORK/report.lua" -H "Host: $HOST" "$@" "$url" | grep '^RESULT') ||
        line="RESULT requests=0"
    after=$(cpu_ticks "${pids[@]}") up_after=$(cpu_ticks "$UP_PID") wakes_after=$(wakes_core1)
    requests=$(kv requests "$line")
    errors=$(($(kv connect "$line") + $(kv read "$line") + $(kv write "$line") + $(kv status "$line") + $(kv timeout "$line")))
    R[$name.rps]=$(awk -v r="$requests" -v d="$(kv duration_us "$line")" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
    R[$name.cpu]=$(awk -v t=$((after - before)) -v hz="$HZ" -v r="$requests" 'BEGIN {printf "%.1f", r ? t * 1e6 / hz / r : 0}')
    # Core 0's side of the run: the load generator's and the upstream's CPU per request, and
    # the wake-up interrupts core 1 took (an idle proxy is woken from core 0 by an IPI, paid
    # on both cores; a saturated one is not).
    R[$name.wrk]=$(awk -v r="$requests" '{printf "%.1f", r ? ($1 + $2) * 1e6 / r : 0}' "$WORK/wrk.time")
    R[$name.up]=$(awk -v t=$((up_after - up_before)) -v hz="$HZ" -v r="$requests" 'BEGIN {printf "%.1f", r ? t * 1e6 / hz / r : 0}')
    R[$name.wakes]=$(awk -v w=$((wakes_after - wakes_before)) -v r="$requests" 'BEGIN {printf "%.2f", r ? w / r : 0}')
    R[$name.p50]=$(kv p50 "$line") R[$name.p99]=$(kv p99 "$line") R[$name.p999]=$(kv p999 "$line")
    R[$name.max]=$(kv max "$line") R[$name.errors]=$errors R[$name.requests]=$requests
    log "$name: ${R[$name.rps]} req/s, ${R[$name.cpu]} µs CPU/req, p50 ${R[$name.p50]} p99 ${R[$name.p99]} p99.9 ${R[$name.p999]} µs, errors $errors"
}

# median_of_rounds KEY: KEY.FIELD is the median of KEY.1.FIELD .. KEY.ROUNDS.FIELD (errors
# and requests summed).
median_of_rounds() {
    local key=$1 field round values
    for field in rps cpu p50 p99 p999 max wrk up wakes; do
        values=()
        for round in $(seq "$ROUNDS"); do values+=("${R[$key.$round.$field]}"); done
        R[$key.$field]=$(printf '%s\n' "${values[@]}" | sort -g | awk -v f="$(case $field in cpu | wrk | up) echo %.1f ;; wakes) echo %.2f ;; *) echo %.0f ;; esac)" \
            '{v[NR] = $1} END {printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    done
    for field in errors requests; do
        R[$key.$field]=0
        for round in $(seq "$ROUNDS"); do R[$key.$field]=$((R[$key.$field] + R[$key.$round.$field])); done
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "–"}'; }

# scenario NAME SCHEME CONNS [wrk args...]: saturation for both proxies, then both at half
# the slower one's saturation rate.
scenario() {
    local name=$1 scheme=$2 conns=$3
    shift 3
    local ng_url lt_url rate delay secs=$((DURATION * 8 / 10))
    if [[ $scheme == https ]]; then
        ng_url="https://127.0.0.1:$NG_HTTPS$URL_PATH" lt_url="https://127.0.0.1:$LT_HTTPS$URL_PATH"
    else
        ng_url="http://127.0.0.1:$NG_HTTP$URL_PATH" lt_url="http://127.0.0.1:$LT_HTTP$URL_PATH"
    fi
    # Saturation in ROUNDS alternating pairs, each figure the median of its rounds: the host's
    # speed drifts by tens of percent within minutes, and alternation makes both proxies meet
    # the same drift. The CPU ratio of each round is kept for the report.
    local round ratios=""
    for round in $(seq "$ROUNDS"); do
        run_wrk "$name.nginx.sat.$round" "$NG_PID" "$ng_url" "$DURATION" "$conns" 0 "$@"
        run_wrk "$name.lintel.sat.$round" "$LT_PID" "$lt_url" "$DURATION" "$conns" 0 "$@"
        ratios+="${ratios:+, }$(ratio "${R[$name.lintel.sat.$round.cpu]}" "${R[$name.nginx.sat.$round.cpu]}")"
    done
    median_of_rounds "$name.nginx.sat"
    median_of_rounds "$name.lintel.sat"
    R[$name.cpu_ratios]=$ratios
    local a=${R[$name.nginx.sat.rps]} b=${R[$name.lintel.sat.rps]}
    rate=$(((a < b ? a : b) / 2))
    rate=$((rate > 100 ? rate : 100))
    R[$name.rate]=$rate
    # Each of `conns` connections waits `delay` ms before each request: conns/delay per ms.
    delay=$(((conns * 1000 + rate / 2) / rate))
    delay=$((delay > 0 ? delay : 1))
    run_wrk "$name.nginx.fixed" "$NG_PID" "$ng_url" "$secs" "$conns" "$delay" "$@"
    run_wrk "$name.lintel.fixed" "$LT_PID" "$lt_url" "$secs" "$conns" "$delay" "$@"
}

# ---------------------------------------------------------------- the runs
log "ceiling: the upstream alone"
run_wrk ceiling "$UP_PID" "http://127.0.0.1:$UP_PORT$URL_PATH" "$DURATION" "$CONNS" 0

start_proxies ecdsa
R[idle.lintel.rss]=$(vm VmRSS "$LT_PID")
mapfile -t NG_PIDS < <(pids_of "$NG_PID")
R[idle.nginx.rss]=$(vm VmRSS "${NG_PIDS[@]}")
log "idle RSS: Lintel ${R[idle.lintel.rss]} kB, nginx master+worker ${R[idle.nginx.rss]} kB"

log "HTTP keep-alive"
scenario http http "$CONNS"
log "HTTPS keep-alive (ECDSA P-256)"
scenario https https "$CONNS"
log "new TLS connection per request (ECDSA P-256)"
scenario tls_ecdsa https "$TLS_CONNS" -H "Connection: close"

# ---------------------------------------------------------------- churn
# A steady load at half the keep-alive rate while the routes change 10 times a second.
churn() { # NAME PID URL CHANGE_COMMAND
    local name=$1 pid=$2 url=$3 change=$4 rate delay changer
    rate=${R[http.rate]}
    delay=$(((CONNS * 1000 + rate / 2) / rate))
    (
        sleep 1
        for i in $(seq $((CHURN_SECS * 10))); do
            "$change" "$i"
            sleep 0.1
        done
    ) &
    changer=$!
    PIDS+=("$changer")
    run_wrk "$name" "$pid" "$url" $((CHURN_SECS + 2)) "$CONNS" "$delay"
    wait "$changer" || true
}
change_lintel() { # N: rewrite the routes atomically (as a ConfigMap update does)
    lintel_manifests "/v$1" >"$WORK/lt/.routes.tmp"
    mv "$WORK/lt/.routes.tmp" "$WORK/lt/routes.yaml"
}
change_nginx() { # N: rewrite the config and reload
    nginx_proxy_conf ecdsa "/v$1" >"$WORK/ng/nginx.conf"
    nginx -p "$WORK/ng/" -c "$WORK/ng/nginx.conf" -e "$WORK/ng/error.log" -s reload 2>>"$WORK/ng/reload.log"
}
log "route churn: 10 changes a second for ${CHURN_SECS} s"
churn churn.nginx "$NG_PID" "http://127.0.0.1:$NG_HTTP$URL_PATH" change_nginx
swaps_before=$(grep -c 'route table swapped' "$WORK/lintel.log" || true)
churn churn.lintel "$LT_PID" "http://127.0.0.1:$LT_HTTP$URL_PATH" change_lintel
R[churn.lintel.swaps]=$(($(grep -c 'route table swapped' "$WORK/lintel.log" || true) - swaps_before))

mapfile -t NG_PIDS < <(pids_of "$NG_PID")
R[peak.lintel.rss]=$(vm VmHWM "$LT_PID")
R[peak.nginx.worker.rss]=$(vm VmHWM "${NG_PIDS[@]:1}")
R[peak.nginx.rss]=$(vm VmHWM "${NG_PIDS[@]}")
stop_proxies

log "new TLS connection per request (RSA-2048)"
start_proxies rsa
scenario tls_rsa https "$TLS_CONNS" -H "Connection: close"
stop_proxies

# ---------------------------------------------------------------- scale
log "scale: compile and lookup"
while read -r line; do
    n=$(kv n "$line")
    R[scale.$n.compile]=$(kv compile_ms_median "$line") R[scale.$n.lookup]=$(kv lookup_ns "$line")
    R[scale.$n.routes]=$(kv routes "$line")
done < <(taskset -c 1 "$SCALE_BIN" measure "${SCALES[@]}" | grep '^SCALE')
for n in "${SCALES[@]}"; do
    log "scale: Lintel serving $n Ingresses"
    rm -rf "$WORK/lt" && mkdir -p "$WORK/lt"
    "$SCALE_BIN" write "$WORK/lt" "$n" >/dev/null
    started=$(date +%s%N)
    taskset -c 1 "$LINTEL" run --manifests "$WORK/lt" --worker-threads 1 --access-log false --http-addr "127.0.0.1:$LT_HTTP" \
        --https-addr "127.0.0.1:$LT_HTTPS" --admin-addr "127.0.0.1:$LT_ADMIN" --log-format json >"$WORK/scale.log" 2>&1 &
    LT_PID=$!
    PIDS+=("$LT_PID")
    wait_http "http://127.0.0.1:$LT_ADMIN/readyz"
    R[scale.$n.ready]=$((($(date +%s%N) - started) / 1000000))
    sleep 1
    R[scale.$n.rss]=$(vm VmRSS "$LT_PID") R[scale.$n.hwm]=$(vm VmHWM "$LT_PID")
    R[scale.$n.took]=$(grep -o '"took_ms":[0-9.]*' "$WORK/scale.log" | head -1 | cut -d: -f2 | xargs printf '%.1f') || true
    stop "$LT_PID"
done

# ---------------------------------------------------------------- report
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
row() { # SCENARIO KIND PROXY
    local k=$1.$3.$2
    printf '| %s | %s | %s | %s | %s | %s | %s |' "$3" "${R[$k.rps]}" "${R[$k.cpu]}" \
        "$(ms "${R[$k.p50]}")" "$(ms "${R[$k.p99]}")" "$(ms "${R[$k.p999]}")" "${R[$k.errors]}"
}
ratio_row() { # SCENARIO KIND
    local l=$1.lintel.$2 n=$1.nginx.$2
    printf '| **Lintel / nginx** | %s | %s | %s | %s | %s | |' "$(ratio "${R[$l.rps]}" "${R[$n.rps]}")" \
        "$(ratio "${R[$l.cpu]}" "${R[$n.cpu]}")" "$(ratio "${R[$l.p50]}" "${R[$n.p50]}")" \
        "$(ratio "${R[$l.p99]}" "${R[$n.p99]}")" "$(ratio "${R[$l.p999]}" "${R[$n.p999]}")"
}
table() { # SCENARIO TITLE
    local kind
    echo "### $2"
    echo
    for kind in sat fixed; do
        if [[ $kind == sat ]]; then
            echo "At saturation, the median of $ROUNDS alternating rounds per proxy (CPU µs/req ratio round by round: ${R[$1.cpu_ratios]}):"
        else
            echo "At a fixed rate: target ${R[$1.rate]} req/s, half the slower proxy's saturation rate (wrk's \`delay()\` is closed-loop, so the rate reached is in the req/s column):"
        fi
        echo
        echo "| proxy | req/s | CPU µs/req | p50 ms | p99 ms | p99.9 ms | errors |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        [[ $1 == http && $kind == sat ]] && printf '| upstream alone (ceiling) | %s | %s | %s | %s | %s | %s |\n' \
            "${R[ceiling.rps]}" "${R[ceiling.cpu]}" "$(ms "${R[ceiling.p50]}")" "$(ms "${R[ceiling.p99]}")" \
            "$(ms "${R[ceiling.p999]}")" "${R[ceiling.errors]}"
        row "$1" "$kind" nginx
        echo
        row "$1" "$kind" lintel
        echo
        ratio_row "$1" "$kind"
        echo
        echo
        if [[ $kind == sat ]]; then
            echo "Core 0 per request (medians): wrk ${R[$1.nginx.sat.wrk]} µs CPU against nginx, ${R[$1.lintel.sat.wrk]} against Lintel; the upstream ${R[$1.nginx.sat.up]} and ${R[$1.lintel.sat.up]} µs. Wake-up interrupts taken by the proxy's core: ${R[$1.nginx.sat.wakes]} and ${R[$1.lintel.sat.wakes]} per request."
            echo
        fi
    done
}

COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "# Lintel vs nginx: benchmark results"
    echo
    echo "Produced by \`$([[ $QUICK == 1 ]] && echo "QUICK=1 ")bash benches/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    [[ $QUICK == 1 ]] && echo "**QUICK mode: short runs, rough figures.**"
    echo
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), Linux $(uname -r)"
    echo "- Load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(rustc --version), Lintel $COMMIT$DIRTY"
    echo "- Setup: loopback only. Proxy under test alone on core 1 with one worker (nginx \`worker_processes 1\`, Lintel \`--worker-threads 1\`); wrk (1 thread) and the upstream (nginx, \`return 200 \"ok\"\`, one process) share core 0. nginx: upstream keepalive 320, \`proxy_buffering off\`, access logs off in both (Lintel \`--access-log false\`), the same X-Forwarded-* headers Lintel sets and, like Lintel, an X-Request-ID (the client's or a random one) sent upstream and returned. Saturation runs ${DURATION} s with $CONNS connections ($TLS_CONNS for new TLS connections), $ROUNDS rounds alternating between the proxies, medians reported; fixed-rate runs $((DURATION * 8 / 10)) s, same connections, each throttled by wrk's \`delay()\`."
    echo "- CPU µs/req: utime+stime of the proxy's process (all threads; nginx master and worker) from /proc/PID/stat before and after the run, divided by completed requests."
    echo
    echo "## Requests"
    echo
    table http "HTTP/1.1 keep-alive"
    table https "HTTPS keep-alive (TLS 1.3, ECDSA P-256)"
    table tls_ecdsa "New TLS connection per request (ECDSA P-256)"
    table tls_rsa "New TLS connection per request (RSA-2048)"
    echo "For new connections, wrk starts its latency clock after the handshake: the latency columns are the request on a fresh connection; req/s and CPU µs/req include the handshake."
    echo
    echo "## Memory"
    echo
    echo "| | Lintel | nginx (master + worker) | Lintel / nginx |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| idle RSS (MB) | $(mb "${R[idle.lintel.rss]}") | $(mb "${R[idle.nginx.rss]}") | $(ratio "${R[idle.lintel.rss]}" "${R[idle.nginx.rss]}") |"
    echo "| peak RSS after the runs above (VmHWM, MB) | $(mb "${R[peak.lintel.rss]}") | $(mb "${R[peak.nginx.rss]}") (worker alone $(mb "${R[peak.nginx.worker.rss]}")) | $(ratio "${R[peak.lintel.rss]}" "${R[peak.nginx.rss]}") |"
    echo
    echo "nginx's master and worker share pages, so their sum counts those twice."
    echo
    echo "## Scale (Lintel)"
    echo
    echo "| Ingresses | routes | compile ms (median) | lookup ns | RSS serving them (MB) | peak RSS (MB) | start to ready (ms) | first rebuild took_ms (log) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for n in "${SCALES[@]}"; do
        echo "| $n | ${R[scale.$n.routes]} | ${R[scale.$n.compile]} | ${R[scale.$n.lookup]} | $(mb "${R[scale.$n.rss]}") | $(mb "${R[scale.$n.hwm]}") | ${R[scale.$n.ready]} | ${R[scale.$n.took]:-–} |"
    done
    echo
    echo "Each Ingress has its own host and 3 paths, on N/10 Services (\`lintel::fixtures::snapshot\`); compile and lookup from \`examples/bench_scale.rs\` on core 1, lookup over 4,096 requests spread across the hosts (host normalisation included). RSS from a real \`lintel run\` reading the same objects from a manifests file."
    echo
    echo "## Route churn"
    echo
    echo "Routes changed 10 times a second for ${CHURN_SECS} s (Lintel: the manifests file replaced by rename; nginx: config rewritten and \`nginx -s reload\`), under a steady HTTP keep-alive load throttled to a target of ${R[http.rate]} req/s ($CONNS connections, run for $((CHURN_SECS + 2)) s)."
    echo
    echo "| proxy | requests | failed (socket errors + non-2xx) | p99 ms | max latency ms |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for p in nginx lintel; do
        echo "| $p | ${R[churn.$p.requests]} | ${R[churn.$p.errors]} | $(ms "${R[churn.$p.p99]}") | $(ms "${R[churn.$p.max]}") |"
    done
    echo
    echo "Lintel swapped its table ${R[churn.lintel.swaps]} times during the churn; nginx was reloaded $((CHURN_SECS * 10)) times."
} >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
cat "$OUT"
log "written to $OUT"
