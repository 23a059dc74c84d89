#!/usr/bin/env bash
# Benchmark: jellyfin-sso-proxy against nginx doing the same TLS reverse proxying, on one
# machine, in one run, in front of the same upstream (an nginx serving static files over
# plain HTTP). Everything listens on 127.0.0.1 only. Small requests are measured as PAIRS
# interleaved pairs (nginx then proxy, the order swapped every other pair), each pair giving
# its own ratio; the report prints every pair and the median ratio. Prints a markdown report
# and writes it to bench/results-latest.md.
#
#   bash bench/compare-nginx.sh            # 5 pairs of 10 s runs, then the 1 GiB downloads
#   PAIRS=7 DURATION=5 bash bench/compare-nginx.sh
#   STREAM=0 bash bench/compare-nginx.sh   # small requests only
#   BIN=/path/to/other/build bash bench/compare-nginx.sh   # measure another build (A/B)
#   METRICS=on bash bench/compare-nginx.sh   # the proxy with metrics.listen set
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
PAIRS=${PAIRS:-5}
STREAM=${STREAM:-1}
METRICS=${METRICS:-off}

need=()
command -v nginx  >/dev/null || need+=(nginx-light)
command -v wrk    >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl   >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
source bench/common.sh


UP=$(free_port); NGX=$(free_port); OURS=$(free_port)

# Content: 1 KiB and 1 GiB files.
mkdir -p "$T/www"
head -c 1024 /dev/urandom > "$T/www/1k.bin"
mkdir -p "$T/www/System/Info" && echo '{"ServerName":"bench","Version":"10.10.7","Id":"0"}' > "$T/www/System/Info/Public"
[ "$STREAM" = 1 ] && head -c $((1024*1024*1024)) /dev/zero > "$T/www/1g.bin"
chmod -R a+rX "$T"

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
$(nginx_proxy_http "$NGX" "$UP")
NGINX
sed -i "s#ERRLOG#$T/ngx.err#" "$T/proxy.conf"
proxy_yaml "$OURS" "$UP" > "$T/proxy.yaml"
if [ "$METRICS" = on ]; then echo "metrics: { listen: 127.0.0.1:$(free_port) }" >> "$T/proxy.yaml"; fi

nginx -c "$T/upstream.conf" & PIDS+=($!)
nginx -c "$T/proxy.conf" & NGX_PID=$!; PIDS+=($NGX_PID)
"$BIN" --config "$T/proxy.yaml" 2>"$T/ours.log" & OURS_PID=$!; PIDS+=($OURS_PID)
sleep 0.5; kill -0 $OURS_PID 2>/dev/null || { cat "$T/ours.log"; exit 1; }
for p in $UP $NGX $OURS; do for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done; done

rss_kib() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
# nginx's workers are renamed ("nginx: worker process"): find them as the master's children.
nginx_pids() { echo "$NGX_PID" $(pgrep -P "$NGX_PID"); }
nginx_rss_kib() { local t=0; for p in $(nginx_pids); do t=$((t + $(rss_kib "$p"))); done; echo $t; }
cpu_s() { awk '{print ($14+$15)/100}' /proc/"$1"/stat; }   # utime+stime of one process
nginx_cpu_s() { local t=0; for p in $(nginx_pids); do t=$(awk -v a="$t" -v b="$(cpu_s "$p")" 'BEGIN{print a+b}'); done; echo "$t"; }
IDLE_KIB=$(rss_kib $OURS_PID)

# One load run against a target (ngx|ours) and protocol; prints "req/s p99_ms cpu_us_per_req".
cpu_of() { if [ "$1" = ngx ]; then nginx_cpu_s; else cpu_s $OURS_PID; fi; }
load() {
  local who=$1 proto=$2 port; [ "$who" = ngx ] && port=$NGX || port=$OURS
  local url="https://127.0.0.1:$port/1k.bin" c0 c1 rps p99
  if [ "$proto" = h1 ]; then
    wrk -t2 -c64 -d2s "$url" >/dev/null 2>&1 || true   # warm-up
    c0=$(cpu_of "$who")
    local out unit; out=$(wrk -t2 -c64 -d"${DURATION}s" --latency "$url")
    c1=$(cpu_of "$who")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    read -r p99 unit < <(awk '$1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[a-z]/,"",v); print v, u}' <<<"$out")
    case $unit in us) p99=$(awk -v v="$p99" 'BEGIN{print v/1000}');; s) p99=$(awk -v v="$p99" 'BEGIN{print v*1000}');; esac
  else
    h2load -c64 -m10 -D 2 "$url" >/dev/null 2>&1 || true
    c0=$(cpu_of "$who")
    local out; out=$(h2load -c64 -m10 -D "$DURATION" --log-file="$T/h2.log" "$url" 2>/dev/null)
    c1=$(cpu_of "$who")
    rps=$(awk '/finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out")
    p99=$(awk -F'\t' '{print $3}' "$T/h2.log" | sort -n | awk '{v[NR]=$1} END{i=int(NR*0.99); if(i<1)i=1; printf "%.2f", v[i]/1000}')
  fi
  awk -v r="$rps" -v p="$p99" -v a="$c0" -v b="$c1" -v d="$DURATION" 'BEGIN{printf "%.0f %.2f %.1f\n", r, p, (r>0)?(b-a)*1e6/(r*d):0}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b==0) print "n/a"; else printf "%.2f", a/b}'; }
