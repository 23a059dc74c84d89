//! The TLS stream of a client connection, over rustls's unbuffered API, so that a connection
//! waiting for its client holds no buffer at all.
//!
//! rustls's buffered `ServerConnection` (what tokio-rustls wraps) keeps a 4 KiB read buffer,
//! zero-filled, for the connection's whole life: it is allocated by the read that waits for
//! the client's next byte, so even a parked connection holds it, and with 10,000 idle
//! connections that alone is 40 MiB (docs/benchmarks.md, idle connections). Here the buffers
//! are ours: socket reads land in a per-thread scratch buffer and are decrypted from there,
//! encryption goes to another one and is written to the socket straight away, and only what
//! is left over (part of a record, plaintext the reader had no room for, bytes the socket
//! would not take yet) is copied to the connection's own buffers, which are freed as soon as
//! they are empty. The TLS protocol itself (handshake, records, alerts, key updates, tickets)
//! stays entirely rustls's.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What [`process`] does with an opportunity to encrypt: write the pending plaintext.
type Encrypt<'a> = &'a mut dyn FnMut(WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) -> io::Result<()>;

/// Most plaintext one `poll_write` takes: four full records, sent with one write.
const MAX_WRITE: usize = 4 * 16 * 1024;
/// Room for [`MAX_WRITE`] encrypted (at most 29 bytes of framing per record) and a few
/// pending handshake messages; more goes through the connection's own buffer.
const WRITE_SCRATCH: usize = MAX_WRITE + 4096;
/// One socket read: a whole record of the largest size rustls accepts, and then some.
const READ_SCRATCH: usize = 20 * 1024;

thread_local! {
    static READS: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SCRATCH]);
    static WRITES: RefCell<Vec<u8>> = RefCell::new(vec![0; WRITE_SCRATCH]);
}

/// A server-side TLS stream over TCP; see the module documentation.
pub struct TlsStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Received ciphertext not yet processed: part of a record. Empty between records.
    incoming: Vec<u8>,
    /// Decrypted bytes the reader had no room for yet, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// Encrypted bytes the socket has not taken yet, from `out_at` on; sent before anything else.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The client sent `close_notify`: reads give end of file.
    peer_closed: bool,
    /// The socket gave end of file.
    tcp_eof: bool,
    /// We queued our `close_notify`.
    closing: bool,
}

/// Where processing the received ciphertext stopped.
#[derive(PartialEq)]
enum Step {
    /// More bytes from the client are needed to go on (the handshake is under way).
    NeedData,
    /// Everything received is processed; application data may be written.
    Idle,
    /// Both sides sent `close_notify`.
    Closed,
}

/// Run the TLS handshake on `tcp` (the caller bounds it in time).
pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut s = TlsStream {
        tcp,
        conn,
        incoming: Vec::new(),
        plain: Vec::new(),
        plain_at: 0,
        outgoing: Vec::new(),
        out_at: 0,
        peer_closed: false,
        tcp_eof: false,
        closing: false,
    };
    poll_fn(|cx| s.poll_handshake(cx)).await?;
    Ok(s)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn unexpected_eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed connection without sending TLS close_notify")
}

/// Write with `f` at the end of `v`, growing it to the size `f` asks for when it is short.
fn append(v: &mut Vec<u8>, mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<InsufficientSizeError>>) -> io::Result<()> {
    let start = v.len();
    let mut room = 512;
    loop {
        v.resize(start + room, 0);
        match f(&mut v[start..]) {
            Ok(n) => {
                v.truncate(start + n);
                return Ok(());
            }
            Err(Some(InsufficientSizeError { required_size })) if required_size > room => room = required_size,
            Err(_) => {
                v.truncate(start);
                return Err(io::Error::other("TLS record could not be written"));
            }
        }
    }
}

fn encode_error(e: EncodeError) -> Option<InsufficientSizeError> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s),
        EncodeError::AlreadyEncoded => None,
    }
}

