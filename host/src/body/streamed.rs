//! A body streamed from a peer under time limits: an idle timeout between frames and, for
//! request bodies, a total deadline. A request body also reports to an [`Upload`] when it
//! ended and whether the client failed it, so that a slow or aborted upload is never taken
//! for an upstream's failure.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

use tokio::time::Sleep;

/// Why a streamed body stopped early.
#[derive(Debug)]
pub enum StreamError {
    /// No frame arrived within the idle timeout.
    Idle(Duration),
    /// The whole body did not arrive within the total timeout.
    Total(Duration),
    /// The peer failed the body (reset, closed early, malformed framing).
    Peer(hyper::Error),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idle(d) => write!(f, "no body data for {} ms", d.as_millis()),
            Self::Total(d) => write!(f, "body not complete within {} ms", d.as_millis()),
            Self::Peer(e) => write!(f, "body failed: {e}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl StreamError {
    /// True for the time limits (a 408 for a client), false for a peer's failure.
    pub fn is_timeout(&self) -> bool {
        !matches!(self, Self::Peer(_))
    }
}

/// What became of a client's upload: when it ended, and whether the client failed it.
#[derive(Debug)]
pub struct Upload {
    ended: watch::Sender<Option<Instant>>,
    fault: AtomicU8,
    limit: Duration,
    received: AtomicU64,
}

/// How a client failed its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFault {
    /// It stopped sending (idle or total timeout).
    TimedOut,
    /// It closed or reset the stream.
    Aborted,
}

impl Upload {
    /// An upload that may take up to `limit` (the total body timeout).
    pub fn new(limit: Duration) -> Self {
        Self {
            ended: watch::Sender::new(None),
            fault: AtomicU8::new(0),
            limit,
            received: AtomicU64::new(0),
        }
    }

    /// The longest the upload may take.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Body bytes read from the client so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// When the upload ended, if it has.
    pub fn ended_at(&self) -> Option<Instant> {
        *self.ended.borrow()
    }

    /// The time since `started` or since the upload ended, whichever is later: how long
    /// the upstream has had the whole request.
    pub fn since_end(&self, started: Instant) -> Duration {
        let from = self.ended_at().map_or(started, |ended| ended.max(started));
        from.elapsed()
    }

    /// Waits until the upload has ended, well or not.
    pub async fn ended(&self) {
        let mut ended = self.ended.subscribe();
        let _ = ended.wait_for(Option::is_some).await;
    }

    /// How the client failed it, if it did.
    pub fn fault(&self) -> Option<UploadFault> {
        match self.fault.load(Ordering::Acquire) {
            1 => Some(UploadFault::TimedOut),
            2 => Some(UploadFault::Aborted),
            _ => None,
        }
    }

    fn end(&self, fault: Option<UploadFault>) {
        if let Some(fault) = fault {
            let code = match fault {
                UploadFault::TimedOut => 1,
                UploadFault::Aborted => 2,
            };
            self.fault.store(code, Ordering::Release);
        }
        self.ended.send_if_modified(|ended| {
            let first = ended.is_none();
            if first {
                *ended = Some(Instant::now());
            }
            first
        });
    }
}

/// A peer's body with an idle timeout and an optional total deadline. Timers are armed
/// only when the peer makes the body wait, so a body that is already there costs none.
pub struct Streamed {
    inner: Source,
    idle: Duration,
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// Set when a frame arrived since the idle timer was last armed.
    progressed: bool,
    total: Option<(Duration, Pin<Box<Sleep>>)>,
    upload: Option<Arc<Upload>>,
}

/// A peer's body that is more than hyper's `Incoming` (one that drives its connection as
/// it is read, say).
pub type PeerBody = Pin<Box<dyn Body<Data = Bytes, Error = hyper::Error> + Send>>;

