//! Serving accepted connections: the accept loop (connection caps, back-off on accept
//! errors, graceful drain) and one connection's life (first bytes, HTTP/1.1 or h2c, idle
//! timeout, graceful shutdown).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::admission::{Admission, Admitted};
use crate::body::{InFlightHandoff, ProxyBody};
use crate::config::{LimitsConfig, millis};
use crate::headers::Peer;

use super::accept::AcceptBackoff;
use super::connection::{Activity, CountedBody, Epilogue, Sniffed, first_bytes};
use super::{LimitsSource, TlsSource};

/// Accepts connections until `stop` flips, serving each with `handler` (upgrades such as
/// WebSocket included) under the connection limits; then asks every connection to finish
/// gracefully and waits for them, up to `grace`.
pub(super) async fn accept_loop<F, Fut>(
    (listener, tls): (TcpListener, Option<TlsSource>),
    handler: F,
    limits: LimitsSource,
    admission: Arc<Admission>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    // Every connection task holds a clone of `open`; when all are gone, `drained` resolves.
    let (drained, open) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            // Out of file descriptors and the like: backs off instead of spinning.
            (stream, client) = backoff.accept(&listener) => {
                let limits = limits();
                let Some(admitted) = admission.admit(client.ip(), limits.max_connections, limits.max_connections_per_ip) else {
                    // Closed at once: over a cap, a connection holds nothing.
                    tracing::debug!(%client, "connection refused: connection limit reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let admitted = Arc::new(admitted);
                let peer = Peer::new(client).holding(admitted.clone());
                let ending = (stop.clone(), grace);
                let held = (admitted, open.clone());
                // One task type per kind, so that a clear-text connection's task is not as
                // large as a TLS one's.
                let handler = handler.clone();
                match &tls {
                    // Owns `held`: a parked connection carries it to the task it waits on.
                    None => {
                        tokio::spawn(serve_connection(stream, peer, handler, limits, ending, held));
                    }
                    Some(tls) => {
                        let tls = tls.clone();
                        spawn_holding(serve_tls(stream, peer, tls, handler, limits, ending), held)
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    drop((listener, open));
    if tokio::time::timeout(grace, drained.closed()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing the connections left"
        );
    }
}

/// What a connection holds until it ends: its place under the caps, its mark in the drain.
type Held = (Arc<Admitted>, watch::Receiver<()>);

/// Runs `connection` on a task of its own, holding `held` until it ends.
fn spawn_holding<C>(connection: C, held: Held)
where
    C: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        connection.await;
        drop(held);
    });
}

/// Serves one connection: its first bytes within the first-byte timeout, then HTTP/1.1 or
/// HTTP/2 (told apart by those bytes, so that each connection holds only its own protocol's
/// state) until the client closes, the connection idles out, or the gateway stops. An idle
/// HTTP/1.1 connection ends this task and waits parked on a small one of its own.
async fn serve_connection<F, Fut>(
    stream: tokio::net::TcpStream,
    peer: Peer,
    handler: F,
    limits: LimitsConfig,
    (stop, grace): (watch::Receiver<bool>, Duration),
    held: Held,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let client = peer.addr;
    let Some(io) = first_bytes(stream, millis(limits.first_byte_timeout_ms)).await else {
        tracing::debug!(%client, "connection closed: no request within the first-byte timeout");
        return;
    };
    let (service, activity) = counted_service(peer, handler);
    let mut ending = Ending::new(client, activity, &limits, (stop, grace));
    if io.is_h2() {
        log_end(client, serve_h2(io, service, &limits, &mut ending).await);
        return;
    }
    let connection = Http1 {
        service,
        ending,
        builder: http1_builder(&limits),
        release: millis(limits.idle_release_ms),
        keep_open: io.keep_open().clone(),
        held,
    };
    if let Some((stream, connection)) = connection.serve(io).await {
        connection.park(stream);
    }
}

/// Serves one connection of a `[tls]` listener: the handshake within its timeout (with
/// the live snapshot's certificates), then HTTP/2 or HTTP/1.1 as ALPN settled. Idle
/// connections are not parked: their TLS state stays with them until the idle timeout.
async fn serve_tls<F, Fut>(
    stream: tokio::net::TcpStream,
    peer: Peer,
    tls: TlsSource,
    handler: F,
    limits: LimitsConfig,
    (stop, grace): (watch::Receiver<bool>, Duration),
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let client = peer.addr;
    let Some(terminator) = tls.terminator() else {
        tracing::debug!(%client, "connection closed: [tls] has no listener in the live config");
        return;
    };
    let outcome = terminator.accept(stream).await;
    tls.counters().count(&outcome);
    let (stream, session) = match outcome {
        Ok(accepted) => accepted,
        Err(failure) => {
            tracing::debug!(%client, ?failure, "TLS handshake failed");
            return;
        }
    };
    let h2 = session.h2;
    let (service, activity) = counted_service(peer.over_tls(session), handler);
    let mut ending = Ending::new(client, activity, &limits, (stop, grace));
    let result = if h2 {
        serve_h2(stream, service, &limits, &mut ending).await
    } else {
        let connection = http1_builder(&limits)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        match ending
            .drive(connection.as_mut(), None, |c| c.graceful_shutdown())
            .await
        {
            Ended::Done(result) => result,
            Ended::Released => Ok(()),
        }
    };
    log_end(client, result);
}

/// Logs how a connection from `client` ended, if with an error.
fn log_end(client: std::net::SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}

/// The service of one connection: `handler` for each request, each request counted in the
/// connection's activity (returned) until its response is sent.
fn counted_service<F, Fut>(
    peer: Peer,
    handler: F,
) -> (
    impl HttpService<Incoming, ResBody = CountedBody<ProxyBody>, Error = Infallible, Future: Send>
    + Send
    + Unpin
    + 'static,
    Arc<Activity>,
)
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let activity = Activity::new();
    let requests = activity.clone();
    // (hyper keeps a slot as large as this future for as long as a connection is served:
    // parking an idle connection gives it back.)
    let service = service_fn(move |request| {
        let (request_guard, exchange) = requests.request();
        let response = handler(request, peer.clone());
        async move {
            let mut response = response.await;
            // A request ends with its response's head, unless its stream bounds its own
            // waits and takes the mark (`InFlightHandoff`).
            if let Some(handoff) = response.extensions_mut().remove::<InFlightHandoff>() {
                handoff.hold(Box::new(request_guard));
            } else {
                drop(request_guard);
            }
            let epilogue = Epilogue::take(&mut response);
            Ok::<_, Infallible>(response.map(|body| CountedBody::new(body, exchange, epilogue)))
        }
    });
    (service, activity)
}