median() { sort -g | awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2 }'; }

for u in "https://127.0.0.1:$NGX/1k.bin" "https://127.0.0.1:$OURS/1k.bin"; do
  code=$(curl -k -s -o /dev/null -w '%{http_code}' "$u"); [ "$code" = 200 ] || { echo "setup broken: $u answered $code" >&2; exit 1; }
done
echo "running $PAIRS pairs per protocol (each load ${DURATION}s)..." >&2
declare -A RR PR   # per protocol: lists of req/s ratios and p99 ratios
ROWS=()
for i in $(seq "$PAIRS"); do
  for proto in h1 h2; do
    if [ $((i % 2)) = 1 ]; then read -r n np nc < <(load ngx $proto); read -r o op oc < <(load ours $proto)
    else read -r o op oc < <(load ours $proto); read -r n np nc < <(load ngx $proto); fi
    rr=$(ratio "$o" "$n"); pr=$(ratio "$op" "$np")
    RR[$proto]+="$rr "; PR[$proto]+="$pr "
    row="| $i | $proto | $n | $o | **$rr** | $np | $op | **$pr** | $nc | $oc |"
    ROWS+=("$row"); echo "$row" >&2
  done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }

STREAM_MD=""
if [ "$STREAM" = 1 ]; then
  download() { # url flags → MB/s (median of 3)
    local v=() out code speed size
    for _ in 1 2 3; do
      out=$(curl -k -s $2 -o /dev/null -w '%{http_code} %{speed_download} %{size_download}' "$1" || true)
      read -r code speed size <<<"$out"
      [ "$code" = 200 ] && [ "$size" = $((1024*1024*1024)) ] || echo "download $1 failed: $out" >&2
      v+=("$speed")
    done
    printf '%s\n' "${v[@]}" | sort -n | sed -n 2p | awk '{printf "%.0f", $1/1e6}'
  }
  ND1=$(download "https://127.0.0.1:$NGX/1g.bin" --http1.1)
  ( while kill -0 $OURS_PID 2>/dev/null; do rss_kib $OURS_PID; sleep 0.1; done ) > "$T/rss.log" & SAMPLER=$!
  BEFORE_DL=$(rss_kib $OURS_PID)
  OD1=$(download "https://127.0.0.1:$OURS/1g.bin" --http1.1)
  kill $SAMPLER 2>/dev/null || true
  PEAK=$(sort -n "$T/rss.log" | tail -1)
  ND2=$(download "https://127.0.0.1:$NGX/1g.bin" --http2)
  OD2=$(download "https://127.0.0.1:$OURS/1g.bin" --http2)
  STREAM_MD="| measure | nginx | jellyfin-sso-proxy | ratio (ours / nginx) |
|---|---:|---:|---:|
| 1 GiB download, HTTP/1.1 (MB/s, median of 3) | $ND1 | $OD1 | $(ratio "$OD1" "$ND1") |
| 1 GiB download, HTTP/2 (MB/s, median of 3) | $ND2 | $OD2 | $(ratio "$OD2" "$ND2") |

Before the 1 GiB download $((BEFORE_DL/1024)) MiB, peak during it $((PEAK/1024)) MiB (growth $(((PEAK-BEFORE_DL)/1024)) MiB)."
fi
sleep 1
AFTER_KIB=$(rss_kib $OURS_PID)
NGX_KIB=$(nginx_rss_kib)

report=$(cat <<MD
## Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -m))

1 KiB GET, 64 connections (HTTP/1.1: \`wrk -t2 -c64\`; HTTP/2: \`h2load -c64 -m10\`, p99 from its
per-request log), ${DURATION} s per run after a 2 s warm-up, $PAIRS interleaved pairs (odd pairs
nginx first). CPU is the server's user+system time per request over the run (nginx: its
master and workers), from /proc.

| pair | protocol | nginx req/s | proxy req/s | req/s ratio | nginx p99 (ms) | proxy p99 (ms) | p99 ratio | nginx CPU µs/req | proxy CPU µs/req |
|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")

Median of the pairs: HTTP/1.1 req/s ratio **$(med "${RR[h1]}")**, p99 ratio **$(med "${PR[h1]}")**;
HTTP/2 req/s ratio **$(med "${RR[h2]}")**, p99 ratio **$(med "${PR[h2]}")** (req/s: higher is
better for the proxy; p99: lower is).

$STREAM_MD

Memory of jellyfin-sso-proxy (RSS): idle after start $((IDLE_KIB/1024)) MiB; after all runs
$((AFTER_KIB/1024)) MiB. nginx TLS proxy (master + 2 workers) after all runs: $((NGX_KIB/1024)) MiB.
MD
)
echo "$report"
echo "$report" > bench/results-latest.md
