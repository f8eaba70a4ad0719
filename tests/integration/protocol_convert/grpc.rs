//! `mode = "grpc"` against a real gRPC server (tonic, h2c) generated from
//! `tests/fixtures/grpc/directory.proto`: every shape the proto3 JSON mapping treats
//! specially (nested and repeated messages, enums, int64, Timestamp, bool), the canonical
//! path and HTTP rules, and the error paths: statuses from the handlers (trailers-only) and
//! in trailers after a message, an unimplemented method, replies that cannot be read, and
//! requests refused before any call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prost_types::Timestamp;
use serde_json::json;
use tonic::{Request, Response, Status};
use weir_tests::{TestClient, post_json, request};

use super::{gateway, route, try_gateway, upstream};

mod proto {
    tonic::include_proto!("weir.directory.v1");
}

use proto::directory_server::{Directory, DirectoryServer};
use proto::{
    Address, CreateUserRequest, GetUserRequest, ListUsersRequest, ListUsersResponse, Role, User,
};

/// The descriptor set of the test protos, written by the build script.
const DESCRIPTOR_SET: &str = env!("GRPC_DESCRIPTOR_SET");

/// The directory service: counts calls and keeps the last `CreateUser` request.
#[derive(Clone, Default)]
struct Service {
    calls: Arc<AtomicUsize>,
    created: Arc<Mutex<Option<User>>>,
}

fn ada() -> User {
    User {
        id: 7,
        display_name: "Ada".into(),
        role: Role::Admin.into(),
        address: Some(Address {
            city: "London".into(),
            country_code: "GB".into(),
        }),
        tags: vec!["math".into(), "engines".into()],
        created_at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        }),
        active: true,
    }
}

#[tonic::async_trait]
impl Directory for Service {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let GetUserRequest { id, full } = request.into_inner();
        match id {
            7 if full => Ok(Response::new(ada())),
            7 => Ok(Response::new(User {
                id: 7,
                display_name: "Ada".into(),
                ..User::default()
            })),
            id if id <= 0 => Err(Status::invalid_argument("id must be positive")),
            id => Err(Status::not_found(format!("no user {id} — gone"))),
        }
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let user = request
            .into_inner()
            .user
            .ok_or_else(|| Status::invalid_argument("no user"))?;
        *self.created.lock().unwrap() = Some(user.clone());
        Ok(Response::new(user))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let ListUsersRequest { role, page_size } = request.into_inner();
        let users: Vec<User> = (1..=3)
            .map(|id| User {
                id,
                role,
                display_name: format!("user {id}"),
                ..User::default()
            })
            .take(usize::try_from(page_size).unwrap_or_default())
            .collect();
        Ok(Response::new(ListUsersResponse {
            users,
            total: 3_000_000_000_000,
        }))
    }
}

