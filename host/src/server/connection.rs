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

use crate::access_log::Pending;
use crate::telemetry::PendingSpans;

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

/// The requests of one connection: how many are in flight (until their response's head),
/// how many exchanges are not over (until their response's body is sent or dropped), and
/// when the last one started or ended. A connection with no request in flight for the idle
/// timeout is closed (a response its client does not read cannot hold it); one with no
/// exchange going on can be parked.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    exchanges: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    /// A connection opened now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            exchanges: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// A request starts; the first guard marks the end of the request (its response's
    /// head is ready), the second the end of the exchange (put it in the response body).
    pub fn request(self: &Arc<Self>) -> (EndMark, EndMark) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.exchanges.fetch_add(1, Ordering::AcqRel);
        self.touch();
        (
            EndMark(self.clone(), Counted::Request),
            EndMark(self.clone(), Counted::Exchange),
        )
    }

    fn count(&self, what: Counted) -> &AtomicUsize {
        match what {
            Counted::Request => &self.in_flight,
            Counted::Exchange => &self.exchanges,
        }
    }

    /// Marks the connection active now (a request started or ended, or a parked
    /// connection's client sent again).
    pub fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle(&self, idle: Duration) {
        self.none_for(&self.in_flight, idle).await;
    }

    /// Resolves once the connection has had no exchange going on for `after`.
    pub async fn quiet(&self, after: Duration) {
        self.none_for(&self.exchanges, after).await;
    }

    async fn none_for(&self, count: &AtomicUsize, wait: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let busy = count.load(Ordering::Acquire) > 0;
            let deadline = if busy {
                Instant::now() + wait
            } else {
                last + wait
            };
            if !busy && Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// What an [`EndMark`] counts.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// A request, until its response's head.
    Request,
    /// An exchange, until its response's body is sent.
    Exchange,
}

/// Marks the end of a request or of an exchange when dropped.
#[derive(Debug)]
pub struct EndMark(Arc<Activity>, Counted);

impl Drop for EndMark {
    fn drop(&mut self) {
        self.0.touch();
        self.0.count(self.1).fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its exchange going on until it is sent (or dropped), and,
/// when the request is logged or traced, counts the bytes sent and then finishes its
/// access log record and its spans.
pub struct CountedBody<B> {
    body: B,
    _exchange: EndMark,
    /// What waits for the body's end (boxed: most responses are neither logged nor traced).
    epilogue: Option<Box<Epilogue>>,
}

/// What a response's end finishes, and the bytes sent so far.
pub struct Epilogue {
    log: Option<Pending>,
    spans: Option<PendingSpans>,
    sent: u64,
}

impl Epilogue {
    /// What `response` asks to be finished at its end (taken out of its extensions).
    pub fn take<B>(response: &mut http::Response<B>) -> Option<Box<Self>> {
        let extensions = response.extensions_mut();
        let (log, spans) = (extensions.remove(), extensions.remove());
        (log.is_some() || spans.is_some()).then(|| {
            Box::new(Self {
                log,
                spans,
                sent: 0,
            })
        })
    }
}

impl<B> CountedBody<B> {
    /// `body`, its exchange's end marked by `exchange`; `epilogue` finished when it ends.
    pub fn new(body: B, exchange: EndMark, epilogue: Option<Box<Epilogue>>) -> Self {
        Self {
            body,
            _exchange: exchange,
            epilogue,
        }
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        if let Some(epilogue) = self.epilogue.take() {
            if let Some(log) = &epilogue.log {
                log.finish(epilogue.sent);
            }
            if let Some(spans) = &epilogue.spans {
                spans.finish();
            }
        }
    }
}

impl<B> http_body::Body for CountedBody<B>
where
    B: http_body::Body + Unpin,
    B::Data: bytes::Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some(epilogue), Poll::Ready(Some(Ok(frame)))) = (this.epilogue.as_mut(), &polled)
            && let Some(data) = frame.data_ref()
        {
            epilogue.sent += bytes::Buf::remaining(data) as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
