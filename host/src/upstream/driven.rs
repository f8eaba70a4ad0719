//! HTTP/1.1 connections to plain-text targets, driven by the request's own task. The
//! request is written and its response read by whoever awaits them: there is no hop to a
//! connection task through a channel (as in hyper-util's pooled client), no connector
//! cloned per request, no task per connection. A connection goes back to its worker's idle
//! list once its response has been read to the end and hyper says it can take the next
//! request; otherwise it is closed.
//!
//! Idle connections are never polled: when one is checked out it is polled once, without a
//! waker, so that an end of stream the target sent meanwhile is seen and the connection is
//! dropped. A request that was never written because the reused connection had closed is
//! sent again once on a new connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ProxyBody;

/// Why a request could not be exchanged on a driven connection.
#[derive(Debug)]
pub enum DrivenError {
    /// No connection could be opened.
    Connect(std::io::Error),
    /// Opening a connection took longer than the connect timeout.
    ConnectTimeout(Duration),
    /// The exchange failed (reset, closed early, malformed response).
    Http(hyper::Error),
}

impl DrivenError {
    /// Whether no connection could be opened (the request was never sent).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout(_))
    }
}

impl std::fmt::Display for DrivenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::ConnectTimeout(d) => write!(f, "connect: timed out after {} ms", d.as_millis()),
            Self::Http(e) => f.write_str(&super::describe(e)),
        }
    }
}

/// One HTTP/1.1 connection: the handle requests are sent on, and the connection itself,
/// which does the I/O whenever it is polled.
struct Connection {
    sender: http1::SendRequest<ProxyBody>,
    io: Pin<Box<http1::Connection<TokioIo<TcpStream>, ProxyBody>>>,
}

impl Connection {
    /// Drives the connection; true once it has closed.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        self.io.as_mut().poll(cx).is_ready()
    }

    /// Whether it can take another request now: it is driven once (without a waker) so
    /// that hyper notices a finished exchange, or an end of stream from the target.
    fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.poll_io(&mut cx) && self.sender.is_ready()
    }
}

struct Idle {
    target: SocketAddr,
    since: Instant,
    connection: Connection,
}

/// The idle connections of one upstream, one list per worker thread (plus one for the
/// control thread), each used by its own thread only: neither its lock nor its reference
/// count is ever contended.
pub struct DrivenPool {
    idle: Box<[Arc<IdleList>]>,
    connect_timeout: Duration,
}

/// One thread's idle connections, most recent last.
struct IdleList {
    connections: Mutex<Vec<Idle>>,
    max_per_target: usize,
    timeout: Duration,
}

