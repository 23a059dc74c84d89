//! Run the Jellyfin test double on its own, to try the proxy end to end without a Jellyfin:
//!
//! ```sh
//! cargo run --example jellyfin-double -- --listen 127.0.0.1:8096 --api-key KEY --user alice:pw --user root:pw:admin
//! ```

#[path = "../tests/support/jellyfin_double.rs"]
mod jellyfin_double;

use clap::Parser;
use jellyfin_double::{DoubleOptions, JellyfinDouble};

/// A stand-in for a Jellyfin server (Quick Connect, users, policies, a web page), for trying
/// jellyfin-sso-proxy without installing Jellyfin.
#[derive(Parser)]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8096")]
    listen: std::net::SocketAddr,
    /// The admin API key the proxy will use (jellyfin.api_key)
    #[arg(long, default_value = "test-api-key")]
    api_key: String,
    /// Jellyfin version to report
    #[arg(long, default_value = "10.10.7")]
    version: String,
    /// A user to create, NAME:PASSWORD or NAME:PASSWORD:admin (repeatable)
    #[arg(long = "user")]
    users: Vec<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap_or_else(|e| panic!("cannot listen on {}: {e}", args.listen));
    let opts = DoubleOptions { api_key: args.api_key.clone(), version: args.version, ..Default::default() };
    let double = JellyfinDouble::start_on(listener, opts).await;
    for u in &args.users {
        let parts: Vec<&str> = u.split(':').collect();
        let (name, pw, admin) = (parts[0], parts.get(1).copied().unwrap_or(""), parts.get(2) == Some(&"admin"));
        double.add_user(name, pw, admin);
        println!("user {name}{}", if admin { " (administrator)" } else { "" });
    }
    println!("Jellyfin double on {} (API key {}); Ctrl-C to stop", double.url(), args.api_key);
    let _ = tokio::signal::ctrl_c().await;
}
