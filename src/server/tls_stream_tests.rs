//! [`TlsStream`] against tokio-rustls's client (rustls's buffered API) over real sockets:
//! both protocol versions, data both ways in every size, the ends of a stream, a client that
//! stops reading, a client that speaks no TLS, and no buffer kept while waiting.

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Pair {
    server: TlsStream,
    client: tokio_rustls::client::TlsStream<TcpStream>,
}

fn configs(version: &'static SupportedProtocolVersion, alpn: &[&[u8]]) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = CertificateDer::from(pair.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider).with_protocol_versions(&[version]).unwrap().with_root_certificates(roots).with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(server), Arc::new(client))
}

async fn pair(version: &'static SupportedProtocolVersion, alpn: &[&[u8]]) -> Pair {
    let (server_cfg, client_cfg) = configs(version, alpn);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio_rustls::TlsConnector::from(client_cfg).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let server = accept(tcp, server_cfg).await.unwrap();
    Pair { server, client: client.await.unwrap() }
}

const VERSIONS: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];

/// Bytes that differ from one position to the next, so a dropped or repeated record shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 251) as u8).collect()
}

#[tokio::test]
async fn data_crosses_both_ways_intact_in_every_size() {
    for version in VERSIONS {
        let Pair { mut server, mut client } = pair(version, &[b"http/1.1"]).await;
        assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
        let up = pattern(3 * 1024 * 1024 + 17);
        let sent = up.clone();
        let writer = tokio::spawn(async move {
            // Writes of odd sizes, from one byte to several records.
            let (mut at, mut step) = (0, 1);
            while at < sent.len() {
                let end = (at + step).min(sent.len());
                client.write_all(&sent[at..end]).await.unwrap();
                at = end;
                step = (step * 7 + 3) % 70_000 + 1;
            }
            client.flush().await.unwrap();
            client
        });
        // The server reads into a small buffer: what a record holds beyond it waits its turn.
        let mut got = Vec::new();
        let mut buf = [0u8; 1000];
        while got.len() < up.len() {
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early at {}", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == up, "{version:?}: the server read other bytes than the client wrote");
        let mut client = writer.await.unwrap();

        let down = pattern(2 * 1024 * 1024 + 5);
        let expect = down.clone();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; expect.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == expect, "the client read other bytes than the server wrote");
            // The server's close_notify ends the client's stream cleanly.
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            client
        });
        server.write_all(&down).await.unwrap();
        server.shutdown().await.unwrap();
        let mut client = reader.await.unwrap();
        // And the client's close_notify is end of file for the server, not an error.
        client.shutdown().await.unwrap();
        let mut tail = Vec::new();
        assert_eq!(server.read_to_end(&mut tail).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_stream_cut_without_close_notify_is_an_unexpected_eof() {
    let Pair { mut server, mut client } = pair(&rustls::version::TLS13, &[]).await;
    client.write_all(b"hello").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 16];
    let n = server.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    // The client reads everything the server sent (tickets, an answer), so that closing its
    // socket is a FIN, not a reset.
    server.write_all(b"hi").await.unwrap();
    server.flush().await.unwrap();
    let mut two = [0u8; 2];
    client.read_exact(&mut two).await.unwrap();
    // The TCP connection closes with no TLS close_notify: a truncation, not an end.
    drop(client.into_inner().0);
    let e = server.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_waiting_stream_holds_no_buffer() {
    for version in VERSIONS {
        let Pair { mut server, mut client } = pair(version, &[b"h2"]).await;
        assert_eq!(server.alpn_protocol(), Some(&b"h2"[..]));
        // One exchange, with a request bigger than the reader's buffer.
        client.write_all(&pattern(40_000)).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; 40_000];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == pattern(40_000));
        server.write_all(&pattern(100_000)).await.unwrap();
        server.flush().await.unwrap();
        let mut back = vec![0u8; 100_000];
        client.read_exact(&mut back).await.unwrap();
        // Now the server waits for the client's next byte.
        let mut one = [0u8; 1];
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut one)).await.is_err());
        assert_eq!((server.incoming.capacity(), server.plain.capacity(), server.outgoing.capacity()), (0, 0, 0), "{version:?}");
        // And is woken by it.
        client.write_all(b"x").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(server.read(&mut one).await.unwrap(), 1);
        assert_eq!(&one, b"x");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_back_the_writer() {
    let Pair { mut server, mut client } = pair(&rustls::version::TLS13, &[]).await;
    let data = pattern(64 * 1024 * 1024);
    // Write until the socket is full: the stream takes at most one write's worth beyond it.
    let mut taken = 0;
    loop {
        let r = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll_write(cx, &data[taken..]))).await;
        match r {
            Poll::Ready(Ok(n)) => {
                assert!(n > 0 && n <= MAX_WRITE);
                taken += n;
                assert!(taken < data.len(), "64 MiB went into a socket nobody reads");
            }
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => break,
        }
    }
    assert!(server.outgoing.len() - server.out_at <= WRITE_SCRATCH, "{} bytes kept", server.outgoing.len());
    // All of it arrives once the client reads, followed by the rest.
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; 64 * 1024 * 1024];
        client.read_exact(&mut got).await.unwrap();
        got
    });
    server.write_all(&data[taken..]).await.unwrap();
    server.flush().await.unwrap();
    assert!(reader.await.unwrap() == data);
}

#[tokio::test]
async fn a_client_that_speaks_no_tls_is_refused_with_a_tls_error() {
    let (server_cfg, _) = configs(&rustls::version::TLS13, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        answer
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let e = accept(tcp, server_cfg).await.err().expect("plain HTTP is no handshake");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).is_some(), "the rustls error is kept for the metrics: {e}");
    drop(e);
    // The client is told why, with a TLS alert record (content type 21).
    let answer = client.await.unwrap();
    assert_eq!(answer.first(), Some(&21), "{answer:?}");
}

#[tokio::test]
async fn a_client_gone_during_the_handshake_is_an_unexpected_eof() {
    let (server_cfg, _) = configs(&rustls::version::TLS13, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move { drop(TcpStream::connect(addr).await.unwrap()) });
    let (tcp, _) = listener.accept().await.unwrap();
    client.await.unwrap();
    let e = accept(tcp, server_cfg).await.err().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}
