#!/usr/bin/env bash
# Benchmark: jellyfin-sso-proxy against nginx doing the same TLS reverse proxying, on one
# machine, in one run, in front of the same upstream (an nginx serving static files over
# plain HTTP). Everything listens on 127.0.0.1 only. Prints a markdown report (ratios to
# nginx) and writes it to bench/results-latest.md.
#
#   bash bench/compare-nginx.sh            # full run (~4 minutes)
#   DURATION=5 bash bench/compare-nginx.sh # shorter wrk/h2load runs
#   BIN=/path/to/other/build bash bench/compare-nginx.sh   # measure another build (A/B)
#   METRICS=on bash bench/compare-nginx.sh       # the proxy with metrics.listen set (and scraped)
#   METRICS=compare bash bench/compare-nginx.sh  # also: a second proxy with metrics on, measured
#                                                # against the first in ROUNDS interleaved rounds
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
METRICS=${METRICS:-off}
ROUNDS=${ROUNDS:-3}
case $METRICS in off|on|compare) ;; *) echo "METRICS must be off, on or compare" >&2; exit 2;; esac

need=()
command -v nginx  >/dev/null || need+=(nginx-light)
command -v wrk    >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl   >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  cargo build --release -q
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/jellyfin-sso-proxy
fi

T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); OURS=$(free_port); MET=$(free_port); OURS_M=$(free_port); MET_M=$(free_port)

# Content: 1 KiB and 1 GiB files.
mkdir -p "$T/www"
head -c 1024 /dev/urandom > "$T/www/1k.bin"
mkdir -p "$T/www/System/Info" && echo '{"ServerName":"bench","Version":"10.10.7","Id":"0"}' > "$T/www/System/Info/Public"
head -c $((1024*1024*1024)) /dev/zero > "$T/www/1g.bin"
chmod -R a+rX "$T"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null

