//! A device's live connection: the connect endpoint's checks, then a WebSocket session
//! (messages out within an ack window, acks and requests in, resends after the ack
//! timeout) or an SSE session (messages out; acks by `Last-Event-ID` on reconnect or on
//! the devices endpoint). Either reads the device's stream from the store, so nothing
//! waits in memory per message; a device that stops reading is closed after
//! `send_timeout_ms`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Either;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as WsMessage, handshake::derive_accept_key};

use super::api::{PushRequest, Refusal, consumer, query};
use super::frames::{ClientFrame, ServerFrame};
use super::store::Backlog;
use super::{Count, Live, PushService};
use crate::body::{InFlightHandoff, ProxyBody, Streamed};
use crate::config::millis;
use crate::config::push::PushConfig;

/// How long a session waits between reads of its stream while the store fails (a Redis
/// failover, say): the connection stays open meanwhile.
const STORE_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a session lasts with a store that keeps failing before it closes.
const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The answer to a frame the store could not serve now; the device sends it again.
const STORE_UNAVAILABLE: ServerFrame<'static> = ServerFrame::Error {
    code: "store_unavailable",
    message: "the push store failed; send it again",
};

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// After a failed read of the stream: false once the store has failed for longer than
/// [`STORE_PATIENCE`] (counted from the first failure in a row, kept in `failing`).
fn patient(failing: &mut Option<Instant>) -> bool {
    failing.get_or_insert_with(Instant::now).elapsed() <= STORE_PATIENCE
}

/// Where a session starts and what bounds it.
struct Start {
    device: String,
    user: String,
    /// The offset after which to send: what the device acked, or the last one it says it
    /// got (which acks it).
    after: u64,
    config: PushConfig,
    /// The connection's place under the caps, given back when the session ends.
    _place: Option<Arc<crate::admission::Admitted>>,
}

