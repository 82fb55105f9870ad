# Shared by benches/profile.sh and benches/cpu_split.sh (sourced, not run): tool installs,
# a work directory whose processes are stopped on exit, waiting for an answer, a test
# certificate, the upstream (nginx answering `200 ok`) and Lintel's manifests for it.
# Callers set ROOT and `set -euo pipefail` first.

log() { printf '>> %s\n' "$*" >&2; }

# need TOOL...: installs the missing ones from Debian packages (nginx as nginx-light).
need() {
    local missing=() tool
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    local packages=("${missing[@]/#nginx/nginx-light}")
    packages=("${packages[@]/#perf/linux-perf}")
    apt-get update -qq && apt-get install -y -qq "${packages[@]}" >/dev/null
    # The Debian package starts a system nginx; it is not ours to measure.
    if [[ -f /run/nginx.pid ]]; then nginx -s quit 2>/dev/null || true; fi
}

build_lintel() {
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet --bin lintel)
    fi
    LINTEL=$ROOT/target/release/lintel
}

# work_dir NAME: WORK, a temporary directory removed on exit, with every PID in PIDS stopped.
work_dir() {
    WORK=$(mktemp -d "/tmp/lintel-$1.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

# wait_http URL [curl args]: waits up to WAIT_SECS (10) for any answer.
wait_http() {
    local url=$1 i
    shift
    for i in $(seq $((${WAIT_SECS:-10} * 10))); do
        curl -fsk -o /dev/null "$@" "$url" && return 0
        sleep 0.1
    done
    log "no answer from $url"
    return 1
}

# certificate: $WORK/tls.crt and tls.key, ECDSA P-256 for *.bench.local.
certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=bench.local \
        -addext "subjectAltName=DNS:*.bench.local" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
}

nginx_user() { ((EUID == 0)) && echo "user root;" || true; }

# start_upstream PORT: one nginx process on core 0 answering `200 ok`; waits for it.
start_upstream() {
    mkdir -p "$WORK/up"
    cat >"$WORK/up/nginx.conf" <<EOF
$(nginx_user)
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
        listen 127.0.0.1:$1;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
    taskset -c 0 nginx -p "$WORK/up/" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" &
    PIDS+=("$!")
    wait_http "http://127.0.0.1:$1/"
}

# lintel_manifests HOST UPSTREAM_PORT: $WORK/lt/routes.yaml, HOST's /health (Exact), /api and /
# (Prefix) to the upstream, the certificate as Secret default/bench.
lintel_manifests() {
    mkdir -p "$WORK/lt"
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
ports: [{name: http, port: $2}]
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
    - host: $1
      http:
        paths:
          - {path: /health, pathType: Exact, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
          - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
EOF
}