common="worker_processes 2; pid PIDFILE; error_log ERRLOG warn; daemon off; events { worker_connections 4096; }"
# Upstream: static files over plain HTTP.
cat > "$T/upstream.conf" <<NGINX
${common//PIDFILE/$T/up.pid}
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  server { listen 127.0.0.1:$UP; root $T/www; } }
NGINX
sed -i "s#ERRLOG#$T/up.err#" "$T/upstream.conf"
# nginx as the TLS reverse proxy, buffering off as suits streaming.
cat > "$T/proxy.conf" <<NGINX
${common//PIDFILE/$T/ngx.pid}
http { access_log off; keepalive_requests 100000;
  upstream jf { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NGX ssl http2; ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://jf; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off; proxy_request_buffering off; } } }
NGINX
sed -i "s#ERRLOG#$T/ngx.err#" "$T/proxy.conf"
cat > "$T/proxy.yaml" <<YAML
listen: 127.0.0.1:$OURS
public_url: https://127.0.0.1:$OURS
state_dir: $T/state
tls: { cert: $T/cert.pem, key: $T/key.pem }
jellyfin: { url: "http://127.0.0.1:$UP" }
log: { level: warn }
YAML
if [ "$METRICS" = on ]; then echo "metrics: { listen: 127.0.0.1:$MET }" >> "$T/proxy.yaml"; fi
# The second proxy of METRICS=compare: the same, with metrics on.
sed -e "s/127.0.0.1:$OURS/127.0.0.1:$OURS_M/g" -e "s#$T/state#$T/state-m#" "$T/proxy.yaml" | grep -v '^metrics:' > "$T/proxy-m.yaml"
echo "metrics: { listen: 127.0.0.1:$MET_M }" >> "$T/proxy-m.yaml"

nginx -c "$T/upstream.conf" & PIDS+=($!)
nginx -c "$T/proxy.conf" & PIDS+=($!)
"$BIN" --config "$T/proxy.yaml" 2>"$T/ours.log" & OURS_PID=$!; PIDS+=($OURS_PID)
WAIT_PORTS="$UP $NGX $OURS"
if [ "$METRICS" = compare ]; then
  "$BIN" --config "$T/proxy-m.yaml" 2>"$T/ours-m.log" & OURS_M_PID=$!; PIDS+=($OURS_M_PID)
  WAIT_PORTS="$WAIT_PORTS $OURS_M $MET_M"
fi
[ "$METRICS" = on ] && WAIT_PORTS="$WAIT_PORTS $MET"
sleep 0.5; kill -0 $OURS_PID 2>/dev/null || { cat "$T/ours.log"; exit 1; }
for p in $WAIT_PORTS; do for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done; done

rss_kib() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
nginx_rss_kib() { local t=0; for p in $(pgrep -f "nginx.*$T/proxy.conf"); do t=$((t + $(rss_kib "$p"))); done; echo $t; }
IDLE_KIB=$(rss_kib $OURS_PID)

wrk_run() { # url → "req/s p99_ms"
  wrk -t2 -c64 -d3s "$1" >/dev/null 2>&1 || true   # warm-up
  local out; out=$(wrk -t2 -c64 -d"${DURATION}s" --latency "$1")
  local rps p99 unit
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  read -r p99 unit < <(awk '$1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[a-z]/,"",v); print v, u}' <<<"$out")
  case $unit in us) p99=$(awk -v v="$p99" 'BEGIN{print v/1000}');; s) p99=$(awk -v v="$p99" 'BEGIN{print v*1000}');; esac
  echo "$rps $p99"
}
h2_run() { # url → req/s
  h2load -c64 -m10 -D 3 "$1" >/dev/null 2>&1 || true
  h2load -c64 -m10 -D "$DURATION" "$1" 2>/dev/null | awk '/finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}'
}
download() { # url flags → MB/s (median of 3)
  local v=()
  local out code speed
  for _ in 1 2 3; do
    out=$(curl -k -s $2 -o /dev/null -w '%{http_code} %{speed_download} %{size_download}' "$1" || true)
    read -r code speed size <<<"$out"
    [ "$code" = 200 ] && [ "$size" = $((1024*1024*1024)) ] || echo "download $1 failed: $out" >&2
    v+=("$speed")
  done
  printf '%s\n' "${v[@]}" | sort -n | sed -n 2p | awk '{printf "%.0f", $1/1e6}'
}

for u in "https://127.0.0.1:$NGX/1k.bin" "https://127.0.0.1:$OURS/1k.bin"; do
  code=$(curl -k -s -o /dev/null -w '%{http_code}' "$u"); [ "$code" = 200 ] || { echo "setup broken: $u answered $code" >&2; exit 1; }
done
# With metrics on, Prometheus scrapes while the load runs (every second here, far more often
# than a real scrape interval, so the cost of encoding is in the numbers).
scraper() { while true; do curl -s -o /dev/null "http://127.0.0.1:$1/metrics" || true; sleep 1; done; }
if [ "$METRICS" = on ]; then scraper $MET & PIDS+=($!); fi
if [ "$METRICS" = compare ]; then scraper $MET_M & PIDS+=($!); fi
echo "running (each load ${DURATION}s)..." >&2
read -r N1 NP1 < <(wrk_run "https://127.0.0.1:$NGX/1k.bin")
read -r O1 OP1 < <(wrk_run "https://127.0.0.1:$OURS/1k.bin")
read -r N2 NP2 < <(wrk_run "https://127.0.0.1:$NGX/1k.bin")
read -r O2 OP2 < <(wrk_run "https://127.0.0.1:$OURS/1k.bin")
NH2=$(h2_run "https://127.0.0.1:$NGX/1k.bin"); OH2=$(h2_run "https://127.0.0.1:$OURS/1k.bin")
ND1=$(download "https://127.0.0.1:$NGX/1g.bin" --http1.1)
# Our memory while streaming 1 GiB.
PEAK=0
( while kill -0 $OURS_PID 2>/dev/null; do r=$(rss_kib $OURS_PID); echo "$r"; sleep 0.1; done ) > "$T/rss.log" & SAMPLER=$!
OD1=$(download "https://127.0.0.1:$OURS/1g.bin" --http1.1)
kill $SAMPLER 2>/dev/null || true
BEFORE_DL=$(rss_kib $OURS_PID)
PEAK=$(sort -n "$T/rss.log" | tail -1)
ND2=$(download "https://127.0.0.1:$NGX/1g.bin" --http2)
OD2=$(download "https://127.0.0.1:$OURS/1g.bin" --http2)
sleep 1
AFTER_KIB=$(rss_kib $OURS_PID)
NGX_KIB=$(nginx_rss_kib)

# Metrics off against on: the same build, same config but metrics.listen, interleaved.
if [ "$METRICS" = compare ]; then
  echo "metrics off vs on: $ROUNDS interleaved rounds..." >&2
  OFF1=(); ON1=(); OFF2=(); ON2=()
  for r in $(seq "$ROUNDS"); do
    read -r a _ < <(wrk_run "https://127.0.0.1:$OURS/1k.bin"); OFF1+=("$a")
    read -r a _ < <(wrk_run "https://127.0.0.1:$OURS_M/1k.bin"); ON1+=("$a")
    OFF2+=("$(h2_run "https://127.0.0.1:$OURS/1k.bin")")
    ON2+=("$(h2_run "https://127.0.0.1:$OURS_M/1k.bin")")
  done
  mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.0f", s/NR}'; }
  list() { local IFS=/; echo "$*"; }
  SCRAPED=$(curl -s "http://127.0.0.1:$MET_M/metrics" | awk '/^jsp_http_requests_total/ {s+=$2} END {printf "%.0f", s}')
fi

avg() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (a+b)/2}'; }
avgf() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (a+b)/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b==0) print "n/a"; else printf "%.2f", a/b}'; }
NRPS=$(avg "$N1" "$N2"); ORPS=$(avg "$O1" "$O2"); NP99=$(avgf "$NP1" "$NP2"); OP99=$(avgf "$OP1" "$OP2")

