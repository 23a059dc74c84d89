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
