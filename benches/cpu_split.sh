#!/usr/bin/env bash
# Where a proxied request's CPU goes, user space against kernel, for Lintel and nginx in the
# same conditions: plain HTTP keep-alive at saturation, the proxy alone on core 1 with one
# worker, wrk and the upstream (nginx, `return 200`) on core 0. Runs alternate between the
# two proxies ROUNDS times, so a change in the host's speed hits both alike.
#
#   bash benches/cpu_split.sh            # 3 rounds of 8 s each per proxy, ~1 minute
#   STRACE=1 bash benches/cpu_split.sh   # also counts system calls per request (strace -c)
#   FLOOR=1 bash benches/cpu_split.sh    # also HAProxy (one thread, same core) as a byte relay
#                                        # (mode tcp: the floor) and as an HTTP proxy (mode http)
#
# Prints, per run: requests/s, utime and stime µs per request from /proc/PID/stat (all
# threads; for nginx the worker, whose master does no work under load), minor page faults and
# context switches per request, and the upstream's CPU µs per request (to see whether a proxy
# makes the upstream work harder). Knobs: ROUNDS, SECS,
# CONNS (50), PORT_BASE (18200), SKIP_BUILD=1, TLS=1 (HTTPS keep-alive instead).
# Needs nginx, wrk, curl, openssl (installed from Debian packages when missing; root then).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONNS=${CONNS:-50}
TLS=${TLS:-0}
PORT_BASE=${PORT_BASE:-18200}
UP=$((PORT_BASE + 1)) NG=$((PORT_BASE + 2)) NGS=$((PORT_BASE + 3))
LT=$((PORT_BASE + 4)) LTS=$((PORT_BASE + 5)) ADMIN=$((PORT_BASE + 6))
HOST=app.bench.local
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

need nginx wrk curl openssl
if [[ ${STRACE:-0} == 1 ]]; then need strace; fi
if [[ ${FLOOR:-0} == 1 ]]; then need haproxy; fi
RELAY=$((PORT_BASE + 7)) HAP=$((PORT_BASE + 8))
build_lintel
work_dir split
certificate
start_upstream "$UP"
lintel_manifests "$HOST" "$UP"
mkdir -p "$WORK/ng"
cat >"$WORK/ng/nginx.conf" <<EOF
$(nginx_user)
worker_processes 1;
daemon off;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/ng/body;
    proxy_temp_path $WORK/ng/proxy;
    upstream up { server 127.0.0.1:$UP; keepalive 320; }
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
        listen 127.0.0.1:$NG;
        listen 127.0.0.1:$NGS ssl;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        server_name $HOST;
        location /api { proxy_pass http://up; }
        location / { proxy_pass http://up; }
    }
}
EOF
taskset -c 1 nginx -p "$WORK/ng/" -c "$WORK/ng/nginx.conf" &
PIDS+=("$!")
taskset -c 1 "$LINTEL" run --manifests "$WORK/lt" --worker-threads 1 --access-log false \
    --default-certificate default/bench --http-addr "127.0.0.1:$LT" --https-addr "127.0.0.1:$LTS" \
    --admin-addr "127.0.0.1:$ADMIN" >"$WORK/lintel.log" 2>&1 &
LT_PID=$!
PIDS+=("$LT_PID")
wait_http "http://127.0.0.1:$ADMIN/readyz"
contestants=("nginx" "lintel")
if [[ ${FLOOR:-0} == 1 ]]; then
    # The floor: a byte relay, one upstream connection per client connection, so the same
    # 2 receives and 2 sends per request as a proxy, and no HTTP work. Beside it HAProxy as an
    # HTTP proxy doing about the same header work as the other two (forwarded headers, a
    # request id sent upstream and returned). Plain HTTP only.
    [[ $TLS == 1 ]] && { log "FLOOR=1 measures plain HTTP only"; exit 2; }
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend relay
    mode tcp
    bind 127.0.0.1:$RELAY
    default_backend relay_up
backend relay_up
    mode tcp
    server up 127.0.0.1:$UP
frontend web
    mode http
    bind 127.0.0.1:$HAP
    option http-keep-alive
    option forwardfor
    unique-id-format %[rand(4294967295),hex]%[rand(4294967295),hex]%[rand(4294967295),hex]%[rand(4294967295),hex]
    http-request set-var(txn.req_id) req.hdr(x-request-id) if { req.hdr(x-request-id) -m found }
    http-request set-var(txn.req_id) unique-id unless { var(txn.req_id) -m found }
    http-request set-header X-Request-ID %[var(txn.req_id)]
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    http-response set-header X-Request-ID %[var(txn.req_id)]
    default_backend web_up
