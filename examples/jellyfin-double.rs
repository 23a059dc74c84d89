//! Run the Jellyfin test double on its own, to try the proxy end to end without a Jellyfin:
//!
//! ```sh
//! cargo run --example jellyfin-double -- --listen 127.0.0.1:8096 --api-key KEY \
//!     --version 10.10.7 --user alice:pw --user root:pw:admin --library Movies
//! ```
//!
//! What it mirrors, per Jellyfin version, is described in docs/jellyfin-api.md.

use clap::Parser;
use jellyfin_double::{DoubleOptions, JellyfinDouble};

/// A stand-in for a Jellyfin server (Quick Connect, users, policies, images, libraries,
/// sessions, a web page), for trying jellyfin-sso-proxy without installing Jellyfin.
#[derive(Parser)]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8096")]
    listen: std::net::SocketAddr,
    /// The admin API key the proxy will use (jellyfin.api_key)
    #[arg(long, default_value = "test-api-key")]
    api_key: String,
    /// Jellyfin version to report and behave like (10.9.x, 10.10.x, 10.11.x, 12.0.0)
    #[arg(long, default_value = "10.10.7")]
    version: String,
    /// Server name (System/Info/Public ServerName)
    #[arg(long, default_value = "Jellyfin Double")]
    server_name: String,
    /// A user to create, NAME:PASSWORD or NAME:PASSWORD:admin (repeatable; empty password = none)
    #[arg(long = "user")]
    users: Vec<String>,
    /// A library to create (repeatable)
    #[arg(long = "library")]
    libraries: Vec<String>,
    /// Honour X-Emby-Token, X-Emby-Authorization, the Emby scheme and ?api_key= (EnableLegacyAuthorization)
    #[arg(long)]
    legacy_auth: bool,
    /// Start with Quick Connect switched off
    #[arg(long)]
    no_quick_connect: bool,
    /// Size in bytes of /media/big.bin
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    media_size: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap_or_else(|e| panic!("cannot listen on {}: {e}", args.listen));
    let opts = DoubleOptions {
        api_key: args.api_key.clone(),
        version: args.version.clone(),
        server_name: args.server_name.clone(),
        legacy_auth: args.legacy_auth,
        quick_connect_enabled: !args.no_quick_connect,
        media_size: args.media_size,
    };
    let double = JellyfinDouble::start_on(listener, opts).await;
    let url = double.url();
    println!("Jellyfin double {} ({}) on {url}, server id {}", args.version, args.server_name, double.server_id());
    println!("  API key: {} (administrator)", args.api_key);
    println!("  Quick Connect: {}", if args.no_quick_connect { "off" } else { "on" });
    println!("  legacy authorization: {}", if args.legacy_auth { "on" } else { "off (Authorization: MediaBrowser … only)" });
    for u in &args.users {
        let mut parts = u.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let pw = parts.next().unwrap_or_default();
        let admin = parts.next() == Some("admin");
        if name.is_empty() {
            eprintln!("ignoring --user {u:?}: expected NAME:PASSWORD[:admin]");
            continue;
        }
        let id = double.add_user(name, pw, admin);
        println!("  user {name} id {id}{}", if admin { " (administrator)" } else { "" });
    }
    for l in &args.libraries {
        println!("  library {l} id {}", double.add_media_folder(l));
    }
    println!("Serves the Jellyfin API the proxy uses (System/Info/Public, QuickConnect/*, Users/*, UserImage, Library/*, Sessions, Devices, Auth/Keys, Branding/*)");
    println!("and what jellyfin-web calls once signed in (System/Info, System/Endpoint, Sessions/Capabilities/Full, DisplayPreferences/*, UserViews, Playback/BitrateTest, System/Configuration/branding)");
    println!("and test helpers: {url}/web/index.html, {url}/socket (websocket echo), {url}/media/big.bin (Range), {url}/echo/headers, {url}/echo/body");
    println!("Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    double.shutdown();
}
