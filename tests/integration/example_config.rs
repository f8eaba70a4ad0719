//! The example config (`weir.toml`) as the README runs it: the real `weir` binary with the
//! bundled plugins and the built-in demo upstream, on free ports, answering the README's
//! requests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weir_tests::{TempDir, TestClient, eventually, free_port, get};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// A `weir run` of the example config, killed when dropped.
struct Example {
    child: Child,
    port: u16,
    tcp: u16,
    tls: u16,
    admin: u16,
    _dir: TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts the example config with its fixed ports and paths replaced by free ports and
    /// absolute paths; waits until it serves.
    async fn start() -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("weir.toml")).expect("weir.toml");
        let (port, demo, admin, offline) = (free_port(), free_port(), free_port(), free_port());
        let (tcp, tls) = (free_port(), free_port());
        let root = root.canonicalize().expect("the repository root");
        let text = text
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{demo}"))
            .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
            .replace("127.0.0.1:8099", &format!("127.0.0.1:{offline}"))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{tcp}"))
            .replace("127.0.0.1:8443", &format!("127.0.0.1:{tls}"))
            .replace(
                "\"target/plugins\"",
                &format!("{:?}", root.join("target/plugins")),
            )
            .replace("examples/", &format!("{}/examples/", root.display()));
        assert!(
            text.contains(&format!("127.0.0.1:{port}")),
            "the example config listens on 127.0.0.1:8080"
        );
        let dir = TempDir::new();
        let config = dir.path().join("weir.toml");
        std::fs::write(&config, text).expect("write the config");
        let child = Command::new(WEIR)
            .arg("run")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weir");
        let example = Self {
            child,
            port,
            tcp,
            tls,
            admin,
            _dir: dir,
        };
        let client = TestClient::default();
        let url = example.url("/hello");
        assert!(
            eventually(Duration::from_secs(30), || async {
                client
                    .try_send(get(&url, &[]))
                    .await
                    .is_ok_and(|r| r.status == 200)
            })
            .await,
            "the example config serves /hello"
        );
        example
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_requests_get_their_answers() {
    let example = Example::start().await;
    let client = TestClient::default();

    // headers
    let r = client
        .send(get(&example.url("/echo/hi"), &[("cookie", "session=1")]))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("weir"));
    assert_eq!(r.json()["headers"]["x-gateway"], "weir");
    assert!(r.json()["headers"].get("cookie").is_none());

    // ip-restriction: the test client is on loopback, which /internal allows.
    assert_eq!(
        client.get(&example.url("/internal/status")).await.status,
        200
    );

    // request-validation: a good order passes; a bad one names each field and rule.
    let order = |path: &str, version: &str, body: &'static str| {
        let headers = [
            ("x-api-version", version),
            ("content-type", "application/json"),
        ];
        weir_tests::request("POST", &example.url(path), &headers, body)
    };
    let good = order("/orders/7", "2", r#"{"items":[{"sku":"ABC-1","qty":2}]}"#);
    assert_eq!(client.send(good).await.status, 200);
    let bad = order(
        "/orders/0?dry_run=maybe",
        "v2",
        r#"{"items":[{"sku":"abc","qty":0}]}"#,
    );
    let refused = client.send(bad).await;
    assert_eq!(refused.status, 400);
    let fields: Vec<String> = (refused.json()["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default())
    .iter()
    .map(|e| e["field"].as_str().unwrap_or_default().to_string())
    .collect();
    for field in [
        "path.id",
        "query.dry_run",
        "header.x-api-version",
        "/items/0/qty",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }

    // bot-rules: no User-Agent is refused; a browser's headers pass.
    let bot = client.get(&example.url("/site/hello")).await;
    assert_eq!(bot.header("x-weir-error"), Some("bot_denied"));
    let browser = [
        ("user-agent", "Mozilla/5.0"),
        ("accept", "*/*"),
        ("accept-language", "en"),
        ("accept-encoding", "gzip"),
    ];
    let person = client
        .send(get(&example.url("/site/hello"), &browser))
        .await;
    assert_eq!(person.status, 200);

    // cache: a MISS, then a HIT of the same answer; a purge by prefix empties it.
    let first = client.get(&example.url("/cached/report")).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let hit = client.get(&example.url("/cached/report")).await;
    assert_eq!(
        (hit.header("x-cache"), &hit.body),
        (Some("HIT"), &first.body)
    );
    let site = example.url("/cached/").replace("http://", "");
    let purge = format!(r#"{{"prefix": "{site}"}}"#);
    let purged = client
        .send(weir_tests::post_json(
            &example.admin_url("/cache/purge"),
            &purge,
        ))
        .await;
    assert_eq!(purged.json()["purged"], 1);
    let again = client.get(&example.url("/cached/report")).await;
    assert_eq!(again.header("x-cache"), Some("MISS"));

    // gray-release: a user stays on one side; the override header forces the canary.
    let side = |r: &weir_tests::Reply| r.header("x-weir-gray").map(str::to_string);
    let user = get(&example.url("/gray"), &[("cookie", "uid=42")]);
    let first = side(&client.send(user).await);
    for _ in 0..3 {
        let user = get(&example.url("/gray"), &[("cookie", "uid=42")]);
        assert_eq!(side(&client.send(user).await), first);
    }
    let forced = get(&example.url("/gray"), &[("x-gray", "canary")]);
    assert_eq!(side(&client.send(forced).await).as_deref(), Some("canary"));
    let split = client.get(&example.admin_url("/routes/gray/split")).await;
    assert_eq!(split.status, 200);

    // buffer: a write is 202 with a ticket, which soon says delivered with the demo's answer.
    let key = [("x-api-key", "demo-key")];
    let queued = weir_tests::request(
        "POST",
        &example.url("/queued/orders"),
        &key,
        "{\"order\": 1}",
    );
    let accepted = client.send(queued).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let ticket = accepted.json()["ticket"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let status_url = example.url(&format!("/queued/tickets/{ticket}"));
    assert_eq!(
        accepted.header("location"),
        Some(format!("/queued/tickets/{ticket}").as_str())
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let status = client.send(get(&status_url, &key)).await.json();
            status["status"] == "delivered" && status["response"]["status"] == 200
        })
        .await,
        "the buffered write was delivered"
    );
    let buffers = client.get(&example.admin_url("/buffers")).await.json();
    assert_eq!(buffers["routes"]["queued"]["delivered"], 1, "{buffers}");

    // httpdns: the demo's healthy address, in the SDKs' text grammar and in JSON.
    let text = client
        .get(&example.url("/d?dn=demo.weir&ttl=1&clientip=1"))
        .await;
    assert_eq!(
        String::from_utf8_lossy(&text.body),
        "127.0.0.1,60|127.0.0.1"
    );
    let json = client
        .get(&example.url("/d?dn=demo.weir&format=json"))
        .await
        .json();
    assert_eq!(json["ips"][0], "127.0.0.1");

    // API versions: v1 is deprecated, v2 is not.
    let v1 = client.get(&example.url("/api/v1/users")).await;
    assert_eq!(v1.header("deprecation"), Some("@1793491200"));
    assert!(v1.header("sunset").is_some() && v1.header("link").is_some());
    let v2 = client.get(&example.url("/api/v2/users")).await;
    assert!(v2.header("deprecation").is_none());

    // HTTPS with the demo certificate, checked by curl against the demo CA, over HTTP/2.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = example.tls;
    let curl = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "--max-time", "10", "--http2", "--cacert"])
            .arg(root.join("examples/tls/ca.pem"))
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .args(["-w", "\n%{http_version}"])
            .arg(format!("https://localhost:{port}/echo/hi"))
            .output()
            .expect("curl runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&curl.stdout);
    assert!(text.ends_with("\n2"), "{text}");
    assert!(text.contains("\"x-forwarded-proto\":\"https\""), "{text}");

    // L4: the TCP listener reaches the demo server byte for byte.
    let through = format!("http://127.0.0.1:{}/hello", example.tcp);
    assert_eq!(client.get(&through).await.status, 200);

    // auth
    let r = client
        .send(get(
            &example.url("/auth/hello"),
            &[("x-api-key", "demo-key")],
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(client.get(&example.url("/auth/hello")).await.status, 401);

    // rate-limit: 5 per 10 s
    let statuses: Vec<u16> = statuses(&client, &example.url("/limited"), 7).await;
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);

    // degradation: three fallbacks for the upstream errors, then the circuit is open.
    let mut marks = Vec::new();
    for _ in 0..4 {
        let r = client.get(&example.url("/degraded/items")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["degraded"], true);
        marks.push(r.header("x-weir-degraded").unwrap_or_default().to_string());
    }
    assert_eq!(
        marks,
        [
            "upstream-error",
            "upstream-error",
            "upstream-error",
            "circuit-open"
        ]
    );
    let circuits = client.get(&example.admin_url("/circuits")).await.json();
    let offline = circuits["circuits"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "offline"))
        .cloned()
        .expect("the offline upstream's circuit");
    assert_eq!(offline["circuit"]["state"], "open");

    // protocol-convert: JSON-RPC, SOAP, gRPC (through the descriptor set in examples/grpc).
    let r = client.get(&example.url("/users/1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({ "id": 1, "name": "Ada Lovelace" })
    );
    let r = client.get(&example.url("/users/9")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["rpc_error"]["code"], -32001);
    let r = client
        .send(weir_tests::post_json(
            &example.url("/soap"),
            r#"{"name": "Ada"}"#,
        ))
        .await;
    assert_eq!(r.status, 200);
    let received = r.json()["received"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        received.contains("<soap:Body><Echo xmlns=\"urn:weir:demo\"><name>Ada</name></Echo>"),
        "{received}"
    );
    let r = client.get(&example.url("/greet/Ada")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({ "message": "Hello, Ada!" }));
    let r = client
        .send(weir_tests::post_json(
            &example.url("/weir.demo.Greeter/SayHello"),
            r#"{"name": ""}"#,
        ))
        .await;
    assert_eq!(r.status, 400, "INVALID_ARGUMENT");
    assert_eq!(r.json()["grpc_status"], "INVALID_ARGUMENT");

    // push: register, publish, and the device's event stream has it.
    let key = [
        ("x-api-key", "demo-key"),
        ("content-type", "application/json"),
    ];
    let call = |method: &str, path: &str, body: serde_json::Value| {
        weir_tests::request(method, &example.url(path), &key, body.to_string())
    };
    let device = serde_json::json!({ "device": "phone", "platform": "ws" });
    assert_eq!(
        client
            .send(call("POST", "/push/devices", device))
            .await
            .status,
        201
    );
    let message = serde_json::json!({ "id": "hello-1", "target": { "user": "demo-app" }, "payload": { "text": "hi" } });
    let r = client.send(call("POST", "/push/publish", message)).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["deliveries"][0]["delivery"], "queue");
    let mut stream = super::push::sse_at(
        &example.url("/push/connect?device=phone&apikey=demo-key"),
        None,
    )
    .await;
    assert_eq!(stream.event().await.0, "hello");
    let (event, id, data) = stream.event().await;
    assert_eq!((event.as_str(), id), ("message", Some(1)));
    assert_eq!(data["payload"]["text"], "hi");
}

#[test]
fn the_committed_descriptor_set_describes_the_example_proto() {
    use prost::Message;
    let decode = |path: &str| {
        let bytes = std::fs::read(path).expect("a descriptor set");
        let mut set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decodes");
        for file in &mut set.file {
            file.source_code_info = None;
        }
        set
    };
    let committed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grpc/greeter.binpb"
    );
    assert_eq!(
        decode(committed),
        decode(env!("EXAMPLE_DESCRIPTOR_SET")),
        "examples/grpc/greeter.binpb is stale: regenerate it (see greeter.proto)"
    );
}

/// The statuses of `n` GETs of `url`, one after the other.
async fn statuses(client: &TestClient, url: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(client.get(url).await.status.as_u16());
    }
    statuses
}
