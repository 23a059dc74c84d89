#!/usr/bin/env bash
# Benchmark: what turning metrics on (`metrics.listen`) costs a forwarded request, counted in
# instructions, which do not depend on how busy this noisy machine is. The release proxy runs
# under valgrind's callgrind in front of a static nginx upstream (127.0.0.1 only); after a
# warm-up its counters are zeroed, N small requests are sent (HTTP/1.1 keep-alive and HTTP/2,
# h2load -n), and the instructions the proxy executed are divided by N. Metrics off, then on,
# ROUNDS times alternating; nothing scrapes /metrics meanwhile (a scrape every 15 s is not a
# per-request cost). The requests-per-second side is `METRICS=on bash bench/compare-nginx.sh`.
#
#   bash bench/metrics-cost.sh                   # N=2000, 2 rounds
#   N=5000 ROUNDS=3 bash bench/metrics-cost.sh
#   BIN=/path/to/other/build bash bench/metrics-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
ROUNDS=${ROUNDS:-2}

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx    >/dev/null || need+=(nginx-light)
command -v h2load   >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
source bench/common.sh

wait_port() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on port $1" >&2; exit 1; }

UP=$(free_port)
mkdir -p "$T/www/System/Info"
head -c 1024 /dev/urandom > "$T/www/1k.bin"
echo '{"ServerName":"bench","Version":"10.10.7","Id":"0"}' > "$T/www/System/Info/Public"
chmod -R a+rX "$T"
cat > "$T/upstream.conf" <<NGINX
worker_processes 1; pid $T/up.pid; error_log $T/up.err warn; daemon off; events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000; server { listen 127.0.0.1:$UP; root $T/www; } }
NGINX
nginx -c "$T/upstream.conf" & PIDS+=($!)
wait_port "$UP"

# Instructions per request of one proxy run (metrics $1, protocol $2).
measure() {
  local metrics=$1 proto=$2 port out pid
  port=$(free_port); out="$T/cg.$metrics.$proto.out"
  proxy_yaml "$port" "$UP" > "$T/proxy.yaml"
  [ "$metrics" = on ] && echo "metrics: { listen: 127.0.0.1:$(free_port) }" >> "$T/proxy.yaml"
  valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --collect-atstart=yes \
    "$BIN" --config "$T/proxy.yaml" 2>"$T/vg.log" & pid=$!
  wait_port "$port"
  local flags=(); [ "$proto" = h1 ] && flags=(--h1)
  h2load "${flags[@]}" -n 300 -c 4 -m 1 "https://127.0.0.1:$port/1k.bin" >/dev/null 2>&1   # warm-up
  callgrind_control -z "$pid" >/dev/null 2>&1
  h2load "${flags[@]}" -n "$N" -c 4 -m 1 "https://127.0.0.1:$port/1k.bin" > "$T/h2load.out" 2>&1
  grep -q " 0 failed, 0 errored, 0 timeout" "$T/h2load.out" || { grep "requests:" "$T/h2load.out" >&2; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The dump after zeroing holds only the measured requests: sum every part's totals.
  local ir; ir=$(for f in "$out".*; do awk '/^summary:/ {print $2; exit} /^totals:/ {t=$2} END {if (t) print t}' "$f" | head -1; done | awk '{s += $1} END {print s+0}')
  rm -f "$out" "$out".*
  awk -v ir="$ir" -v n="$N" 'BEGIN { printf "%.0f\n", ir / n }'
}

echo "# metrics cost: instructions per forwarded 1 KiB request (callgrind), N=$N, $(date -u +%F)"
echo
echo "| round | protocol | metrics off | metrics on | on / off |"
echo "|---|---|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  for proto in h1 h2; do
    off=$(measure off "$proto"); on=$(measure on "$proto")
    echo "| $r | $proto | $off | $on | $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }') |"
  done
done
