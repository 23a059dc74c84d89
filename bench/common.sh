# Sourced by the bench/ scripts, from the repository's root: the release build unless BIN
# names one; a temporary directory T, removed on exit, with every process in PIDS stopped
# first; free_port, a free loopback port; and a throwaway P-256 certificate for localhost in
# $T/cert.pem and $T/key.pem.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q --bin jellyfin-sso-proxy
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/jellyfin-sso-proxy
fi
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
# proxy_yaml PORT UPSTREAM_PORT [STATE_DIR]: the proxy's benchmark configuration (defaults
# otherwise, warn-level log) listening on PORT in front of the upstream on UPSTREAM_PORT.
proxy_yaml() {
  cat <<YAML
listen: 127.0.0.1:$1
public_url: https://127.0.0.1:$1
state_dir: ${3:-$T/state}
tls: { cert: $T/cert.pem, key: $T/key.pem }
jellyfin: { url: "http://127.0.0.1:$2" }
log: { level: warn }
YAML
}
# nginx_proxy_http PORT UPSTREAM_PORT: the `http {}` block of nginx as the same TLS proxy
# (upstream keep-alive, buffering off as suits streaming).
nginx_proxy_http() {
  cat <<NGINX
http { access_log off; keepalive_requests 100000;
  upstream jf { server 127.0.0.1:$2; keepalive 64; }
  server { listen 127.0.0.1:$1 ssl http2; ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://jf; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off; proxy_request_buffering off; } } }
NGINX
}
