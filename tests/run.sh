#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Used by README.md and by .ci/run. Safe to run again: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v xmlsec1  >/dev/null 2>&1 || need_apt+=(xmlsec1)
command -v openssl  >/dev/null 2>&1 || need_apt+=(openssl)
command -v node     >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# Real shared state backends (tests/support/servers.rs starts them on loopback ports).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql     >/dev/null 2>&1 || need_apt+=(postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The real OpenID Provider, the real SAML IdP, the browser driver and the Jellyfin SDK (pinned by the lockfile).
for m in oidc-provider samlify playwright-core @jellyfin/sdk axios; do
  if [ ! -d "tests/idp/node_modules/$m" ]; then
    (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
    break
  fi
done

# What jellyfin-web renders the login disclaimer with (markdown-it, DOMPurify + jsdom).
if [ ! -d tests/webclient/node_modules ]; then
  (cd tests/webclient && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo test --workspace --all-targets "$@"

# The SSO tests once more, with every proxy keeping its state in Redis + PostgreSQL.
if [ $# -eq 0 ]; then
  JSP_TEST_STATE=shared cargo test --test oidc --test saml --test saml_fixtures --test import
fi
