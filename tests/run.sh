#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Used by README.md and by .ci/run. Safe to run again: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
# Taken out of the environment: every JSP_* variable is proxy configuration to the proxies the
# tests start, which refuse keys they do not know.
fuzz_seconds="${JSP_FUZZ_SECONDS:-20}"
fuzz_skip="${JSP_FUZZ_SKIP-}"
unset JSP_FUZZ_SECONDS JSP_FUZZ_SKIP

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

# A fresh clone gains nothing from incremental artefacts (1.9 GiB for the test crates); a
# developer's own CARGO_INCREMENTAL wins. With the debug-info settings in Cargo.toml the whole
# test build is ~3 GiB, the fuzz build ~1 GiB more: say so plainly if the disk cannot hold it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((5 * 1024 * 1024)) ]; then
  echo "tests/run.sh: only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR==2 {print $6}'); the build needs about 5 GiB" >&2
fi

cargo test --workspace --all-targets "$@"

# Coverage-guided fuzzing of every parser that takes bytes from outside (fuzz/, cargo-fuzz on
# the stable toolchain), JSP_FUZZ_SECONDS (default 20) per target from the seeds, new inputs
# into a throwaway corpus. A crash fails the run; its input is left in fuzz/artifacts/.
# docs/architecture.md ("Testing") says how to fuzz longer.
if [ $# -eq 0 ] && [ "$fuzz_seconds" != 0 ]; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
  corpus="$(mktemp -d)"
  (
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    # Release, as cargo fuzz builds by default. Measured on 2 busy cores: `--dev` took 429 s of
    # CPU to build against 797 s, but in 20 s its targets ran 10-60x fewer inputs and added
    # 4-10x fewer coverage units (saml 1,371 inputs against 25,767), so it stays release.
    cargo fuzz build --sanitizer none
    # A fixed seed makes the run repeatable: what passed on the developer's machine passes here.
    # Every target runs; JSP_FUZZ_SKIP (empty by default) names targets to leave out of a run
    # (their seeds and regressions are replayed by tests/fuzz_corpus.rs all the same).
    for target in $(cargo fuzz list); do
      case " $fuzz_skip " in *" $target "*) echo "tests/run.sh: fuzz target $target skipped"; continue;; esac
      mkdir -p "$corpus/$target"
      if ! cargo fuzz run --sanitizer none "$target" "$corpus/$target" "seeds/$target" -- \
        -seed=1 -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$corpus/$target.log" 2>&1; then
        tail -n 40 "$corpus/$target.log"
        echo "tests/run.sh: fuzz target $target failed; its input is in fuzz/artifacts/$target/ (fix it, then keep it in fuzz/regressions/$target/)"
        exit 1
      fi
      echo "tests/run.sh: fuzzed $target: $(grep -hE '^stat::(number_of_executed_units|new_units_added)' "$corpus/$target.log" | tr -s ' \n' ' ')"
    done
  )
  rm -rf "$corpus"
fi

# The SSO tests once more, with every proxy keeping its state in Redis + PostgreSQL.
if [ $# -eq 0 ]; then
  JSP_TEST_STATE=shared cargo test --test oidc --test saml --test saml_fixtures --test import
fi