impl PushService {
    /// The connect endpoint: a WebSocket upgrade, or an SSE stream.
    pub(super) async fn connect(
        self: &Arc<Self>,
        request: PushRequest<'_>,
        config: &PushConfig,
    ) -> Result<Response<ProxyBody>, Refusal> {
        if request.parts.method != http::Method::GET {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "allowed: GET",
            ));
        }
        let user = consumer(&request)?;
        let device = query(request.parts, "device").ok_or_else(|| {
            Refusal::new(StatusCode::BAD_REQUEST, "no_device", "give ?device=<id>")
        })?;
        self.owned(&user, &device).await?;
        let headers = &request.parts.headers;
        let resume = (headers.get("last-event-id").and_then(|v| v.to_str().ok()))
            .map(str::to_string)
            .or_else(|| query(request.parts, "last_offset"));
        let resume = match resume.map(|r| r.trim().parse::<u64>()) {
            None => 0,
            Some(Ok(offset)) => offset,
            Some(Err(_)) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad_offset",
                    "the last offset is not a number",
                ));
            }
        };
        // What the device says it got is acked; it resumes after what is acked.
        let after = self.store()?.ack(device.clone(), resume).await?;
        let start = Start {
            device,
            user,
            after,
            config: config.clone(),
            _place: request.place.clone(),
        };
        let key = headers.get("sec-websocket-key").cloned();
        let version = headers.get("sec-websocket-version").cloned();
        if let Some(upgrade) = request.websocket {
            let (Some(key), Some(b"13")) = (key, version.as_ref().map(|v| v.as_bytes())) else {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad_handshake",
                    "a WebSocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
                ));
            };
            let accept = derive_accept_key(key.as_bytes());
            let service = self.clone();
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => service.websocket(TokioIo::new(upgraded), start).await,
                    Err(e) => tracing::debug!(error = %e, "push upgrade failed"),
                }
            });
            let mut response = Response::new(crate::body::full_body(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(accept) = HeaderValue::from_str(&accept) {
                h.insert("sec-websocket-accept", accept);
            }
            return Ok(response);
        }
        let wants_events = (headers.get_all(header::ACCEPT).iter())
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"));
        if !wants_events {
            return Err(Refusal::new(
                StatusCode::UPGRADE_REQUIRED,
                "not_a_stream",
                "connect with a WebSocket upgrade or Accept: text/event-stream",
            ));
        }
        let (tx, rx) = mpsc::channel(start.config.window.max(4));
        // The session holds its connection's in-flight mark until it ends.
        let in_flight = InFlightHandoff::default();
        tokio::spawn(self.clone().events(tx, start, in_flight.clone()));
        let mut response = Response::new(Either::Left(Streamed::channel(rx)));
        response.extensions_mut().insert(in_flight);
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    /// Up to `max` messages after `after`, counting the expired ones.
    async fn next(&self, device: &str, after: u64, max: usize) -> Option<Backlog> {
        let Ok(store) = self.store() else { return None };
        match store
            .backlog(device.to_string(), after, max, crate::time::now_ms())
            .await
        {
            Ok(backlog) => {
                self.counters.add(Count::Expired, backlog.expired);
                Some(backlog)
            }
            Err(e) => {
                if let Some(unlogged) = self.read_failures.occur(10_000) {
                    tracing::warn!(device, error = %e, unlogged, "push store read failed; the session reads again shortly");
                }
                None
            }
        }
    }

    /// An SSE session: sends the backlog, then whatever is stored, until the client goes;
    /// `_in_flight` keeps its connection busy until then.
    async fn events(
        self: Arc<Self>,
        tx: mpsc::Sender<Bytes>,
        start: Start,
        _in_flight: InFlightHandoff,
    ) {
        // The connect endpoint opened the store.
        let Ok(store) = self.store().cloned() else {
            return;
        };
        let live = self.attach(&start.device);
        let config = &start.config;
        let send_timeout = millis(config.send_timeout_ms);
        let send = |frame: String| {
            let tx = tx.clone();
            async move { timeout(send_timeout, tx.send(Bytes::from(frame))).await }
        };
        let hello = ServerFrame::Hello {
            device: &start.device,
            acked: start.after,
        };
        let mut sent = start.after;
        let mut ok = matches!(send(hello.event()).await, Ok(Ok(())));
        let mut failing = None;
        while ok {
            let Some(backlog) = self.next(&start.device, sent, config.window).await else {
                if !patient(&mut failing) {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(STORE_RETRY) => continue,
                    () = live.replaced.notified() => break,
                    () = tx.closed() => break,
                }
            };
            failing = None;
            if let Some((from, to)) = backlog.lost {
                ok &= matches!(
                    send(ServerFrame::Gap { from, to }.event()).await,
                    Ok(Ok(()))
                );
                // What is gone cannot be acked by the device: it is acked here (if the
                // store fails now, the gap is told again on the device's next connect).
                let _ = store.ack(start.device.clone(), to).await;
                sent = sent.max(to);
            }
            for stored in &backlog.entries {
                match send(ServerFrame::message(stored).event()).await {
                    Ok(Ok(())) => {
                        sent = stored.offset;
                        self.counters.add(Count::Sent, 1);
                    }
                    Ok(Err(_)) => ok = false,
                    Err(_) => {
                        self.counters.add(Count::SlowClosed, 1);
                        ok = false;
                    }
                }
                if !ok {
                    break;
                }
            }
            if !ok || backlog.entries.len() == config.window {
                continue;
            }
            tokio::select! {
                () = live.wake.notified() => {}
                () = live.replaced.notified() => break,
                () = tx.closed() => break,
                () = tokio::time::sleep(millis(config.keepalive_ms)) => {
                    ok = matches!(send(": keepalive\n\n".into()).await, Ok(Ok(())));
                }
            }
        }
        self.detach(&start.device, &live);
    }

    /// A WebSocket session.
    async fn websocket(self: Arc<Self>, io: TokioIo<hyper::upgrade::Upgraded>, start: Start) {
        let config = &start.config;
        let ws_config = WebSocketConfig::default()
            // Devices send small frames (acks); a large one grows the buffer as it reads.
            .read_buffer_size(512)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_frame_bytes))
            .max_frame_size(Some(config.max_frame_bytes));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
        let live = self.attach(&start.device);
        let reason = self.ws_loop(ws, &start, &live).await;
        tracing::debug!(device = %start.device, reason, "push connection closed");
        self.detach(&start.device, &live);
    }

    /// Runs a WebSocket session until it ends; returns why.
    async fn ws_loop(
        &self,
        mut ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
        start: &Start,
        live: &Live,
    ) -> &'static str {
        let Ok(store) = self.store() else {
            return "store failed";
        };
        let config = &start.config;
        let (ack_timeout, max_redeliver) = (
            millis(config.ack_timeout_ms),
            millis(config.max_redeliver_ms),
        );
        let (send_timeout, keepalive) =
            (millis(config.send_timeout_ms), millis(config.keepalive_ms));
        let device = start.device.as_str();
        let (mut sent, mut acked) = (start.after, start.after);
        let mut resend_at: Option<Instant> = None;
        // While reads of the stream fail: since when, and when to read again.
        let (mut failing, mut retry_at) = (None, None);
        let mut backoff = ack_timeout;
        let mut heard = Instant::now();
        let mut fill = true;
        macro_rules! send {
            ($frame:expr) => {
                match timeout(send_timeout, ws.send(WsMessage::text($frame.json()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return "write failed",
                    Err(_) => {
                        self.counters.add(Count::SlowClosed, 1);
                        return "device not reading";
                    }
                }
            };
        }
        send!(ServerFrame::Hello { device, acked });
        loop {
            let room = config.window.saturating_sub((sent - acked) as usize);
            if fill && room > 0 {
                let Some(backlog) = self.next(device, sent, room).await else {
                    if !patient(&mut failing) {
                        return "store failed";
                    }
                    (fill, retry_at) = (false, Some(Instant::now() + STORE_RETRY));
                    continue;
                };
                failing = None;
                if let Some((from, to)) = backlog.lost {
                    send!(ServerFrame::Gap { from, to });
                    // What is gone cannot be acked by the device: it is acked here (if the
                    // store fails now, the gap is told again on the next read).
                    if let Ok(now) = store.ack(device.to_string(), to).await {
                        acked = acked.max(now);
                    }
                    sent = sent.max(acked);
                }
                for stored in &backlog.entries {
                    send!(ServerFrame::message(stored));
                    sent = stored.offset;
                    self.counters.add(Count::Sent, 1);
                }
                fill = backlog.entries.len() == room;
                if sent > acked && resend_at.is_none() {
                    resend_at = Some(Instant::now() + backoff);
                }
            }
            tokio::select! {
                () = live.wake.notified() => fill = true,
                () = until(retry_at) => (fill, retry_at) = (true, None),
                () = live.replaced.notified() => {
                    let close = CloseFrame { code: CloseCode::Library(4000), reason: "replaced by a newer connection".into() };
                    let _ = timeout(send_timeout, ws.close(Some(close))).await;
                    return "replaced";
                }
                () = until(resend_at) => {
                    // The ack did not come: send again from the first unacked message.
                    self.counters.add(Count::Redelivered, sent - acked);
                    sent = acked;
                    fill = true;
                    resend_at = None;
                    backoff = (backoff * 2).min(max_redeliver);
                }
                () = tokio::time::sleep(keepalive) => {
                    if heard.elapsed() > keepalive * 2 {
                        return "device silent";
                    }
                    if timeout(send_timeout, ws.send(WsMessage::Ping(Bytes::new()))).await.is_err() {
                        return "device not reading";
                    }
                }
                frame = ws.next() => {
                    heard = Instant::now();
                    let text = match frame {
                        None => return "closed by the device",
                        Some(Ok(WsMessage::Close(_))) => {
                            // Answers the close handshake (RFC 6455 §5.5.1).
                            let _ = timeout(send_timeout, ws.close(None)).await;
                            return "closed by the device";
                        }
                        Some(Err(_)) => return "protocol error",
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Binary(_))) => {
                            let close = CloseFrame { code: CloseCode::Unsupported, reason: "text frames only".into() };
                            let _ = timeout(send_timeout, ws.close(Some(close))).await;
                            return "binary frame";
                        }
                        Some(Ok(_)) => continue,
                    };
                    match serde_json::from_str::<ClientFrame>(&text) {
                        Ok(ClientFrame::Ack { offset }) => {
                            let offset = offset.min(sent);
                            if offset > acked {
                                match store.ack(device.to_string(), offset).await {
                                    Ok(now) => acked = now,
                                    // The device acks again (its next ack covers this one).
                                    Err(_) => {
                                        send!(STORE_UNAVAILABLE);
                                        continue;
                                    }
                                }
                                backoff = ack_timeout;
                                resend_at = (sent > acked).then(|| Instant::now() + backoff);
                                fill = true;
                            }
                            send!(ServerFrame::Acked { acked });
                        }
                        Ok(ClientFrame::Devices) => match store.devices(start.user.clone()).await {
                            Ok(devices) => send!(ServerFrame::Devices { devices: &devices }),
                            Err(_) => send!(STORE_UNAVAILABLE),
                        },
                        Ok(ClientFrame::Register(registration)) => {
                            match self.register(&start.user, registration).await {
                                Ok(device) => send!(ServerFrame::Registered { device: &device.id }),
                                Err(refusal) => send!(refusal.frame()),
                            }
                        }
                        Ok(ClientFrame::Unbind { device: other }) => {
                            match store.unbind(start.user.clone(), other.clone()).await {
                                Ok(true) => send!(ServerFrame::Unbound { device: &other }),
                                Ok(false) => send!(super::api::unknown_device().frame()),
                                Err(_) => send!(STORE_UNAVAILABLE),
                            }
                        }
                        Err(e) => send!(ServerFrame::Error { code: "malformed", message: &e.to_string() }),
                    }
                }
            }
        }
    }
}

impl Refusal {
    /// The refusal as an error frame on a connection.
    fn frame(&self) -> ServerFrame<'_> {
        ServerFrame::Error {
            code: self.1,
            message: &self.2,
        }
    }
}