/// The gRPC server on a free port, stopped when dropped.
struct GrpcServer {
    addr: std::net::SocketAddr,
    service: Service,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let service = Service::default();
        let server = tonic::transport::Server::builder()
            .add_service(DirectoryServer::new(service.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Self {
            addr,
            service,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.service.calls.load(Ordering::SeqCst)
    }
}

const SERVICE: &str = "weir.directory.v1.Directory";

/// The filter's config for the test service, with `extra` keys.
fn config(extra: &str) -> String {
    format!(
        "{{ mode = \"grpc\", descriptor = \"{DESCRIPTOR_SET}\", service = \"{SERVICE}\"{extra} }}"
    )
}

/// The grant that lets the filter read the descriptor set.
fn grant() -> String {
    let dir = std::path::Path::new(DESCRIPTOR_SET)
        .parent()
        .expect("a directory");
    format!("\"files:{}\"", dir.display())
}

const RULES: &str = r#", rules = [
    { http = "GET /v1/users/{id}", method = "GetUser" },
    { http = "GET /v1/users", method = "ListUsers" },
    { http = "DELETE /v1/users/{id}", method = "DeleteUser" } ]"#;

/// Routes `/weir.directory.v1.Directory/` (canonical paths), `/v1/` (the rules) and `/v2/`
/// (a rule, with default values and proto field names in replies).
async fn setup() -> (GrpcServer, weir_tests::TestGateway) {
    let server = GrpcServer::start().await;
    let rules = RULES.replace('\n', " ");
    let routes = [
        route(
            "canonical",
            &format!("/{SERVICE}/"),
            "grpc",
            &config(""),
            &grant(),
        ),
        route("rest", "/v1/", "grpc", &config(&rules), &grant()),
        route(
            "raw",
            "/v2/",
            "grpc",
            &config(
                ", emit_defaults = true, proto_field_names = true, rules = [{ http = \"GET /v2/users/{id}\", method = \"GetUser\" }]",
            ),
            &grant(),
        ),
    ];
    let gw = gateway(
        &[upstream("grpc", server.addr, "protocol = \"h2c\"")],
        &routes,
    )
    .await;
    (server, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_post_becomes_a_unary_call_by_the_proto3_json_mapping() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let user = json!({
        "id": "9007199254740993",
        "displayName": "Grace",
        "role": "ROLE_MEMBER",
        "address": {"city": "Arlington", "countryCode": "US"},
        "tags": ["navy", "cobol"],
        "createdAt": "2024-02-29T12:30:00.250Z",
        "active": true
    });
    let url = gw.url(&format!("/{SERVICE}/CreateUser"));
    let r = client
        .send(post_json(&url, &json!({"user": user}).to_string()))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        user,
        "the reply, mapped back: int64 as a string, enum names, RFC 3339"
    );
    let created = server
        .service
        .created
        .lock()
        .unwrap()
        .clone()
        .expect("a call");
    assert_eq!(created.id, 9_007_199_254_740_993, "no precision lost");
    assert_eq!(created.role(), Role::Member);
    assert_eq!(
        created.created_at,
        Some(Timestamp {
            seconds: 1_709_209_800,
            nanos: 250_000_000
        })
    );
    assert_eq!(created.address.map(|a| a.country_code), Some("US".into()));

    // Proto field names are accepted too; default values are left out of the reply.
    let r = client
        .send(post_json(
            &url,
            r#"{"user": {"display_name": "Lin", "role": 0, "active": false}}"#,
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"displayName": "Lin"}));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_rules_bind_path_and_query_to_fields() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/v1/users/7?full=true")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "id": "7", "displayName": "Ada", "role": "ROLE_ADMIN",
            "address": {"city": "London", "countryCode": "GB"},
            "tags": ["math", "engines"], "createdAt": "2023-11-14T22:13:20.500Z", "active": true
        })
    );
    let r = client.get(&gw.url("/v1/users/7")).await;
    assert_eq!(r.json(), json!({"id": "7", "displayName": "Ada"}));

    let r = client
        .get(&gw.url("/v1/users?role=ROLE_MEMBER&pageSize=2"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "users": [
                {"id": "1", "displayName": "user 1", "role": "ROLE_MEMBER"},
                {"id": "2", "displayName": "user 2", "role": "ROLE_MEMBER"}
            ],
            "total": "3000000000000"
        })
    );
    let r = client.get(&gw.url("/v2/users/7")).await;
    assert_eq!(
        r.json(),
        json!({
            "id": "7", "display_name": "Ada", "role": "ROLE_UNSPECIFIED", "tags": [],
            "active": false
        }),
        "emit_defaults (unset message fields stay absent) and proto_field_names"
    );
    assert_eq!(server.calls(), 4);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_statuses_map_to_http_statuses() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let cases = [
        (
            "GET",
            "/v1/users/404",
            404,
            "not_found",
            5,
            "no user 404 — gone",
        ),
        (
            "GET",
            "/v1/users/0",
            400,
            "invalid_argument",
            3,
            "id must be positive",
        ),
        // Declared in the proto, not implemented by the server.
        ("DELETE", "/v1/users/7", 501, "unimplemented", 12, ""),
    ];
    for (method, path, status, code, grpc_code, message) in cases {
        let r = client.send(request(method, &gw.url(path), &[], "")).await;
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        let body = r.json();
        assert_eq!(body["error"], code, "{path}");
        assert_eq!(r.header("x-weir-error"), Some(code), "{path}");
        assert_eq!(body["grpc_code"], grpc_code, "{path}");
        assert_eq!(body["grpc_status"], code.to_ascii_uppercase(), "{path}");
        if !message.is_empty() {
            assert_eq!(
                body["message"], message,
                "{path}: grpc-message, percent-decoded"
            );
        }
        assert!(body["request_id"].is_string());
    }
    assert_eq!(
        server.calls(),
        2,
        "the unimplemented method never reached a handler"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_without_calling_the_upstream() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let create = gw.url(&format!("/{SERVICE}/CreateUser"));
    let cases = [
        (post_json(&create, "{\"user\": "), 400, "invalid_message"),
        (
            post_json(&create, r#"{"user": {"nickname": "x"}}"#),
            400,
            "invalid_message",
        ),
        (
            post_json(&create, r#"{"user": {"role": "ROLE_BOSS"}}"#),
            400,
            "invalid_message",
        ),
        (
            post_json(&create, r#"{"user": {"id": "seven"}}"#),
            400,
            "invalid_message",
        ),
        (
            post_json(&create, r#"{"user": {"createdAt": "yesterday"}}"#),
            400,
            "invalid_message",
        ),
        (post_json(&create, "[]"), 400, "invalid_message"),
        (
            weir_tests::get(&gw.url("/v1/users/7?full=maybe"), &[]),
            400,
            "invalid_message",
        ),
        (
            weir_tests::get(&gw.url("/v1/users/x"), &[]),
            400,
            "invalid_message",
        ),
        (
            post_json(&gw.url(&format!("/{SERVICE}/Nope")), "{}"),
            404,
            "unknown_grpc_method",
        ),
        (weir_tests::get(&create, &[]), 405, "method_not_allowed"),
        (
            weir_tests::get(&gw.url("/v1/orders"), &[]),
            404,
            "no_grpc_mapping",
        ),
    ];
    for (req, status, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = client.send(req).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.body);
        assert_eq!(r.json()["error"], code, "{what}");
    }
    assert_eq!(server.calls(), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_client_passes_unchanged() {
    use prost::Message;
    let (server, gw) = setup().await;
    let message = GetUserRequest { id: 7, full: true }.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let r = TestClient::h2c()
            .send(request(
                "POST",
                &gw.url(&format!("/{SERVICE}/GetUser")),
                &[("content-type", content_type), ("te", "trailers")],
                framed.clone(),
            ))
            .await;
        assert_eq!(r.status, 200, "{content_type}: {:?}", r.body);
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/grpc")),
            "{content_type}: {:?}",
            r.header("content-type")
        );
        let reply = r.body.get(5..).expect("a framed reply");
        assert_eq!(
            User::decode(reply).map(|u| u.display_name),
            Ok("Ada".to_string()),
            "{content_type}"
        );
    }
    assert_eq!(server.calls(), 2);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_that_cannot_work_are_refused() {
    let server = GrpcServer::start().await;
    let upstreams = [upstream("grpc", server.addr, "protocol = \"h2c\"")];
    let grpc = |config: &str, grants: &str| vec![route("g", "/", "grpc", config, grants)];
    let refused = [
        // No files grant: the descriptor set cannot be read.
        grpc(&config(""), ""),
        grpc(
            &format!(
                "{{ mode = \"grpc\", descriptor = \"{DESCRIPTOR_SET}\", service = \"weir.directory.v1.Nope\" }}"
            ),
            &grant(),
        ),
        grpc(
            &config(", rules = [{ http = \"GET /x\", method = \"Nope\" }]"),
            &grant(),
        ),
        grpc(
            &config(", rules = [{ http = \"/x\", method = \"GetUser\" }]"),
            &grant(),
        ),
        grpc(&config(", colour = \"blue\""), &grant()),
        grpc(r#"{ mode = "soap" }"#, ""),
        grpc(
            r#"{ mode = "json-rpc", mappings = [{ http = "GET /a", method = "a" }], error_status = { "-1" = 200 } }"#,
            "",
        ),
        grpc(r#"{ mode = "xml", root = "not a name" }"#, ""),
        grpc(
            r#"{ mode = "xml", root = "r", direction = "xml-to-json", soap_action = "a" }"#,
            "",
        ),
    ];
    for routes in refused {
        let result = try_gateway(&upstreams, &routes).await;
        assert!(result.is_err(), "accepted: {}", routes.concat());
    }
    let gw = try_gateway(&upstreams, &grpc(&config(""), &grant())).await;
    gw.expect("the same config with a grant and a known service starts")
        .shutdown()
        .await;
}

/// An h2c server that answers every call with a `User` reply as the request's `x-kind`
/// header asks: `trailers` (a message, then NOT_FOUND in the trailers), `compressed` (a
/// message flagged as compressed, status OK), `no-status` (no `grpc-status` at all),
/// `proto` (`application/grpc+proto`, OK), `json` (`application/grpc+json`, OK), `text`
/// (`text/plain`, OK), `two` (two messages, OK), `none` (no message, OK), `signed` (a
/// `grpc-status` of `+0`, which is not `1*DIGIT`).
async fn raw_grpc_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use http_body_util::BodyExt;
    use prost::Message;
    weir_tests::serve(|request: http::Request<hyper::body::Incoming>| async move {
        let kind = request
            .headers()
            .get("x-kind")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let message = User {
            id: 1,
            ..User::default()
        }
        .encode_to_vec();
        let flag = u8::from(kind == "compressed");
        let mut framed = vec![flag];
        framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&message);
        match kind.as_str() {
            "two" => framed = framed.repeat(2),
            "none" => framed.clear(),
            _ => {}
        }
        let mut trailers = http::HeaderMap::new();
        match kind.as_str() {
            "trailers" => {
                trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("gone%20away"),
                );
            }
            "no-status" => {}
            "signed" => {
                trailers.insert("grpc-status", http::HeaderValue::from_static("+0"));
            }
            _ => {
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            }
        }
        let content_type = match kind.as_str() {
            "proto" => "application/grpc+proto",
            "json" => "application/grpc+json",
            "text" => "text/plain",
            _ => "application/grpc",
        };
        let body = http_body_util::Full::new(bytes::Bytes::from(framed))
            .with_trailers(async move { Some(Ok(trailers)) });
        http::Response::builder()
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_is_read_from_the_trailers_and_bad_replies_are_a_bad_gateway() {
    let (addr, server) = raw_grpc_server().await;
    let routes = [route(
        "g",
        "/v1/",
        "grpc",
        &config(&RULES.replace('\n', " ")),
        &grant(),
    )];
    let gw = gateway(&[upstream("grpc", addr, "protocol = \"h2c\"")], &routes).await;
    let client = TestClient::default();
    // The client's headers reach the server: `x-kind` says how to answer.
    let r = client
        .send(weir_tests::get(
            &gw.url("/v1/users/7"),
            &[("x-kind", "proto")],
        ))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (200, json!({"id": "1"})),
        "application/grpc+proto is gRPC's protobuf: {:?}",
        r.body
    );
    // A unary reply is exactly one uncompressed message, in protobuf (`application/grpc`
    // or `application/grpc+proto`), with a status.
    let cases = [
        ("trailers", 404, "not_found", "gone away"),
        ("compressed", 502, "bad_grpc_response", ""),
        ("no-status", 502, "bad_grpc_response", ""),
        ("json", 502, "bad_grpc_response", ""),
        ("text", 502, "bad_grpc_response", ""),
        ("two", 502, "bad_grpc_response", ""),
        ("none", 502, "bad_grpc_response", ""),
        ("signed", 502, "bad_grpc_response", ""),
    ];
    for (kind, status, code, message) in cases {
        let r = client
            .send(weir_tests::get(&gw.url("/v1/users/7"), &[("x-kind", kind)]))
            .await;
        assert_eq!(r.status, status, "{kind}: {:?}", r.body);
        assert_eq!(r.json()["error"], code, "{kind}");
        if !message.is_empty() {
            assert_eq!(r.json()["message"], message, "{kind}");
        }
    }
    server.abort();
    gw.shutdown().await;
}
