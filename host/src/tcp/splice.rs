//! Splicing a client connection and a target connection: bytes copied both ways, each
//! direction shut down on its own when its reader sees the end (a half-close passes
//! through), counted as they are read, under an idle timeout that any byte either way
//! resets.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How a splice ended.
#[derive(Debug)]
pub enum Spliced {
    /// Both directions ended: the client and the target each closed their sending side.
    Closed,
    /// One side failed (a reset, say).
    Failed(io::Error),
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// The gateway stopped, and the grace period is over.
    Stopped,
}

/// Where a splice counts the bytes it reads from each side.
pub struct Counters<'a> {
    /// Bytes read from the client.
    pub client_bytes: &'a AtomicU64,
    /// Bytes read from the target.
    pub target_bytes: &'a AtomicU64,
}

/// Copies between `client` and `target` with buffers of `buffer` bytes each way, until
/// both directions end, nothing moves for `idle`, or `stop` resolves.
pub async fn splice(
    client: TcpStream,
    target: TcpStream,
    (buffer, idle): (usize, Duration),
    counters: Counters<'_>,
    stop: impl Future<Output = ()>,
) -> Spliced {
    let activity = Activity::new();
    let mut client = Metered::new(client, counters.client_bytes, &activity);
    let mut target = Metered::new(target, counters.target_bytes, &activity);
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut target, buffer, buffer);
    tokio::select! {
        copied = copy => match copied {
            Ok(_) => Spliced::Closed,
            Err(e) => Spliced::Failed(e),
        },
        () = activity.idle(idle) => Spliced::Idle,
        () = stop => Spliced::Stopped,
    }
}

/// The time of the last byte read either way, in milliseconds since the splice began.
struct Activity {
    began: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            began: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.began.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing was read for `idle`; sleeps to each deadline, so a busy
    /// connection costs one timer wake-up per `idle`, not one per read.
    async fn idle(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.began + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A stream whose reads are counted and mark the splice active.
struct Metered<'a> {
    stream: TcpStream,
    bytes: &'a AtomicU64,
    activity: &'a Activity,
}

impl<'a> Metered<'a> {
    fn new(stream: TcpStream, bytes: &'a AtomicU64, activity: &'a Activity) -> Self {
        Self {
            stream,
            bytes,
            activity,
        }
    }
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.bytes.fetch_add(read as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