report=$(cat <<MD
## Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -m))

| measure | nginx | jellyfin-sso-proxy | ratio (ours / nginx) |
|---|---:|---:|---:|
| 1 KiB GET, HTTP/1.1, 64 conns (req/s, mean of 2 interleaved runs) | $NRPS | $ORPS | $(ratio "$ORPS" "$NRPS") |
| 1 KiB GET, HTTP/1.1, p99 latency (ms) | $NP99 | $OP99 | $(ratio "$OP99" "$NP99") |
| 1 KiB GET, HTTP/2, 64 conns x 10 streams (req/s) | $NH2 | $OH2 | $(ratio "$OH2" "$NH2") |
| 1 GiB download, HTTP/1.1 (MB/s, median of 3) | $ND1 | $OD1 | $(ratio "$OD1" "$ND1") |
| 1 GiB download, HTTP/2 (MB/s, median of 3) | $ND2 | $OD2 | $(ratio "$OD2" "$ND2") |

Memory of jellyfin-sso-proxy (RSS): idle after start $((IDLE_KIB/1024)) MiB; before the 1 GiB
download $((BEFORE_DL/1024)) MiB, peak during it $((PEAK/1024)) MiB (growth $(((PEAK-BEFORE_DL)/1024)) MiB); after all runs $((AFTER_KIB/1024)) MiB.
nginx TLS proxy (master + 2 workers) after all runs: $((NGX_KIB/1024)) MiB.
MD
)
if [ "$METRICS" = compare ]; then
  report+=$(cat <<MD


Metrics off vs on (same build; the second proxy has \`metrics.listen\` and is scraped every
second during its runs; $ROUNDS interleaved rounds, off then on, each ${DURATION}s):

| measure | metrics off | metrics on | ratio (on / off) |
|---|---:|---:|---:|
| 1 KiB GET, HTTP/1.1, 64 conns (req/s, mean; runs $(list "${OFF1[@]}") vs $(list "${ON1[@]}")) | $(mean "${OFF1[@]}") | $(mean "${ON1[@]}") | $(ratio "$(mean "${ON1[@]}")" "$(mean "${OFF1[@]}")") |
| 1 KiB GET, HTTP/2, 64 conns x 10 streams (req/s, mean; runs $(list "${OFF2[@]}") vs $(list "${ON2[@]}")) | $(mean "${OFF2[@]}") | $(mean "${ON2[@]}") | $(ratio "$(mean "${ON2[@]}")" "$(mean "${OFF2[@]}")") |

Requests the metrics-on proxy counted (jsp_http_requests_total, all series): $SCRAPED.
MD
)
fi
[ "$METRICS" = on ] && report+=$'\n\n(metrics on: `metrics.listen` set and scraped every second)'
echo "$report"
echo "$report" > bench/results-latest.md
