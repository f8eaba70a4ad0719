//! Vendor channels against a local vendor server over TLS (certificates made by the test),
//! which checks each vendor's documented format the way a validating mock would (APNs:
//! a 64-hex token, `apns-topic`, an ES256 provider token, a payload of at most 4096
//! bytes) and answers as the vendor does: success, a dead token (pruned and reported to
//! the feedback hook, never retried), 429 with `Retry-After`, a 5xx (retried with
//! back-off), an expired provider or access token (replaced once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use weir_tests::tls::SignedCertificate;
use weir_tests::{TempDir, eventually};

use super::{ALICE, Push, push_routes};

/// One request the vendor server saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
    at: Instant,
}

/// The vendor server's record and scripted state.
#[derive(Default)]
struct Vendor {
    seen: Mutex<Vec<Seen>>,
    attempts: Mutex<HashMap<String, u32>>,
    provider_tokens: Mutex<Vec<String>>,
}

impl Vendor {
    fn seen(&self, path_prefix: &str) -> Vec<Seen> {
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .filter(|s| s.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Counts an attempt for `key`; returns its number (from 1).
    fn attempt(&self, key: &str) -> u32 {
        let mut attempts = self.attempts.lock().expect("lock");
        let n = attempts.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }
}

fn json_reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
}

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/auth/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// APNs: the checks of a validating mock, then the script by token.
fn apns(vendor: &Vendor, seen: &Seen) -> Response<Full<Bytes>> {
    let token = seen.path.trim_start_matches("/3/device/");
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let refuse = |status: u16, reason: &str| json_reply(status, json!({ "reason": reason }));
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return refuse(400, "BadDeviceToken");
    }
    if header("apns-topic") != "com.example.app" {
        return refuse(400, "MissingTopic");
    }
    if !["alert", "background"].contains(&header("apns-push-type")) {
        return refuse(400, "InvalidPushType");
    }
    if seen.body.len() > 4096 {
        return refuse(413, "PayloadTooLarge");
    }
    let Some(jwt) = header("authorization").strip_prefix("bearer ") else {
        return refuse(403, "MissingProviderToken");
    };
    let key = DecodingKey::from_ec_pem(fixture("p256.pub").as_bytes()).expect("p256.pub");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let Ok(decoded) = jsonwebtoken::decode::<Value>(jwt, &key, &validation) else {
        return refuse(403, "InvalidProviderToken");
    };
    if decoded.header.kid.as_deref() != Some("KEY1234567") || decoded.claims["iss"] != "TEAM123456"
    {
        return refuse(403, "InvalidProviderToken");
    }
    // The first provider token the server ever sees has expired.
    {
        let mut tokens = vendor.provider_tokens.lock().expect("lock");
        if !tokens.iter().any(|t| t == jwt) {
            tokens.push(jwt.to_string());
        }
        if tokens[0] == jwt {
            return refuse(403, "ExpiredProviderToken");
        }
    }
    let attempt = vendor.attempt(token);
    match &token[..4] {
        "dead" => json_reply(
            410,
            json!({ "reason": "Unregistered", "timestamp": 1_700_000_000_000u64 }),
        ),
        "bbbb" if attempt == 1 => {
            let mut busy = refuse(429, "TooManyRequests");
            busy.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
            busy
        }
        "5555" if attempt == 1 => refuse(503, "ServiceUnavailable"),
        _ => Response::new(Full::new(Bytes::new())),
    }
}

