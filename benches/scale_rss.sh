#!/usr/bin/env bash
# Memory of a real `lintel run` serving N generated Ingresses from a manifests directory (the
# "scale" RSS of benches/compare.sh, alone, without the nginx load tests), and after one change
# to the manifests (the whole file re-read and the table rebuilt).
#
#   bash benches/scale_rss.sh 10 10000        # builds lintel and bench_scale (release) first
#   SKIP_BUILD=1 bash benches/scale_rss.sh 10000
#
# One line per N: start to ready, VmRSS and VmHWM one second after ready, the same after the
# change has been applied, and the first rebuild's took_ms from the log. Flags as in
# compare.sh (one worker thread, access log off, pinned to core 1 when there are 2 cores).
# LINTEL=path measures another build of lintel (say, of an older commit).
# Every process started is stopped by PID on exit. Knobs: PORT_BASE (default 18100), LINTEL.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT_BASE=${PORT_BASE:-18100}
HTTP=$PORT_BASE HTTPS=$((PORT_BASE + 1)) ADMIN=$((PORT_BASE + 2))
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --quiet --bin lintel --example bench_scale)
fi
LINTEL=${LINTEL:-$ROOT/target/release/lintel}
SCALE_BIN=$ROOT/target/release/examples/bench_scale
PIN=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then PIN=(taskset -c 1); fi

WORK=$(mktemp -d)
PID=
cleanup() {
    if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

vm() { awk -v f="$1:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
swaps() { grep -c 'route table swapped' "$WORK/lintel.log" || true; }

for n in "${@:-10000}"; do
    rm -rf "$WORK/m" && mkdir -p "$WORK/m"
    "$SCALE_BIN" write "$WORK/m" "$n" >/dev/null
    file=$WORK/m/cluster-$n.yaml
    started=$(date +%s%N)
    "${PIN[@]}" "$LINTEL" run --manifests "$WORK/m" --worker-threads 1 --access-log false \
        --http-addr "127.0.0.1:$HTTP" --https-addr "127.0.0.1:$HTTPS" --admin-addr "127.0.0.1:$ADMIN" \
        --log-format json >"$WORK/lintel.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do
        curl -fs -o /dev/null "http://127.0.0.1:$ADMIN/readyz" && break
        sleep 0.05
    done
    ready_ms=$((($(date +%s%N) - started) / 1000000))
    sleep 1
    rss=$(vm VmRSS) hwm=$(vm VmHWM)
    # One more Ingress, written atomically as a ConfigMap update is: the file is read again.
    before=$(swaps)
    cp "$file" "$WORK/.next"
    printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: extra, namespace: default}\nspec:\n  ingressClassName: lintel\n  rules:\n  - host: extra.example.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: svc-0, port: {number: 80}}}}\n' >>"$WORK/.next"
    mv "$WORK/.next" "$file"
    for _ in $(seq 300); do
        (($(swaps) > before)) && break
        sleep 0.1
    done
    sleep 1
    rss2=$(vm VmRSS) hwm2=$(vm VmHWM)
    took=$(grep -o '"took_ms":[0-9.]*' "$WORK/lintel.log" | head -1 | cut -d: -f2 | xargs printf '%.1f')
    echo "SCALE_RSS n=$n ready_ms=$ready_ms rss_mb=$rss hwm_mb=$hwm changed=$(($(swaps) - before)) rss_after_change_mb=$rss2 hwm_after_change_mb=$hwm2 first_rebuild_ms=${took:-?}"
    kill "$PID" && wait "$PID" 2>/dev/null || true
    PID=
done