/// HTTP/2 on `io` until it ends.
async fn serve_h2<I, S>(
    io: I,
    service: S,
    limits: &LimitsConfig,
    ending: &mut Ending,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    S: HttpService<Incoming, ResBody = CountedBody<ProxyBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(millis(limits.h2_ping_interval_ms))
        .keep_alive_timeout(millis(limits.h2_ping_timeout_ms))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .serve_connection(TokioIo::new(io), service);
    // Boxed: an HTTP/1.1 connection's task must not be as large as HTTP/2's state.
    let mut connection = Box::pin(connection);
    match (ending.drive(connection.as_mut(), None, |c| c.graceful_shutdown())).await {
        Ended::Done(result) => result,
        Ended::Released => Ok(()),
    }
}

/// The HTTP/1.1 settings of every connection.
fn http1_builder(limits: &LimitsConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(millis(limits.header_read_timeout_ms));
    builder
}

/// An HTTP/1.1 connection between hyper's turns on it: what it keeps while parked.
struct Http1<S> {
    service: S,
    ending: Ending,
    builder: http1::Builder,
    /// Quiet for this long, it is parked.
    release: Duration,
    /// Set while hyper is shut down to park: the socket stays open.
    keep_open: Arc<AtomicBool>,
    held: Held,
}