/// FCM and its OAuth server, Push Kit and its OAuth server, Mi Push, the feedback hook.
fn others(vendor: &Vendor, seen: &Seen) -> Response<Full<Bytes>> {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
    let form: HashMap<String, String> = form_urlencoded::parse(&seen.body).into_owned().collect();
    let bearer = seen
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match seen.path.as_str() {
        "/token" => {
            let key = DecodingKey::from_rsa_pem(fixture("rsa1.pub").as_bytes()).expect("rsa1.pub");
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_audience(&["https://vendor.test/token"]);
            let assertion = form
                .get("assertion")
                .map(String::as_str)
                .unwrap_or_default();
            let valid =
                jsonwebtoken::decode::<Value>(assertion, &key, &validation).is_ok_and(|t| {
                    t.claims["iss"] == "sender@example.iam"
                        && t.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                });
            match (form.get("grant_type").map(String::as_str), valid) {
                (Some("urn:ietf:params:oauth:grant-type:jwt-bearer"), true) => json_reply(
                    200,
                    json!({ "access_token": "ya29.fcm", "expires_in": 3600 }),
                ),
                _ => json_reply(400, json!({ "error": "invalid_grant" })),
            }
        }
        "/v1/projects/proj/messages:send" => {
            if bearer != "Bearer ya29.fcm" {
                return json_reply(
                    401,
                    json!({ "error": { "code": 401, "status": "UNAUTHENTICATED" } }),
                );
            }
            let message = &body["message"];
            let data_ok = message["data"]
                .as_object()
                .is_some_and(|d| d.values().all(Value::is_string));
            if !data_ok || message["android"]["priority"] != "high" {
                return json_reply(
                    400,
                    json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT" } }),
                );
            }
            match message["token"].as_str() {
                Some("fcm-dead") => json_reply(
                    404,
                    json!({ "error": { "code": 404, "status": "NOT_FOUND", "details": [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED" }] } }),
                ),
                _ => json_reply(200, json!({ "name": "projects/proj/messages/1" })),
            }
        }
        "/oauth2/v3/token" => match (
            form.get("client_id").map(String::as_str),
            form.get("client_secret").map(String::as_str),
        ) {
            (Some("10086"), Some("hms-secret")) => {
                let n = vendor.attempt("hms-token");
                json_reply(
                    200,
                    json!({ "access_token": format!("hms-{n}"), "expires_in": 3600 }),
                )
            }
            _ => json_reply(400, json!({ "error": 1101 })),
        },
        "/v1/10086/messages:send" => {
            // The first access token expires before its first use.
            if bearer == "Bearer hms-1" {
                return json_reply(
                    200,
                    json!({ "code": "80200003", "msg": "OAuth token expired" }),
                );
            }
            match body["message"]["token"][0].as_str() {
                Some("hms-dead") => {
                    json_reply(200, json!({ "code": "80300007", "msg": "invalid token" }))
                }
                Some(_) if body["message"]["data"].is_string() => {
                    json_reply(200, json!({ "code": "80000000", "msg": "Success" }))
                }
                _ => json_reply(
                    200,
                    json!({ "code": "80100001", "msg": "invalid parameter" }),
                ),
            }
        }
        "/v3/message/regid" => {
            if bearer != "key=mi-secret"
                || form.get("restricted_package_name").map(String::as_str)
                    != Some("com.example.app")
            {
                return json_reply(401, json!({ "result": "error", "code": 22000 }));
            }
            match form.get("registration_id").map(String::as_str) {
                Some("mi-dead") => json_reply(
                    200,
                    json!({ "result": "error", "code": 20301, "description": "invalid regid", "data": { "badRegIds": "mi-dead" } }),
                ),
                _ => json_reply(
                    200,
                    json!({ "result": "ok", "code": 0, "data": { "id": "m1" } }),
                ),
            }
        }
        "/feedback" => json_reply(200, json!({})),
        _ => json_reply(404, json!({ "reason": "BadPath" })),
    }
}

/// A vendor server for `vendor.test` over TLS (h2 and http/1.1); returns its address and
/// the CA that signed its certificate, as PEM.
async fn vendor_server(vendor: Arc<Vendor>) -> (SocketAddr, String) {
    let signed = SignedCertificate::for_names(&["vendor.test"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(signed.certificate.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signed.key.serialize_der())),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, vendor) = (acceptor.clone(), vendor.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let vendor = vendor.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let seen = Seen {
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                            at: Instant::now(),
                        };
                        vendor.seen.lock().expect("lock").push(seen.clone());
                        let reply = match seen.path.starts_with("/3/device/") {
                            true => apns(&vendor, &seen),
                            false => others(&vendor, &seen),
                        };
                        Ok::<_, std::convert::Infallible>(reply)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, signed.ca_pem)
}

/// A TOML literal string of `text` (taken as it is, new lines and quotes included).
fn toml_string(text: &str) -> String {
    format!("'''{}'''", text.trim())
}

/// The gateway config: the push routes, the vendor server as every vendor's upstream
/// (TLS, verified against the test's CA), the channels in `vendors`, the feedback hook.
fn config(vendor: SocketAddr, ca_file: &std::path::Path, vendors: &str) -> String {
    let upstream = |name: &str, protocol: &str| {
        format!(
            "[upstreams.{name}]\ntargets = [\"{vendor}\"]\nprotocol = \"{protocol}\"\n\
             tls = {{ server_name = \"vendor.test\", ca_file = \"{}\", web_roots = false }}\n",
            ca_file.display()
        )
    };
    let account = json!({
        "client_email": "sender@example.iam",
        "private_key": fixture("rsa1.key"),
        "token_uri": "https://vendor.test/token",
    });
    format!(
        "{}{}{}{}{}{}{}[secrets]\napns-key = {{ value = {} }}\nfcm-account = {{ value = {} }}\n\
         hms-secret = {{ value = \"hms-secret\" }}\nmi-secret = {{ value = \"mi-secret\" }}\n",
        upstream("apns", "h2"),
        upstream("fcm", "http1"),
        upstream("oauth", "http1"),
        upstream("hms", "http1"),
        upstream("mi", "http1"),
        upstream("hooks", "http1"),
        push_routes(&format!(
            "vendor_retry_ms = 100\nfeedback = {{ upstream = \"hooks\", path = \"/feedback\" }}\n{vendors}"
        )),
        toml_string(&fixture("p256.key")),
        toml_string(&account.to_string()),
    )
}

/// Registers `device` of Alice on `platform` with `token`.
async fn register(push: &Push, device: &str, platform: &str, token: &str) {
    let body = json!({ "device": device, "platform": platform, "token": token });
    let reply = push.call("POST", "devices", ALICE, &body).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
}

/// Publishes a high-priority message to Alice; every device is offline with a token, so
/// the built-in policy sends each through its vendor.
async fn publish_high(push: &Push, id: &str) -> Value {
    let payload = json!({ "aps": { "alert": "hi" }, "n": 1 });
    let body =
        json!({ "id": id, "target": { "user": "alice" }, "payload": payload, "priority": "high" });
    let reply = push.call("POST", "publish", super::SERVER, &body).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    reply.json()
}

async fn wait_for(push: &Push, what: &str, expected: u64) {
    let reached = eventually(Duration::from_secs(15), || async {
        push.gw_push_stats().await[what] == expected
    })
    .await;
    assert!(
        reached,
        "{what} = {expected}: {}",
        push.gw_push_stats().await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apns_sends_prunes_dead_tokens_retries_and_replaces_an_expired_provider_token() {
    let vendor = Arc::new(Vendor::default());
    let (addr, ca) = vendor_server(vendor.clone()).await;
    let dir = TempDir::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write CA");
    let apns = "[push.vendors.apns]\nupstream = \"apns\"\nteam_id = \"TEAM123456\"\nkey_id = \"KEY1234567\"\nkey = \"apns-key\"\ntopic = \"com.example.app\"\n";
    let push = Push::start_with(&config(addr, &ca_file, apns), &[]).await;
    let tokens = [
        ("ok", "0"),
        ("dead", "dead"),
        ("busy", "bbbb"),
        ("flaky", "5555"),
    ];
    for (name, prefix) in tokens {
        register(
            &push,
            &format!("iphone-{name}"),
            "apns",
            &format!("{prefix:0<64}"),
        )
        .await;
    }
    let answer = publish_high(&push, "m1").await;
    for placed in answer["deliveries"].as_array().expect("deliveries") {
        assert_eq!(placed["delivery"], "vendor", "{answer}");
    }
    wait_for(&push, "vendor_sent", 3).await;
    wait_for(&push, "vendor_pruned", 1).await;
    // An expired provider token was replaced once, by a new one.
    assert_eq!(vendor.provider_tokens.lock().expect("lock").len(), 2);
    let seen = vendor.seen("/3/device/");
    let times = |prefix: &str| -> Vec<Instant> {
        seen.iter()
            .filter(|s| s.path.starts_with(&format!("/3/device/{prefix}")))
            .map(|s| s.at)
            .collect()
    };
    // The dead token was tried once with the good provider token, and never again.
    assert_eq!(
        times("dead").len(),
        2,
        "the expired provider token, then once"
    );
    // 429 with Retry-After: 1 waited a second; a 503 waited the back-off (100 ms).
    let busy = times("bbbb");
    assert!(
        busy[busy.len() - 1] - busy[busy.len() - 2] >= Duration::from_millis(950),
        "{busy:?}"
    );
    let flaky = times("5555");
    assert!(
        flaky[flaky.len() - 1] - flaky[flaky.len() - 2] >= Duration::from_millis(90),
        "{flaky:?}"
    );
    let first = &seen[0].headers;
    assert_eq!(first["apns-priority"], "10");
    assert_eq!(first["apns-push-type"], "alert");
    assert!(first.contains_key("apns-expiration"));
    // The feedback hook heard of the dead token, and the device lost it.
    let reported = eventually(Duration::from_secs(5), || async {
        !vendor.seen("/feedback").is_empty()
    })
    .await;
    assert!(reported);
    let hook: Value = serde_json::from_slice(&vendor.seen("/feedback")[0].body).expect("JSON");
    assert_eq!(
        (hook["device"].clone(), hook["platform"].clone()),
        (json!("iphone-dead"), json!("apns"))
    );
    assert!(
        hook["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Unregistered")),
        "{hook}"
    );
    let devices = push
        .call("GET", "devices", ALICE, &Value::Null)
        .await
        .json();
    let dead = devices["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == "iphone-dead"))
        .cloned();
    assert_eq!(dead.and_then(|d| d.get("token").cloned()), None);
    // Without its token the device is not sent to the vendor again.
    let answer = publish_high(&push, "m2").await;
    let placed = answer["deliveries"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["device"] == "iphone-dead"))
        .cloned();
    assert_eq!(placed.map(|p| p["delivery"].clone()), Some(json!("queue")));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fcm_push_kit_and_mi_push_speak_their_formats() {
    let vendor = Arc::new(Vendor::default());
    let (addr, ca) = vendor_server(vendor.clone()).await;
    let dir = TempDir::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write CA");
    let vendors = "[push.vendors.fcm]\nupstream = \"fcm\"\ntoken_upstream = \"oauth\"\nproject_id = \"proj\"\nservice_account = \"fcm-account\"\n\
                   [push.vendors.hms]\nupstream = \"hms\"\ntoken_upstream = \"oauth\"\napp_id = \"10086\"\nclient_secret = \"hms-secret\"\n\
                   [push.vendors.mi]\nupstream = \"mi\"\napp_secret = \"mi-secret\"\npackage_name = \"com.example.app\"\n";
    let push = Push::start_with(&config(addr, &ca_file, vendors), &[]).await;
    for (platform, kind) in [
        ("fcm", "ok"),
        ("fcm", "dead"),
        ("hms", "ok"),
        ("hms", "dead"),
        ("mi", "ok"),
        ("mi", "dead"),
    ] {
        register(
            &push,
            &format!("{platform}-{kind}"),
            platform,
            &format!("{platform}-{kind}"),
        )
        .await;
    }
    publish_high(&push, "m1").await;
    wait_for(&push, "vendor_sent", 3).await;
    wait_for(&push, "vendor_pruned", 3).await;
    wait_for(&push, "vendor_queued", 0).await;
    assert_eq!(push.gw_push_stats().await["vendor_failed"], 0);
    // One grant for FCM; Push Kit's first token expired and was replaced once.
    assert_eq!(vendor.seen("/token").len(), 1);
    assert_eq!(vendor.seen("/oauth2/v3/token").len(), 2);
    let reported = eventually(Duration::from_secs(5), || async {
        vendor.seen("/feedback").len() == 3
    })
    .await;
    assert!(reported, "{:?}", vendor.seen("/feedback"));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_upstream_is_verified_against_its_ca() {
    let vendor = Arc::new(Vendor::default());
    let (addr, ca) = vendor_server(vendor.clone()).await;
    let dir = TempDir::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write CA");
    let route = |tls: &str| {
        format!(
            "[upstreams.u]\ntargets = [\"{addr}\"]\ntls = {{ server_name = \"vendor.test\", {tls} }}\n\
             [[routes]]\nname = \"r\"\nupstream = \"u\"\n"
        )
    };
    let client = weir_tests::TestClient::default();
    // Trusted through the CA file: proxied over TLS.
    let trusted = format!("ca_file = \"{}\", web_roots = false", ca_file.display());
    let gw = weir_tests::TestGateway::start(&route(&trusted), &[]).await;
    assert_eq!(client.get(&gw.url("/feedback")).await.status, 200);
    assert_eq!(vendor.seen("/feedback").len(), 1);
    gw.shutdown().await;
    // The public roots alone do not trust the test's CA: the handshake fails, a 502.
    let gw = weir_tests::TestGateway::start(&route("web_roots = true"), &[]).await;
    assert_eq!(client.get(&gw.url("/feedback")).await.status, 502);
    assert_eq!(
        vendor.seen("/feedback").len(),
        1,
        "nothing reached the server"
    );
    gw.shutdown().await;
    // Nor does the right CA for another name.
    let gw =
        weir_tests::TestGateway::start(&route(&trusted).replace("vendor.test", "other.test"), &[])
            .await;
    assert_eq!(client.get(&gw.url("/feedback")).await.status, 502);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_sharing_redis_send_each_message_once() {
    let vendor = Arc::new(Vendor::default());
    let (addr, ca) = vendor_server(vendor.clone()).await;
    let dir = TempDir::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write CA");
    let redis = weir_tests::redis::RedisServer::start();
    let vendors = "[push.vendors.fcm]\nupstream = \"fcm\"\ntoken_upstream = \"oauth\"\nproject_id = \"proj\"\nservice_account = \"fcm-account\"\n";
    let config = super::fleet::shared(&redis.url(), false) + &config(addr, &ca_file, vendors);
    let a = Push::start_with(&config, &[]).await;
    let b = Push::start_with(&config, &[]).await;
    register(&a, "fcm-ok", "fcm", "fcm-ok").await;
    // Published on both; each instance's dispatcher claims what is due.
    for n in 1..=20 {
        let on = if n % 2 == 0 { &a } else { &b };
        publish_high(on, &format!("m{n}")).await;
    }
    let sends = || vendor.seen("/v1/projects/proj/messages:send").len();
    let all = eventually(Duration::from_secs(15), || async { sends() >= 20 }).await;
    assert!(all, "{} sends", sends());
    wait_for(&a, "vendor_queued", 0).await;
    let (on_a, on_b) = (
        a.gw_push_stats().await["vendor_sent"].as_u64().unwrap_or(0),
        b.gw_push_stats().await["vendor_sent"].as_u64().unwrap_or(0),
    );
    assert_eq!(on_a + on_b, 20, "{on_a} + {on_b}");
    // Nothing is sent twice, later either.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sends(), 20);
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}
