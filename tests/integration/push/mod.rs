//! Push end to end: devices register through the gateway's devices endpoint, connect over
//! WebSocket (a third-party client) or SSE, business servers publish through the publish
//! endpoint, each behind the real `auth` filter; messages are stored before the `202` and
//! delivered in order with offsets, acked, resent and never lost.

mod bad_input;
mod delivery;
mod durability;
mod fleet;
mod js_client;
mod routing;
mod vendors;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use weir_tests::plugins::AUTH;
use weir_tests::{Reply, TestClient, TestGateway, request};

/// The API keys of the tests' users and of the business server.
const ALICE: &str = "k-alice";
const BOB: &str = "k-bob";
const SERVER: &str = "k-server";

/// How long a frame may take to come.
const WAIT: Duration = Duration::from_secs(5);

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The three push routes, each behind `auth` with the tests' keys, and `push_extra` in
/// `[push]`.
pub(crate) fn push_routes(push_extra: &str) -> String {
    push_routes_with(push_extra, "")
}

/// Like [`push_routes`], with `publish_extra` at the end of the publish route.
pub(crate) fn push_routes_with(push_extra: &str, publish_extra: &str) -> String {
    let keys = [("alice", ALICE), ("bob", BOB), ("server", SERVER)]
        .iter()
        .map(|(consumer, key)| {
            format!(
                "{{ consumer = \"{consumer}\", sha256 = \"{}\" }}",
                sha256_hex(key)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let route = |name: &str, endpoint: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npush = \"{endpoint}\"\nmatch.path_prefix = \"/push/{name}\"\n\
             [[routes.filters]]\nplugin = \"auth.wasm\"\nconfig.api_key = {{ query = \"apikey\", keys = [{keys}] }}\n"
        )
    };
    format!(
        "[push]\n{push_extra}\n{}{}{}{publish_extra}",
        route("connect", "connect"),
        route("devices", "devices"),
        route("publish", "publish")
    )
}

/// A gateway in this process with the push routes.
pub(crate) struct Push {
    pub gw: TestGateway,
    client: PushClient,
}

impl Push {
    pub async fn start(push_extra: &str) -> Self {
        Self::start_with(&push_routes(push_extra), &[]).await
    }

    /// A gateway with `config` and `plugins` besides `auth.wasm`.
    pub async fn start_with(config: &str, plugins: &[(&str, &str)]) -> Self {
        let mut all = vec![("auth.wasm", AUTH)];
        all.extend_from_slice(plugins);
        let gw = TestGateway::start(config, &all).await;
        let client = PushClient::new(gw.addr);
        Self { gw, client }
    }
}

impl std::ops::Deref for Push {
    type Target = PushClient;

    fn deref(&self) -> &PushClient {
        &self.client
    }
}

/// Devices and a business server, talking to the push routes at `addr`.
pub(crate) struct PushClient {
    addr: std::net::SocketAddr,
    client: TestClient,
}

impl PushClient {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            client: TestClient::default(),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `method` on `/push/<path>` with the API key `key` and a JSON body.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: &Value) -> Reply {
        (self.try_call(method, path, key, body).await)
            .expect("request failed at the transport level")
    }

    /// [`PushClient::call`], a transport error returned.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: &Value,
    ) -> anyhow::Result<Reply> {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let url = self.url(&format!("/push/{path}"));
        let headers = [("x-api-key", key), ("content-type", "application/json")];
        self.client
            .try_send(request(method, &url, &headers, body))
            .await
    }

    /// Registers `device` (platform `ws`) for the user of `key`.
    pub async fn register(&self, key: &str, device: &str) {
        let reply = self
            .call(
                "POST",
                "devices",
                key,
                &json!({ "device": device, "platform": "ws" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }

    /// Publishes `payload` as message `id` to `target` (`{"user": "alice"}`, say).
    pub async fn publish(&self, id: &str, target: Value, payload: Value) -> Reply {
        let body = json!({ "id": id, "target": target, "payload": payload });
        self.call("POST", "publish", SERVER, &body).await
    }

    /// A WebSocket connection of `device` with the key `key`.
    pub async fn ws(&self, key: &str, device: &str, last_offset: Option<u64>) -> Ws {
        let resume = last_offset
            .map(|o| format!("&last_offset={o}"))
            .unwrap_or_default();
        let url = format!("ws://{}/push/connect?device={device}{resume}", self.addr);
        let mut request = url.into_client_request().expect("url");
        request
            .headers_mut()
            .insert("x-api-key", key.parse().expect("key"));
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let (ws, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("the WebSocket handshake succeeds");
        assert_eq!(response.status(), 101);
        let mut ws = Ws(ws);
        let hello = ws.frame().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        ws
    }

    /// An SSE stream of `device`, resuming after `last_event_id`.
    pub async fn sse(&self, key: &str, device: &str, last_event_id: Option<u64>) -> Sse {
        let url = self.url(&format!("/push/connect?device={device}&apikey={key}"));
        sse_at(&url, last_event_id).await
    }
}

/// The SSE stream at `url` (a connect endpoint with its query), resuming after
/// `last_event_id`.
pub(crate) async fn sse_at(url: &str, last_event_id: Option<u64>) -> Sse {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut builder = http::Request::get(url).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        builder = builder.header("last-event-id", id.to_string());
    }
    let response = client
        .request(builder.body(Empty::new()).expect("request"))
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Sse {
        body: response.into_body(),
        buffer: BytesMut::new(),
    }
}

/// A device's WebSocket.
pub(crate) struct Ws(WebSocketStream<TcpStream>);

impl Ws {
    /// The next JSON frame (pings skipped).
    pub async fn frame(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(WAIT, self.0.next()).await;
            match next.expect("a frame within the wait") {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("a JSON frame");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next `message` frame's (offset, id).
    pub async fn message(&mut self) -> (u64, String) {
        let frame = self.frame().await;
        assert_eq!(frame["type"], "message", "{frame}");
        let offset = frame["offset"].as_u64().expect("offset");
        (offset, frame["id"].as_str().expect("id").to_string())
    }

    /// Acks everything up to `offset` and reads the answer.
    pub async fn ack(&mut self, offset: u64) {
        let ack = json!({ "type": "ack", "offset": offset }).to_string();
        self.0.send(Message::text(ack)).await.expect("send");
        let answer = self.frame().await;
        assert_eq!(answer, json!({ "type": "acked", "acked": offset }));
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.0
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// True if no frame but pings comes within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return false,
            }
        }
    }

    /// The code of the close frame that comes within the wait (other frames skipped);
    /// `None` if the connection ends without one, or nothing comes.
    pub async fn close_code(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.0.close(None).await;
    }
}

/// A device's event stream.
pub(crate) struct Sse {
    body: hyper::body::Incoming,
    buffer: BytesMut,
}

impl Sse {
    /// The next event that is not a comment: (event, id, data as JSON).
    pub async fn event(&mut self) -> (String, Option<u64>, Value) {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let raw = self.buffer.split_to(end + 2);
                let text = String::from_utf8_lossy(&raw).to_string();
                let (mut event, mut id, mut data) = (String::new(), None, Value::Null);
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).expect("JSON data");
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return (event, id, data);
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event within the wait")
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }
}