impl<S, B> Http1<S>
where
    S: HttpService<Incoming, ResBody = B> + Send + Unpin + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves requests on `io` with hyper until the connection ends (`None`), or has been
    /// quiet for `release` with nothing read ahead: then hyper's state and buffers are
    /// given back, and the socket is returned to be parked.
    async fn serve(mut self, mut io: Sniffed) -> Option<(TcpStream, Self)> {
        loop {
            // Boxed: the future waiting on it is smaller, and its state goes in one piece.
            let mut connection = Box::new(
                (self.builder)
                    .serve_connection(TokioIo::new(io), self.service)
                    .with_upgrades(),
            );
            // Boxed too: its timers and select state are over once it is released.
            let released = Box::pin(self.ending.drive(
                Pin::new(&mut *connection),
                Some((self.release, &self.keep_open)),
                |c| c.graceful_shutdown(),
            ));
            if let Ended::Done(result) = released.await {
                log_end(self.ending.client, result);
                return None;
            }
            // `None`: the connection was upgraded, and the tunnel has the socket.
            let parts = connection.into_parts()?;
            self.service = parts.service;
            let stream = parts.io.into_inner().into_stream();
            self.keep_open.store(false, Ordering::Release);
            if parts.read_buf.is_empty() {
                return Some((stream, self));
            }
            // What hyper read ahead, copied: its `Bytes` would keep the whole read buffer.
            let read_ahead = Bytes::copy_from_slice(&parts.read_buf);
            drop(parts.read_buf);
            // The client sent those bytes: the new hyper connection gets a whole release
            // period to read its request, as a connection leaving its parking does.
            self.ending.activity.touch();
            io = Sniffed::resume(stream, read_ahead, self.keep_open.clone());
        }
    }

    /// Waits on a task of its own, as small as a socket and a few timers, until the client
    /// sends again (then a new task serves it), the connection idles out, or the gateway
    /// stops. The task that served it ends: its state is as large as hyper's largest.
    fn park(mut self, stream: TcpStream) {
        tokio::spawn(async move {
            let parked = self.held.0.park();
            let resumed = self.ending.unparked(&stream).await;
            drop(parked);
            if resumed {
                let io = Sniffed::resume(stream, Bytes::new(), self.keep_open.clone());
                tokio::spawn(async move {
                    if let Some((stream, connection)) = self.serve(io).await {
                        connection.park(stream);
                    }
                });
            }
        });
    }
}

/// How a driven connection ended.
enum Ended {
    /// It is over, well or not.
    Done(Result<(), hyper::Error>),
    /// It was idle long enough to be parked, and hyper let go of the socket.
    Released,
}

/// How a served connection ends: when the client closes it, when it has been idle for
/// `idle`, or when the gateway stops (then gracefully, within `grace`).
struct Ending {
    client: std::net::SocketAddr,
    activity: Arc<Activity>,
    idle: Duration,
    stop: watch::Receiver<bool>,
    grace: Duration,
}

impl Ending {
    /// The ending of a connection from `client`, idle after `limits.idle_timeout_ms`.
    fn new(
        client: std::net::SocketAddr,
        activity: Arc<Activity>,
        limits: &LimitsConfig,
        (stop, grace): (watch::Receiver<bool>, Duration),
    ) -> Self {
        let idle = millis(limits.idle_timeout_ms);
        Self {
            client,
            activity,
            idle,
            stop,
            grace,
        }
    }

    /// Runs `connection` until it ends; `shut_down` asks it to finish gracefully. With
    /// `release`, a connection idle for that long is shut down with its socket kept open
    /// (the flag set), to be parked.
    async fn drive<C>(
        &mut self,
        mut connection: Pin<&mut C>,
        release: Option<(Duration, &AtomicBool)>,
        shut_down: impl Fn(Pin<&mut C>),
    ) -> Ended
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let Self {
            client,
            activity,
            idle,
            stop,
            grace,
        } = self;
        let released = async {
            match release {
                // Parked only between exchanges, never under a response still being sent.
                Some((after, _)) => activity.quiet(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => Ended::Done(result),
            _ = stop.changed() => {
                shut_down(connection.as_mut());
                // The accept loop's grace period bounds this wait.
                Ended::Done(connection.await)
            }
            () = activity.idle(*idle) => {
                tracing::debug!(client = %client, idle_ms = idle.as_millis() as u64, "closing an idle connection");
                shut_down(connection.as_mut());
                // A response the client will not read cannot hold the connection either.
                match tokio::time::timeout((*grace).min(*idle), connection).await {
                    Ok(result) => Ended::Done(result),
                    Err(_) => Ended::Done(Ok(())),
                }
            }
            () = released => {
                if let Some((_, keep_open)) = release {
                    keep_open.store(true, Ordering::Release);
                }
                shut_down(connection.as_mut());
                match tokio::time::timeout((*grace).min(*idle), connection).await {
                    Ok(Ok(())) => Ended::Released,
                    Ok(Err(e)) => Ended::Done(Err(e)),
                    Err(_) => Ended::Done(Ok(())),
                }
            }
        }
    }

    /// Waits, parked, until the client sends again (true), or the connection idles out or
    /// the gateway stops (false).
    async fn unparked(&mut self, stream: &tokio::net::TcpStream) -> bool {
        tokio::select! {
            ready = stream.readable() => {
                // The new hyper connection gets a whole release period to read its request,
                // rather than being released again before it has read anything.
                self.activity.touch();
                ready.is_ok()
            }
            _ = self.stop.changed() => false,
            () = self.activity.idle(self.idle) => {
                tracing::debug!(client = %self.client, "closing an idle parked connection");
                false
            }
        }
    }
}
