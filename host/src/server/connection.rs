//! One client connection before and around hyper: its first bytes read under a timeout
//! (an idle socket is closed instead of held forever), those bytes replayed to hyper, and
//! the requests it carries counted so that a connection idle for too long is closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a new connection's first bytes: enough to tell HTTP/1 from the HTTP/2 preface.
/// `None` when the client sent nothing (or closed) within `timeout`.
pub async fn first_bytes(stream: TcpStream, timeout: Duration) -> Option<Sniffed> {
    let mut stream = stream;
    let mut buf = [0u8; 24];
    let mut len = 0;
    let read = async {
        loop {
            let n = stream.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                return None;
            }
            len += n;
            // HTTP/1 as soon as the bytes leave the preface; HTTP/2 once it is complete.
            if buf[..len] != PREFACE[..len] || len == PREFACE.len() {
                return Some(());
            }
        }
    };
    tokio::time::timeout(timeout, read).await.ok()??;
    Some(Sniffed::resume(
        stream,
        Bytes::copy_from_slice(&buf[..len]),
        Arc::default(),
    ))
}

/// A connection whose first bytes were read already: they are read again first. While
/// `keep_open` is set, shutting it down leaves the socket open (a connection being parked).
pub struct Sniffed {
    prefix: Bytes,
    stream: TcpStream,
    keep_open: Arc<AtomicBool>,
}

impl Sniffed {
    /// `stream`, whose `prefix` was read from it already.
    pub fn resume(stream: TcpStream, prefix: Bytes, keep_open: Arc<AtomicBool>) -> Self {
        Self {
            prefix,
            stream,
            keep_open,
        }
    }

    /// Whether the connection began with the HTTP/2 preface (h2c with prior knowledge).
    pub fn is_h2(&self) -> bool {
        self.prefix[..] == PREFACE[..]
    }

    /// The flag that keeps the socket open when the connection is shut down.
    pub fn keep_open(&self) -> &Arc<AtomicBool> {
        &self.keep_open
    }

    /// The socket, once hyper has let go of it (what it read ahead is in its parts).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

impl AsyncRead for Sniffed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.keep_open.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// The requests of one connection: how many are in flight, and when the last one started
/// or ended. A connection with none in flight for the idle timeout is closed.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    /// A connection opened now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// A request starts; the guard marks its end.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        RequestGuard(self.clone())
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle(&self, idle: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            let deadline = if busy {
                Instant::now() + idle
            } else {
                last + idle
            };
            if !busy && Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// Marks the end of a request when dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