fn encrypt_error(e: EncryptError) -> Option<InsufficientSizeError> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s),
        _ => None,
    }
}

/// Feed `buf` to rustls until it needs more bytes or has nothing left to do. Decrypted
/// application data goes to `sink`, handshake records to `out`; once application data may be
/// sent, `write` (if any) runs with the state that allows it. Returns how many bytes of `buf`
/// are consumed (the caller removes them) and where it stopped; `close_notify` from the
/// client sets `peer_closed`.
fn process(
    conn: &mut UnbufferedServerConnection,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    peer_closed: &mut bool,
    sink: &mut dyn FnMut(&[u8]),
    mut write: Option<Encrypt<'_>>,
) -> io::Result<(usize, Step)> {
    let mut used = 0;
    loop {
        let status = conn.process_tls_records(&mut buf[used..]);
        let mut discard = status.discard;
        let state = status.state.map_err(tls_error)?;
        let step = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(tls_error)?;
                    discard += record.discard;
                    sink(record.payload);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut data) => {
                append(out, |room| data.encode(room).map_err(encode_error))?;
                None
            }
            // The encoded records are in `out`, which is sent, in order, before any byte
            // encrypted later: the transmission rustls asks for is already arranged.
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                None
            }
            ConnectionState::PeerClosed => {
                *peer_closed = true;
                None
            }
            ConnectionState::BlockedHandshake => Some(Step::NeedData),
            ConnectionState::WriteTraffic(traffic) => {
                if let Some(write) = write.take() {
                    write(traffic, out)?;
                }
                Some(Step::Idle)
            }
            ConnectionState::Closed => Some(Step::Closed),
            // Early data is not enabled in the server configuration.
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected TLS state")),
        };
        used += discard;
        if let Some(step) = step {
            return Ok((used, step));
        }
    }
}

impl TlsStream {
    /// The protocol agreed by ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Process `self.incoming` (what is left of earlier reads), keeping decrypted data for the
    /// reader and running `write` when writing is allowed.
    fn process_pending(&mut self, write: Option<Encrypt<'_>>) -> io::Result<Step> {
        let Self { conn, incoming, plain, outgoing, peer_closed, .. } = self;
        let r = process(conn, incoming, outgoing, peer_closed, &mut |p| plain.extend_from_slice(p), write);
        let (used, step) = self.after_error(r)?;
        self.incoming.drain(..used);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        Ok(step)
    }

    /// On a TLS error, send the alert rustls queued for it if the socket takes it at once.
    fn after_error<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            let Self { conn, outgoing, peer_closed, .. } = self;
            let _ = process(conn, &mut [], outgoing, peer_closed, &mut |_| {}, None);
            if self.out_at < self.outgoing.len() {
                let _ = self.tcp.try_write(&self.outgoing[self.out_at..]);
            }
        }
        r
    }

    /// Send what waits in `outgoing`; its allocation goes once it is all sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.out_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Read more ciphertext from the socket onto `self.incoming`; `Ok(0)` is end of file.
    fn poll_read_incoming(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            self.incoming.reserve(READ_SCRATCH);
            match self.tcp.try_read_buf(&mut self.incoming) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let step = self.process_pending(None)?;
            if step == Step::Idle && !self.conn.is_handshaking() {
                return self.poll_send(cx);
            }
            if step == Step::Closed || self.peer_closed {
                return Poll::Ready(Err(unexpected_eof()));
            }
            ready!(self.poll_send(cx))?;
            if ready!(self.poll_read_incoming(cx))? == 0 {
                return Poll::Ready(Err(unexpected_eof()));
            }
        }
    }

    /// Give out decrypted data kept from an earlier record.
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.plain_at >= self.plain.len() {
            return false;
        }
        let n = (self.plain.len() - self.plain_at).min(buf.remaining());
        buf.put_slice(&self.plain[self.plain_at..self.plain_at + n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        true
    }

    /// Read from the socket and decrypt into `buf` (and `plain` for what does not fit).
    /// `Ok(true)` when something reached the reader or the stream ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        if !self.incoming.is_empty() {
            // Part of a record is waiting: the rest goes after it.
            let n = ready!(self.poll_read_incoming(cx))?;
            if n == 0 {
                self.tcp_eof = true;
                return Poll::Ready(Ok(true));
            }
            let before = buf.filled().len();
            let Self { conn, incoming, plain, outgoing, peer_closed, .. } = self;
            let r = process(conn, incoming, outgoing, peer_closed, &mut |p| give(buf, plain, p), None);
            let (used, _) = self.after_error(r)?;
            self.incoming.drain(..used);
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            return Poll::Ready(Ok(buf.filled().len() > before || self.peer_closed));
        }
        READS.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut rb = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                self.tcp_eof = true;
                return Poll::Ready(Ok(true));
            }
            let before = buf.filled().len();
            let Self { conn, plain, outgoing, peer_closed, .. } = self;
            let r = process(conn, &mut scratch[..n], outgoing, peer_closed, &mut |p| give(buf, plain, p), None);
            let (used, _) = self.after_error(r)?;
            self.incoming.extend_from_slice(&scratch[used..n]);
            Poll::Ready(Ok(buf.filled().len() > before || self.peer_closed))
        })
    }
}

