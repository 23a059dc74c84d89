#!/usr/bin/env bash
# Benchmark: instructions per forwarded request, counted by callgrind (repeatable on a noisy
# machine, unlike time). A 1 KiB GET over 4 keep-alive TLS connections (`wrk -t1 -c4`), the
# proxy in front of an nginx serving the file; counting is switched on only after start-up
# and a warm-up, so the number is the steady per-request cost in user space (the kernel's
# share is not counted). The same is done for nginx as a TLS proxy (one worker, no master)
# for reference.
#
#   bash bench/callgrind-request.sh                    # this tree's release build and nginx
#   BIN=/path/to/other/build WHO=ours bash bench/callgrind-request.sh
#
# Prints one line per server: requests counted, instructions per request, of which memcpy,
# and leaves the callgrind files in $OUT (callgrind_annotate them for the functions).
set -euo pipefail
cd "$(dirname "$0")/.."
WHO=${WHO:-"ours nginx"}
SECONDS_COUNTED=${SECONDS_COUNTED:-10}
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"
command -v valgrind >/dev/null && command -v wrk >/dev/null && command -v nginx >/dev/null \
  || { echo "needs valgrind, wrk and nginx (Debian packages valgrind, wrk, nginx)" >&2; exit 1; }
source bench/common.sh

UP=$(free_port); OURS=$(free_port); NGX=$(free_port)
mkdir -p "$T/www" && head -c 1024 /dev/urandom > "$T/www/1k.bin"
cat > "$T/up.conf" <<NGINX
worker_processes 1; pid $T/up.pid; error_log $T/up.err warn; daemon off; events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_requests 100000; server { listen 127.0.0.1:$UP; root $T/www; } }
NGINX
# nginx as the same TLS proxy as in bench/compare-nginx.sh, with one worker and no master.
cat > "$T/ngx.conf" <<NGINX
worker_processes 1; master_process off; pid $T/ngx.pid; error_log $T/ngx.err warn; daemon off; events { worker_connections 1024; }
$(nginx_proxy_http "$NGX" "$UP")
NGINX
proxy_yaml "$OURS" "$UP" > "$T/proxy.yaml"
nginx -c "$T/up.conf" & PIDS+=($!)

count() {
  local who=$1 port out pid
  if [ "$who" = ours ]; then
    port=$OURS; out=$OUT/ours.callgrind
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$BIN" --config "$T/proxy.yaml" >"$T/ours.log" 2>&1 &
  else
    port=$NGX; out=$OUT/nginx.callgrind
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" nginx -c "$T/ngx.conf" >"$T/nginx.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 120); do curl -sk -o /dev/null "https://127.0.0.1:$port/1k.bin" && break; sleep 0.5; done
  wrk -t1 -c4 -d3s "https://127.0.0.1:$port/1k.bin" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  local req; req=$(wrk -t1 -c4 -d"${SECONDS_COUNTED}s" "https://127.0.0.1:$port/1k.bin" | awk '/requests in/ {print $1}')
  callgrind_control -i off "$pid" >/dev/null
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  # nginx without a master may leave a dump per part; sum every file of this run.
  local total=0 mem=0 f t m
  for f in "$out"*; do
    read -r t m < <(callgrind_annotate "$f" 2>/dev/null | awk '
      /PROGRAM TOTALS/ {gsub(",","",$1); t=$1}
      /__memcpy_avx_unaligned_erms|__memmove_avx_unaligned_erms/ {gsub(",","",$1); s+=$1}
      END {print t+0, s+0}')
    t=${t//[^0-9]/}; m=${m//[^0-9]/}
    total=$((total + ${t:-0})); mem=$((mem + ${m:-0}))
  done
  echo "$who: $req requests counted, $((total / req)) instructions per request, $((mem / req)) of them in memcpy"
}
for w in $WHO; do count "$w"; done
echo "callgrind files: $OUT"