backend web_up
    mode http
    http-reuse always
    server up 127.0.0.1:$UP
EOF
    taskset -c 1 haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HA_PID=$!
    PIDS+=("$HA_PID")
    wait_http "http://127.0.0.1:$RELAY/api/x" -H "Host: $HOST"
    wait_http "http://127.0.0.1:$HAP/api/x" -H "Host: $HOST"
    contestants+=("relay" "haproxy")
fi
if [[ $TLS == 1 ]]; then scheme=https ng_port=$NGS lt_port=$LTS; else scheme=http ng_port=$NG lt_port=$LT; fi
wait_http "$scheme://127.0.0.1:$ng_port/api/x" -H "Host: $HOST"
wait_http "$scheme://127.0.0.1:$lt_port/api/x" -H "Host: $HOST"
NG_WORKER=$(pgrep -P "$(cat "$WORK/ng/nginx.pid")" | head -1)
UP_PID=$(cat "$WORK/up/nginx.pid")

cat >"$WORK/count.lua" <<'EOF'
function done(summary, latency, requests)
  io.write(string.format("RESULT %d\n", summary.requests))
end
EOF
# utime, stime, minor faults, context switches (all threads)
ticks() {
    local switches
    switches=$(cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}')
    awk -v c="$switches" '{print $14, $15, $10, c}' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)
# TCP segments sent on this network namespace (the proxy's, the load generator's and the
# upstream's): extra segments (bare ACKs) are kernel work a proxy can cause.
segments() { awk '/^Tcp:/ {n++; if (n == 2) print $12}' /proc/net/snmp; }

run() { # NAME PID PORT
    local name=$1 pid=$2 port=$3 before after requests
    read -r u0 s0 f0 c0 < <(ticks "$pid")
    read -r up0 us0 _ _ < <(ticks "$UP_PID")
    local seg0 seg1
    seg0=$(segments)
    requests=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$WORK/count.lua" -H "Host: $HOST" \
        "$scheme://127.0.0.1:$port/api/v1/items" | awk '/^RESULT/ {print $2}')
    read -r u1 s1 f1 c1 < <(ticks "$pid")
    read -r up1 us1 _ _ < <(ticks "$UP_PID")
    seg1=$(segments)
    awk -v g=$((seg1 - seg0)) -v n="$name" -v r="$requests" -v s="$SECS" -v hz="$HZ" -v u=$((u1 - u0)) -v k=$((s1 - s0)) \
        -v f=$((f1 - f0)) -v c=$((c1 - c0)) -v up=$((up1 + us1 - up0 - us0)) 'BEGIN {
        printf "%-7s %8.0f req/s  user %5.1f  kernel %5.1f  total %5.1f µs/request  faults %.3f  switches %.3f  segments %.2f /request  (upstream %.1f µs/request)\n",
            n, r / s, u * 1e6 / hz / r, k * 1e6 / hz / r, (u + k) * 1e6 / hz / r, f / r, c / r, g / r, up * 1e6 / hz / r }'
}

# contestant NAME: its PID and port
contestant() {
    case $1 in
    nginx) echo "$NG_WORKER $ng_port" ;;
    lintel) echo "$LT_PID $lt_port" ;;
    relay) echo "$HA_PID $RELAY" ;;
    haproxy) echo "$HA_PID $HAP" ;;
    esac
}
for name in "${contestants[@]}"; do
    read -r pid port < <(contestant "$name")
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s -H "Host: $HOST" "$scheme://127.0.0.1:$port/api/v1/items" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    for name in "${contestants[@]}"; do
        read -r pid port < <(contestant "$name")
        run "$name" "$pid" "$port"
    done
done

if [[ ${STRACE:-0} == 1 ]]; then
    for name in "${contestants[@]}"; do
        read -r pid port < <(contestant "$name")
        strace -c -f -p "$pid" -o "$WORK/$name.strace" &
        tracer=$!
        sleep 0.5
        requests=$(taskset -c 0 wrk -t1 -c"$CONNS" -d3s -s "$WORK/count.lua" -H "Host: $HOST" \
            "$scheme://127.0.0.1:$port/api/v1/items" | awk '/^RESULT/ {print $2}')
        kill -INT "$tracer"
        wait "$tracer" 2>/dev/null || true
        echo "$name: system calls per request (strace -c, $requests requests)"
        awk -v r="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
            printf "  %-16s %6.2f\n", $NF, $4 / r }' "$WORK/$name.strace" | sort -k2 -nr | head -8
    done
fi