/// Decrypted `data` into the reader's buffer, the rest into `plain`.
fn give(buf: &mut ReadBuf<'_>, plain: &mut Vec<u8>, data: &[u8]) {
    let n = if plain.is_empty() { data.len().min(buf.remaining()) } else { 0 };
    buf.put_slice(&data[..n]);
    plain.extend_from_slice(&data[n..]);
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        loop {
            if this.take_plain(buf) || this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if this.tcp_eof {
                // Also with part of a record left: the stream was cut.
                return Poll::Ready(Err(unexpected_eof()));
            }
            // Owed records (tickets, alerts, key updates) go out without the read waiting on
            // them; a socket that will not take them wakes this task when it will.
            if this.out_at < this.outgoing.len() {
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            if ready!(this.poll_fill(cx, buf))? {
                if this.out_at < this.outgoing.len() {
                    let _ = this.poll_send(cx);
                }
                if buf.filled().len() > before || this.peer_closed {
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Bytes encrypted earlier go first; until they are sent, nothing new is taken.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let data = &data[..data.len().min(MAX_WRITE)];
        WRITES.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut sealed = 0;
            // Into the scratch buffer, or (when pending handshake messages make it short)
            // straight into `outgoing`.
            let mut seal = |mut traffic: WriteTraffic<'_, ServerConnectionData>, out: &mut Vec<u8>| -> io::Result<()> {
                match traffic.encrypt(data, &mut scratch[..]) {
                    Ok(n) => {
                        sealed = n;
                        Ok(())
                    }
                    Err(EncryptError::InsufficientSize(_)) => append(out, |room| traffic.encrypt(data, room).map_err(encrypt_error)),
                    Err(e) => Err(io::Error::other(e)),
                }
            };
            if this.process_pending(Some(&mut seal))? != Step::Idle {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if this.out_at < this.outgoing.len() {
                // Sealed into `outgoing` (or queued after records the processing produced).
                this.outgoing.extend_from_slice(&scratch[..sealed]);
            } else if sealed > 0 {
                let sent = match Pin::new(&mut this.tcp).poll_write(cx, &scratch[..sealed]) {
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => 0,
                };
                this.outgoing.extend_from_slice(&scratch[sent..sealed]);
            }
            Poll::Ready(Ok(data.len()))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            let mut notify = |mut traffic: WriteTraffic<'_, ServerConnectionData>, out: &mut Vec<u8>| append(out, |room| traffic.queue_close_notify(room).map_err(encrypt_error));
            // A connection rustls already failed has no close_notify to send.
            let _ = this.process_pending(Some(&mut notify));
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "tls_stream_tests.rs"]
mod tests;
