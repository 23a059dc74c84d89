#!/usr/bin/env bash
# Benchmark: time from starting the proxy to its first served request, with a generated
# certificate already present (the second start of a fresh install), as the median of RUNS
# starts. Two cases: Jellyfin answering (a plain HTTP upstream; the first request is a
# forwarded GET /1k.bin) and Jellyfin hung (a socket that accepts and never answers; the
# first request is the proxy's own /sso/ page, since nothing forwarded can answer).
# The clock starts just before exec and stops when the whole response has arrived; polling
# is a TLS connect every 2 ms. Also reported: the CPU time the proxy had used by then (all
# threads, /proc/PID/task/*/schedstat), which does not depend on how loaded the machine is.
# Everything on 127.0.0.1.
#
#   bash bench/startup.sh               # RUNS=11
#   BIN=/path/to/other/build bash bench/startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-11}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --bin jellyfin-sso-proxy
  BIN=$TARGET/release/jellyfin-sso-proxy
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

BIN=$BIN RUNS=$RUNS T=$T python3 - <<'PY'
import http.server, os, socket, ssl, statistics, subprocess, sys, threading, time

T, BIN, RUNS = os.environ["T"], os.environ["BIN"], int(os.environ["RUNS"])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

class Up(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"x" * 1024
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

good = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Up)
threading.Thread(target=good.serve_forever, daemon=True).start()
hung = socket.socket(); hung.bind(("127.0.0.1", 0)); hung.listen(1024)  # accepts (backlog), never answers

ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return int(data.split(b" ", 2)[1])

def cpu_ms(pid):
    """CPU time the proxy used so far, all threads (ns in schedstat), whatever the machine's load."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return total / 1e6

def start_once(upstream_port, path, first):
    port = free_port()
    cfg = f"{T}/proxy.yaml"
    with open(cfg, "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\npublic_url: https://127.0.0.1:{port}\nstate_dir: {T}/state\n"
                f"tls: {{ cert: {T}/cert.pem, key: {T}/key.pem }}\njellyfin: {{ url: \"http://127.0.0.1:{upstream_port}\" }}\nlog: {{ level: warn }}\n")
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                sys.exit(f"proxy exited with {p.returncode}")
            try:
                status = get(port, path)
                ms = (time.perf_counter() - t0) * 1000
                if status != 200:
                    sys.exit(f"{path} answered {status}")
                return ms, cpu_ms(p.pid)
            except (ConnectionError, OSError):
                time.sleep(0.002)
            if time.perf_counter() - t0 > 30:
                sys.exit("no answer within 30 s")
    finally:
        p.terminate(); p.wait()

# The first start generates the certificate (not measured); every later start finds it.
start_once(good.server_address[1], "/1k.bin", True)
assert os.path.exists(f"{T}/cert.pem"), "the first start generated no certificate"
rows = []
for name, port, path in [("Jellyfin answering, forwarded GET /1k.bin", good.server_address[1], "/1k.bin"),
                         ("Jellyfin hung, the proxy's own GET /sso/", hung.getsockname()[1], "/sso/")]:
    runs = [start_once(port, path, False) for _ in range(RUNS)]
    rows.append((name, [r[0] for r in runs], [r[1] for r in runs]))
print(f"## Start-up, run of {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())} on {os.cpu_count()} cores\n")
print("| case | median (ms) | min | max | every start (ms) | CPU to first answer, median (ms) |\n|---|---:|---:|---:|---|---:|")
for name, ms, cpu in rows:
    print(f"| {name} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} | {', '.join(f'{m:.0f}' for m in ms)} | {statistics.median(cpu):.1f} |")
load = open("/proc/loadavg").read().split()[0]
print(f"\nLoad average (1 min) at the end: {load}.")
PY