impl IdleList {
    /// An idle connection to `target` that can take a request, the most recent first;
    /// stale and closed ones met on the way are dropped.
    fn checkout(&self, target: SocketAddr) -> Option<Connection> {
        let mut idle = self.connections.lock().ok()?;
        // Oldest first: the stale ones are a prefix.
        let now = Instant::now();
        let stale = idle.partition_point(|i| now.duration_since(i.since) >= self.timeout);
        idle.drain(..stale);
        while let Some(at) = idle.iter().rposition(|i| i.target == target) {
            let mut connection = idle.remove(at).connection;
            if connection.reusable() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next request to `target`, within the per-target cap (the
    /// oldest goes first).
    fn checkin(&self, target: SocketAddr, connection: Connection) {
        let Ok(mut idle) = self.connections.lock() else {
            return;
        };
        if self.max_per_target == 0 {
            return;
        }
        // One in, at most one out: the list never holds more than the cap per target.
        if idle.iter().filter(|i| i.target == target).count() >= self.max_per_target
            && let Some(oldest) = idle.iter().position(|i| i.target == target)
        {
            idle.remove(oldest);
        }
        idle.push(Idle {
            target,
            since: Instant::now(),
            connection,
        });
    }
}

impl DrivenPool {
    /// A pool for `workers` worker threads: at most `max_idle_per_target` idle connections
    /// per target and thread, each kept up to `idle_timeout`.
    pub fn new(
        workers: usize,
        max_idle_per_target: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        let list = || {
            Arc::new(IdleList {
                connections: Mutex::new(Vec::new()),
                max_per_target: max_idle_per_target,
                timeout: idle_timeout,
            })
        };
        Self {
            idle: (0..=workers).map(|_| list()).collect(),
            connect_timeout,
        }
    }

    /// The idle list of the thread running this code.
    fn own(&self) -> &Arc<IdleList> {
        &self.idle[crate::worker::index() % self.idle.len()]
    }

    async fn connect(&self, target: SocketAddr) -> Result<Connection, DrivenError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(target))
            .await
            .map_err(|_| DrivenError::ConnectTimeout(self.connect_timeout))?
            .map_err(DrivenError::Connect)?;
        stream.set_nodelay(true).map_err(DrivenError::Connect)?;
        let (sender, io) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(DrivenError::Http)?;
        Ok(Connection {
            sender,
            io: Box::pin(io),
        })
    }

    /// Sends `request` to `target` on an idle connection or a new one, driving it until
    /// the response head arrives; the response body drives it on.
    pub async fn send(
        &self,
        target: SocketAddr,
        request: Request<ProxyBody>,
    ) -> Result<Response<DrivenBody>, DrivenError> {
        let idle = self.own();
        let request = match idle.checkout(target) {
            Some(connection) => match exchange(connection, request).await {
                Ok((response, connection)) => return Ok(lease(idle, target, response, connection)),
                // Never written: the connection had closed. Once more on a new one.
                Err(mut error) => match error.take_message() {
                    Some(request) => request,
                    None => return Err(DrivenError::Http(error.into_error())),
                },
            },
            None => request,
        };
        let connection = self.connect(target).await?;
        match exchange(connection, request).await {
            Ok((response, connection)) => Ok(lease(idle, target, response, connection)),
            Err(error) => Err(DrivenError::Http(error.into_error())),
        }
    }
}

/// The response, its body holding the connection until it is read.
fn lease(
    idle: &Arc<IdleList>,
    target: SocketAddr,
    response: Response<Incoming>,
    connection: Connection,
) -> Response<DrivenBody> {
    response.map(|body| DrivenBody {
        body,
        ended: false,
        lease: Some(Lease {
            idle: idle.clone(),
            target,
            connection,
        }),
    })
}

type TrySendError = hyper::client::conn::TrySendError<Request<ProxyBody>>;

/// Writes `request` on `connection` and reads the response head, driving the connection.
async fn exchange(
    mut connection: Connection,
    request: Request<ProxyBody>,
) -> Result<(Response<Incoming>, Connection), TrySendError> {
    let mut response = std::pin::pin!(connection.sender.try_send_request(request));
    let mut closed = false;
    let result = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !closed && connection.poll_io(cx) {
            // Closed: the response future has its error now.
            closed = true;
            return response.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await;
    result.map(|response| (response, connection))
}

/// A connection lent to a response body, returned to its thread's idle list when the body
/// is done.
struct Lease {
    idle: Arc<IdleList>,
    target: SocketAddr,
    connection: Connection,
}

/// The body of a response on a driven connection: reading it drives the connection, and
/// once it has been read to the end the connection goes back to the pool.
pub struct DrivenBody {
    body: Incoming,
    /// The last frame has been read.
    ended: bool,
    /// `None` once the connection closed.
    lease: Option<Lease>,
}

impl Body for DrivenBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(lease) = &mut this.lease
            && lease.connection.poll_io(cx)
        {
            this.lease = None;
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for DrivenBody {
    /// A body read to its end gives its connection back, if hyper can send on it again.
    fn drop(&mut self) {
        if let Some(mut lease) = self.lease.take()
            && self.is_end_stream()
            && lease.connection.reusable()
        {
            lease.idle.checkin(lease.target, lease.connection);
        }
    }
}