/// Where a streamed body's frames come from.
enum Source {
    /// A peer's body.
    Peer(Incoming),
    /// A peer's body of another kind.
    Boxed(PeerBody),
    /// Chunks the gateway produces itself (a stream of server-sent events); the body ends
    /// when the sender is dropped.
    Channel(mpsc::Receiver<Bytes>),
}

impl Source {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self {
            Self::Peer(body) => Pin::new(body).poll_frame(cx),
            Self::Boxed(body) => body.as_mut().poll_frame(cx),
            Self::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Peer(body) => body.is_end_stream(),
            Self::Boxed(body) => body.is_end_stream(),
            Self::Channel(rx) => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Peer(body) => body.size_hint(),
            Self::Boxed(body) => body.size_hint(),
            Self::Channel(_) => SizeHint::default(),
        }
    }
}

impl Streamed {
    /// A body of the chunks sent into `rx`, with no idle timeout (the producer keeps it
    /// alive and bounds its own waits).
    pub fn channel(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            inner: Source::Channel(rx),
            idle: Duration::MAX,
            idle_timer: None,
            progressed: false,
            total: None,
            upload: None,
        }
    }

    /// A body under the idle timeout only (an upstream's response, a request with no body).
    pub fn new(inner: Incoming, idle: Duration) -> Self {
        Self::peer(Source::Peer(inner), idle)
    }

    /// [`Streamed::new`] for a peer's body of another kind.
    pub fn boxed(inner: PeerBody, idle: Duration) -> Self {
        Self::peer(Source::Boxed(inner), idle)
    }

    fn peer(inner: Source, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            idle_timer: None,
            progressed: false,
            total: None,
            upload: None,
        }
    }

    /// A request body from a client, with the idle timeout and the upload's limit as the
    /// total; `upload` hears how it ends.
    pub fn request(inner: Incoming, idle: Duration, upload: Arc<Upload>) -> Self {
        let total = upload.limit;
        let ended = inner.is_end_stream();
        let inner = Source::Peer(inner);
        if ended {
            upload.end(None);
        }
        Self {
            inner,
            idle,
            idle_timer: None,
            progressed: false,
            total: (!ended).then(|| (total, Box::pin(tokio::time::sleep(total)))),
            upload: Some(upload),
        }
    }

    fn fail(&mut self, error: StreamError) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if let Some(upload) = &self.upload {
            let fault = if error.is_timeout() {
                UploadFault::TimedOut
            } else {
                UploadFault::Aborted
            };
            upload.end(Some(fault));
        }
        Poll::Ready(Some(Err(error)))
    }

    fn end_upload(&mut self) {
        if let Some(upload) = &self.upload {
            upload.end(None);
        }
        // Nothing more to wait for: free the timers now rather than with the body.
        self.idle_timer = None;
        self.total = None;
    }

    /// Called when the peer makes us wait: arms (or re-arms) the timers and reports
    /// whether one ran out.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> Option<StreamError> {
        if matches!(self.inner, Source::Channel(_)) {
            return None;
        }
        let idle = self.idle;
        let timer = self
            .idle_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if std::mem::take(&mut self.progressed) {
            timer.as_mut().reset(tokio::time::Instant::now() + idle);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Some(StreamError::Idle(idle));
        }
        let (total, deadline) = self.total.as_mut()?;
        deadline
            .as_mut()
            .poll(cx)
            .is_ready()
            .then_some(StreamError::Total(*total))
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = this.inner.poll_frame(cx);
        let Poll::Ready(frame) = polled else {
            return match this.timed_out(cx) {
                Some(error) => this.fail(error),
                None => Poll::Pending,
            };
        };
        match frame {
            Some(Ok(frame)) => {
                this.progressed = true;
                if let (Some(upload), Some(data)) = (&this.upload, frame.data_ref()) {
                    upload
                        .received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if this.inner.is_end_stream() {
                    this.end_upload();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => this.fail(StreamError::Peer(e)),
            None => {
                this.end_upload();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
