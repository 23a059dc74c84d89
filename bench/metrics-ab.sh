#!/usr/bin/env bash
# Benchmark: requests per second and proxy CPU per request with metrics off and on, A/B in one
# run. Two copies of the same release proxy (one with `metrics.listen`) in front of one static
# nginx upstream, all on 127.0.0.1; wrk (HTTP/1.1, -t2 -c64) and h2load (-c64 -m10) on 1 KiB,
# PAIRS interleaved pairs per protocol (the order swapped every other pair), D seconds each.
# /metrics is scraped every second throughout. Prints one markdown row per pair: off req/s, on req/s, on/off, and CPU µs per request.
# The instruction count of the same comparison is bench/metrics-cost.sh.
#
#   bash bench/metrics-ab.sh                        # builds the release proxy, 6 pairs of 5 s
#   PAIRS=9 D=10 BIN=path/to/build bash bench/metrics-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-6}; D=${D:-5}
source bench/common.sh
echo "| pair | protocol | off req/s | on req/s | on/off | off CPU µs/req | on CPU µs/req |"
echo "|---:|---|---:|---:|---:|---:|---:|" 
UP=$(free_port); A=$(free_port); B=$(free_port); M=$(free_port)
mkdir -p "$T/www"; head -c 1024 /dev/urandom > "$T/www/1k.bin"; chmod -R a+rX "$T"
cat > "$T/up.conf" <<N
worker_processes 1; pid $T/up.pid; error_log $T/up.err warn; daemon off; events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000; server { listen 127.0.0.1:$UP; root $T/www; } }
N
nginx -c "$T/up.conf" & PIDS+=($!)
for x in A B; do
  port=${!x}
  proxy_yaml "$port" "$UP" "$T/state$x" > "$T/$x.yaml"
done
echo "metrics: { listen: 127.0.0.1:$M }" >> "$T/B.yaml"
"$BIN" --config "$T/A.yaml" 2>"$T/A.log" & PA=$!; PIDS+=($PA)
"$BIN" --config "$T/B.yaml" 2>"$T/B.log" & PB=$!; PIDS+=($PB)
for p in $UP $A $B $M; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && continue 2; sleep 0.1; done
  echo "nothing listens on $p:"; cat "$T/A.log" "$T/B.log"; exit 1
done
# /metrics scraped every second the whole time, far more often than Prometheus would.
( while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$M/metrics" || true; done ) & PIDS+=($!)
cpu() { awk '{print ($14+$15)/100}' /proc/"$1"/stat; }
run() { # proto port pid
  local c0 c1 out rps
  c0=$(cpu "$3")
  if [ "$1" = h1 ]; then out=$(wrk -t2 -c64 -d${D}s "https://127.0.0.1:$2/1k.bin"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  else out=$(h2load -c64 -m10 -D $D "https://127.0.0.1:$2/1k.bin" 2>/dev/null); rps=$(awk '/finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out"); fi
  c1=$(cpu "$3")
  awk -v r="$rps" -v a="$c0" -v b="$c1" -v d="$D" 'BEGIN{printf "%.0f %.1f", r, (b-a)*1e6/(r*d)}'
}
for proto in h1 h2; do
  run $proto $A $PA >/dev/null; run $proto $B $PB >/dev/null   # warm-up
  for i in $(seq $PAIRS); do
    if [ $((i % 2)) = 1 ]; then a=$(run $proto $A $PA); b=$(run $proto $B $PB); else b=$(run $proto $B $PB); a=$(run $proto $A $PA); fi
    read -r ra ca <<<"$a"; read -r rb cb <<<"$b"
    echo "| $i | $proto | $ra | $rb | $(awk -v x=$rb -v y=$ra 'BEGIN{printf "%.3f", x/y}') | $ca | $cb |"
  done
done
