#!/usr/bin/env bash
# Benchmark: memory of the proxy holding many idle keep-alive TLS connections, and whether it
# comes back after they close. Everything on 127.0.0.1. Per round, examples/idle-connections.rs
# opens N TLS connections (HTTP/1.1 or HTTP/2 by ALPN), makes one forwarded request on each
# (1 KiB from a tiny upstream), holds them all idle for HOLD seconds and closes them; the
# proxy's VmRSS is read before, while held, and after the close. Rounds alternate the protocols.
#
#   bash bench/idle-connections.sh                     # 10,000 connections, 3 rounds per protocol
#   N=4096 ROUNDS=2 PROTOS="h2" bash bench/idle-connections.sh
#   BIN=/path/to/other/build bash bench/idle-connections.sh
#
# The held RSS is read SETTLE seconds after the last connection was ready (default 4: idle
# HTTP/1.1 connections park after 2 s of quiet, src/server/conn.rs); HOLD must be longer.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
PROTOS=${PROTOS:-"h1 h2"}
SETTLE=${SETTLE:-4}
HOLD=${HOLD:-$((SETTLE + 2))}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

# Each side holds N sockets (the proxy also its upstream pool).
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((N + 256)) ] || { echo "need an open-files limit above $((N + 256)), have $(ulimit -n)" >&2; exit 1; }

source bench/common.sh
CLIENT=${CLIENT:-$TARGET/release/examples/idle-connections}
[ -x "$CLIENT" ] || cargo build --release -q --example idle-connections


UP=$(free_port); OURS=$(free_port)
# Default limits, except that nothing is closed for idleness while a round holds.
proxy_yaml "$OURS" "$UP" > "$T/proxy.yaml"

"$CLIENT" upstream "127.0.0.1:$UP" & PIDS+=($!)
"$BIN" --config "$T/proxy.yaml" 2>"$T/ours.log" & OURS_PID=$!; PIDS+=($OURS_PID)
for p in $UP $OURS; do for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done; done
kill -0 $OURS_PID 2>/dev/null || { cat "$T/ours.log"; exit 1; }
sleep 1

rss_kib() { awk '/VmRSS/ {print $2}' /proc/"$OURS_PID"/status; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
IDLE=$(rss_kib)
echo "proxy idle after start: $(mib "$IDLE") MiB; $N connections per round, held ${HOLD}s" >&2

rows=()
for r in $(seq "$ROUNDS"); do
  for proto in $PROTOS; do
    before=$(rss_kib)
    "$CLIENT" hold "127.0.0.1:$OURS" --connections "$N" --proto "$proto" --hold "$HOLD" > "$T/client.out" 2>"$T/client.err" & CPID=$!
    until grep -q '^ready' "$T/client.out" 2>/dev/null; do
      kill -0 $CPID 2>/dev/null || { cat "$T/client.err" >&2; exit 1; }
      sleep 0.1
    done
    read -r _ opened failed secs < <(grep '^ready' "$T/client.out")
    sleep "$SETTLE"
    held=$(rss_kib)
    fds=$(ls /proc/"$OURS_PID"/fd | wc -l)
    wait $CPID
    early=$(sed -n 's/.*closed by the proxy before: \([0-9]*\).*/\1/p' "$T/client.out")
    sleep 3
    after=$(rss_kib)
    per=$(awk -v h="$held" -v b="$before" -v n="$opened" 'BEGIN{ if (n>0) printf "%.1f", (h-b)/n; else print "n/a"}')
    rows+=("| $r | $proto | $opened | $failed | ${early:-?} | $fds | $(mib "$before") | $(mib "$held") | $per | $(mib "$after") | $secs |")
    echo "${rows[-1]}" >&2
  done
done

report=$(cat <<MD
## Idle connections, run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -m))

Proxy RSS idle after start: $(mib "$IDLE") MiB. Each round: $N TLS connections, one forwarded
1 KiB GET each, held ${HOLD} s, then closed; RSS read ${SETTLE} s after the last was ready and 3 s after
the close.

| round | protocol | open | failed | closed early | proxy fds | RSS before (MiB) | RSS held (MiB) | KiB per connection | RSS after close (MiB) | open time (s) |
|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
MD
)
echo "$report"
