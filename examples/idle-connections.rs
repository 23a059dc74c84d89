//! Load generator for bench/idle-connections.sh: opens many TLS keep-alive connections to the
//! proxy, makes one request on each (so every layer has allocated what a used connection
//! keeps), holds them all open and idle, then closes them all at once. It also serves as the
//! tiny upstream the proxy forwards those requests to.
//!
//! ```sh
//! cargo run --release --example idle-connections -- upstream 127.0.0.1:9001
//! cargo run --release --example idle-connections -- hold 127.0.0.1:8443 --connections 10000 --proto h2
//! ```
//! `hold` prints `ready <open> <failed> <seconds>` once every connection has had its answer,
//! keeps them for `--hold` seconds, and exits (which closes them).

#[allow(dead_code)]
#[path = "../tests/support/tls_client.rs"]
mod tls_client;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve plain HTTP/1.1 on ADDR: every request gets 200 with 1 KiB.
    Upstream { addr: SocketAddr },
    /// Open connections to the proxy at ADDR (TLS), one request each, hold them, then exit.
    Hold {
        addr: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, value_enum, default_value_t = Proto::H1)]
        proto: Proto,
        /// The path each connection asks for once
        #[arg(long, default_value = "/1k.bin")]
        path: String,
        /// Seconds to hold them open after the last one is ready
        #[arg(long, default_value_t = 10)]
        hold: u64,
        /// Handshakes in flight at once
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Proto {
    H1,
    H2,
}

#[tokio::main]
async fn main() {
    match Args::parse().command {
        Cmd::Upstream { addr } => upstream(addr).await,
        Cmd::Hold { addr, connections, proto, path, hold, concurrency } => {
            let started = Instant::now();
            let cfg = tls_client::client_config(if proto == Proto::H2 { b"h2" } else { b"http/1.1" });
            let gate = Arc::new(Semaphore::new(concurrency));
            let mut tasks = Vec::with_capacity(connections);
            for _ in 0..connections {
                let (cfg, gate, path) = (cfg.clone(), gate.clone(), path.clone());
                let permit = gate.acquire_owned().await.expect("semaphore open");
                tasks.push(tokio::spawn(async move { open(addr, cfg, proto, &path, permit).await }));
            }
            let mut held = Vec::with_capacity(connections);
            let mut failed = 0;
            for t in tasks {
                match t.await.expect("task") {
                    Ok(h) => held.push(h),
                    Err(e) => {
                        if failed < 3 {
                            eprintln!("connection failed: {e}");
                        }
                        failed += 1;
                    }
                }
            }
            println!("ready {} {} {:.1}", held.len(), failed, started.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(hold)).await;
            // Dropping the handles closes every socket; a connection the proxy closed early
            // (idle watchdog) would show as a finished driver.
            let closed_early = held.iter().filter(|h| h.driver.is_finished()).count();
            println!("closing {} (closed by the proxy before: {closed_early})", held.len());
        }
    }
}

/// What keeps one connection open: its request handle and the task driving it.
struct Held {
    _send: Box<dyn Send>,
    driver: tokio::task::JoinHandle<()>,
}

async fn open(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, proto: Proto, path: &str, permit: tokio::sync::OwnedSemaphorePermit) -> Result<Held, String> {
    let mut tries = 0;
    let tcp = loop {
        match TcpStream::connect(addr).await {
            Ok(t) => break t,
            Err(e) if tries < 20 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("connect: {e}")),
        }
    };
    let tls = tokio_rustls::TlsConnector::from(cfg).connect(ServerName::try_from("localhost").unwrap(), tcp).await.map_err(|e| format!("tls: {e}"))?;
    let io = TokioIo::new(tls);
    let req = || http::Request::get(path).header(http::header::HOST, "localhost").body(Empty::<Bytes>::new()).unwrap();
    let (send, driver, status): (Box<dyn Send>, _, _) = match proto {
        Proto::H1 => {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("h1: {e}"))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = send.send_request(req()).await.map_err(|e| format!("request: {e}"))?;
            let status = resp.status();
            resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
            (Box::new(send), driver, status)
        }
        Proto::H2 => {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| format!("h2: {e}"))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = send.send_request(req()).await.map_err(|e| format!("request: {e}"))?;
            let status = resp.status();
            resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
            (Box::new(send), driver, status)
        }
    };
    drop(permit);
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    Ok(Held { _send: send, driver })
}

async fn upstream(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind upstream");
    let body = Bytes::from(vec![b'x'; 1024]);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}
