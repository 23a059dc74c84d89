//! Which settings are bound at start, and which of them a reloaded file changes.
//!
//! A live reload ([`Config::reload`](super::Config::reload)) puts a new [`Config`] in service
//! in place of the running one. Some settings cannot change in a running process: they made
//! a socket, a pool, a backend or a subscriber at start (listen addresses, the state backend
//! and `state_dir`, the TLS files, the Jellyfin clients, the connection limit, the log
//! format). [`bound_at_start`] lists each such setting the new file changes, with the reason,
//! as [`Problem`]s, so they are reported like any other problem in the file, with their line.
//! Everything not listed here is read from the configuration in service at the time it is
//! used, so it takes effect on a reload.

use super::field::Problem;
use super::Config;

/// One setting that needs a restart: its dotted path, whether it changed, and why.
struct Bound {
    path: &'static str,
    changed: bool,
    why: &'static str,
}

/// The settings of `next` that differ from `running` but only take effect on a restart.
pub fn bound_at_start(running: &Config, next: &Config) -> Vec<Problem> {
    let (r, n) = (running, next);
    let (rl, nl) = (&r.limits, &n.limits);
    let bound = [
        Bound { path: "listen", changed: r.listen != n.listen, why: "the listening sockets are bound at start" },
        Bound { path: "http_redirect_listen", changed: r.http_redirect_listen != n.http_redirect_listen, why: "the redirect listener is bound at start" },
        Bound {
            path: "public_url",
            changed: r.public_url.as_str() != n.public_url.as_str(),
            why: "cookies, redirect URIs registered at identity providers and the redirect listener are made from it at start",
        },
        Bound { path: "state_dir", changed: r.state_dir != n.state_dir, why: "the state is opened at start" },
        Bound { path: "state", changed: r.state != n.state, why: "the state backends and the state key are opened at start" },
        Bound { path: "tls", changed: r.tls != n.tls, why: "the TLS files and their watch are set up at start (a changed certificate in the same files is reloaded by itself)" },
        Bound { path: "jellyfin.url", changed: r.jellyfin.url != n.jellyfin.url, why: "the connection pools to Jellyfin are made at start" },
        Bound { path: "jellyfin.api_key", changed: r.jellyfin.api_key != n.jellyfin.api_key, why: "the Jellyfin client is made at start" },
        Bound { path: "limits.max_connections", changed: rl.max_connections != nl.max_connections, why: "the connection limit is shared by the listeners made at start" },
        Bound {
            path: "limits.upstream_connect_timeout",
            changed: rl.upstream_connect_timeout != nl.upstream_connect_timeout,
            why: "the connection pools to Jellyfin are made at start",
        },
        Bound {
            path: "limits.upstream_header_timeout",
            changed: rl.upstream_header_timeout != nl.upstream_header_timeout,
            why: "the connection pools to Jellyfin are made at start",
        },
        Bound { path: "log.format", changed: r.log.format != n.log.format, why: "the log writer is made at start (log.level changes live)" },
        Bound {
            path: "sso.max_pending_flows",
            changed: r.sso.max_pending_flows != n.sso.max_pending_flows,
            why: "the state's room for logins in progress is sized at start",
        },
    ];
    bound
        .into_iter()
        .filter(|b| b.changed)
        .map(|b| Problem { path: b.path.to_string(), message: format!("changed, but needs a restart: {}", b.why), location: None })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Env;

    fn config(yaml: &str) -> Config {
        let base = format!("jellyfin:\n  url: http://127.0.0.1:8096\npublic_url: https://127.0.0.1:8443\n{yaml}");
        Config::from_parts(Some(&base), "t.yaml", std::path::Path::new("/tmp"), Env::prefixed("JSP_TEST_NONE_")).unwrap()
    }

    #[test]
    fn live_settings_pass_and_bound_ones_are_named() {
        let running = config("listen: 127.0.0.1:8443\nlog:\n  level: info\n");
        let live = config("listen: 127.0.0.1:8443\nlog:\n  level: debug\nsso:\n  flow_ttl: 5m\nlimits:\n  idle_timeout: 10s\ntrusted_proxies: [10.0.0.0/8]\n");
        assert!(bound_at_start(&running, &live).is_empty());
        let moved = config("listen: 127.0.0.1:9443\nlog:\n  format: json\nstate:\n  key_file: /tmp/other.key\n");
        let paths: Vec<String> = bound_at_start(&running, &moved).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["listen", "state", "log.format"]);
    }
}
