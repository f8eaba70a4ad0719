//! HttpDNS end to end: a route with `httpdns = true` answers a service's healthy targets
//! (real upstreams on distinct loopback addresses, real active health checks) in the JSON
//! form and in Tencent's text grammar — the latter parsed with the very regexes of the
//! Tencent Android SDK (`ResponseParser.java`) and read over a raw connection as its
//! hand-written HTTP client reads it; batches, unknown names, regions by the client's
//! network (behind a trusted proxy too), the fleet's addresses, and signed requests.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use regex::Regex;
use sha2::Sha256;
use weir_tests::{Mode, TestClient, TestGateway, TestUpstream, eventually, get, raw_head};

/// The Tencent Android SDK's single-answer regex.
const SINGLE: &str = r"(.*),(.*)\|(.*)";
/// Its batch-line regex.
const BATCH_LINE: &str = r"(.*)\.:(.*),(.*)\|(.*)";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// The groups of `regex` matched against the whole of `text` (Java's `Matcher.matches`).
fn groups(regex: &str, text: &str) -> Option<Vec<String>> {
    let whole = Regex::new(&format!("^(?:{regex})$")).expect("a regex");
    let captures = whole.captures(text)?;
    Some(
        (1..captures.len())
            .map(|i| captures[i].to_string())
            .collect(),
    )
}

/// An upstream on its own loopback address, health-checked every 50 ms.
fn upstream(name: &str, targets: &[&TestUpstream]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{}\"", t.addr)).collect();
    format!(
        "[upstreams.{name}]\ntargets = [{}]\n\
         health_check = {{ interval_ms = 50, timeout_ms = 500, unhealthy_threshold = 1, healthy_threshold = 1 }}\n",
        targets.join(", ")
    )
}

const ROUTE: &str = "[[routes]]\nname = \"dns\"\nhttpdns = true\nmatch.path = \"/d\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_services_healthy_targets_are_answered_in_json_and_in_the_sdk_text_grammar() {
    let a = TestUpstream::start_at("a", ip("127.0.0.2")).await;
    let b = TestUpstream::start_at("b", ip("127.0.0.3")).await;
    let config = format!(
        "{}{ROUTE}[httpdns]\nttl_s = 30\nmax_names = 3\nservices = {{ \"api.example\" = \"app\" }}\n",
        upstream("app", &[&a, &b])
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::http1();

    // JSON, by parameter and by `Accept`.
    let json = client.get(&gw.url("/d?dn=api.example&format=json")).await;
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body = json.json();
    assert_eq!(body["host"], "api.example");
    assert_eq!(body["ips"], serde_json::json!(["127.0.0.2", "127.0.0.3"]));
    assert_eq!(body["ipsv6"], serde_json::json!([]));
    assert_eq!(body["ttl"], 30);
    assert_eq!(body["client_ip"], "127.0.0.1");
    let accept = get(
        &gw.url("/d?dn=API.example."),
        &[("accept", "application/json")],
    );
    assert_eq!(client.send(accept).await.json()["ips"], body["ips"]);

    // Text, as the Android SDK asks (`ttl=1&clientip=1`, `ip` empty) and parses.
    let asked = "/d?dn=api.example&ip=&clientip=1&ttl=1&id=1&sdk=1_4.9";
    let text = client.get(&gw.url(asked)).await;
    assert_eq!(text.status, 200);
    let text = String::from_utf8(text.body.to_vec()).expect("ASCII");
    let parsed = groups(SINGLE, &text).unwrap_or_else(|| panic!("{text:?} parses"));
    assert_eq!(parsed, ["127.0.0.2;127.0.0.3", "30", "127.0.0.1"]);
    // Its non-blocking client is hand-written: `OK` in the status line, a Content-Length,
    // no chunked encoding, no blank line in the body.
    let raw = raw_head(gw.addr, &format!("GET {asked} HTTP/1.1\r\nHost: dns\r\n")).await;
    let (head, raw_body) = raw.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", text.len())),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(raw_body, text);

    // A batch: one `name.:` line per name, each with the client; an unknown name is "no
    // record" (`0`, a line the SDK drops), not an error.
    let batch = client
        .get(&gw.url("/d?dn=api.example,nope.example&ttl=1&clientip=1"))
        .await;
    assert_eq!(batch.status, 200);
    let batch = String::from_utf8(batch.body.to_vec()).expect("ASCII");
    let lines: Vec<&str> = batch.split('\n').collect();
    assert_eq!(lines.len(), 2, "{batch:?}");
    let first = groups(BATCH_LINE, lines[0]).unwrap_or_else(|| panic!("{batch:?}"));
    assert_eq!(
        first,
        ["api.example", "127.0.0.2;127.0.0.3", "30", "127.0.0.1"]
    );
    assert_eq!(lines[1], "nope.example.:0|127.0.0.1");
    assert_eq!(groups(BATCH_LINE, lines[1]), None);
    // A single unknown name: the empty body (Tencent), or empty lists (JSON).
    let unknown = client.get(&gw.url("/d?dn=nope.example&ttl=1")).await;
    assert_eq!((unknown.status.as_u16(), unknown.body.len()), (200, 0));
    let unknown = client.get(&gw.url("/d?dn=nope.example&format=json")).await;
    assert_eq!(unknown.json()["ips"], serde_json::json!([]));
    // More names than `max_names`, and no name at all, are the client's errors.
    let many = client.get(&gw.url("/d?dn=a,b,c,d")).await;
    assert_eq!(many.status, 400);
    assert_eq!(many.header("x-weir-error"), Some("too_many_names"));
    assert_eq!(client.get(&gw.url("/d?type=a")).await.status, 400);

    // A target that fails its health checks is no longer answered; back when it recovers.
    a.set_mode(Mode::Failing);
    let answered = |expected: &'static str| {
        let (client, url) = (client.clone(), gw.url("/d?dn=api.example"));
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).await.body == expected }
        }
    };
    assert!(eventually(Duration::from_secs(5), answered("127.0.0.3")).await);
    b.set_mode(Mode::Failing);
    assert!(
        eventually(Duration::from_secs(5), answered("")).await,
        "no healthy target: no record"
    );
    a.set_mode(Mode::Healthy);
    assert!(eventually(Duration::from_secs(5), answered("127.0.0.2")).await);
    assert_eq!(a.hits() + b.hits(), 0, "HttpDNS sends no request upstream");

    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    for answer in ["records", "empty", "unknown"] {
        let line = format!("weir_httpdns_answers_total{{answer=\"{answer}\"}} ");
        let n: u64 = (metrics.lines())
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line} in /metrics"));
        assert!(n > 0, "{line}{n}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_network_chooses_its_regions_targets() {
    // The near region's target is a real, health-checked server; the others are addresses
    // only (no health check: each is available).
    let near = TestUpstream::start_at("near", ip("127.0.0.4")).await;
    let config = format!(
        "{}[upstreams.far]\ntargets = [\"127.0.0.5:80\", \"[2001:db8::5]:80\"]\n\
         [upstreams.other]\ntargets = [\"127.0.0.6:80\"]\n\
         {ROUTE}[httpdns]\n\
         trusted_proxies = [\"127.0.0.1\"]\n\
         fleet = [\"192.0.2.10:443\", \"192.0.2.11\"]\n\
         [httpdns.regions]\n\"127.0.0.0/8\" = \"local\"\n\"198.51.100.0/24\" = \"far\"\n\
         [httpdns.services]\n\
         \"app.example\" = {{ upstream = \"other\", regions = {{ local = \"near\", far = \"far\" }} }}\n\
         \"gw.example\" = {{ fleet = true }}\n",
        upstream("near", &[&near])
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::http1();
    let ask = |query: &str, forwarded: Option<&str>| {
        let headers: Vec<(&str, &str)> = forwarded
            .map(|f| ("x-forwarded-for", f))
            .into_iter()
            .collect();
        client.send(get(&gw.url(&format!("/d?{query}&clientip=1")), &headers))
    };
    // The test client is 127.0.0.1: region "local".
    let local = ask("dn=app.example", None).await;
    assert_eq!(String::from_utf8_lossy(&local.body), "127.0.0.4|127.0.0.1");
    // Behind the trusted proxy (the test client), the forwarded client's region.
    let far = ask("dn=app.example&type=addrs&ttl=1", Some("198.51.100.7")).await;
    let far = String::from_utf8_lossy(&far.body).into_owned();
    assert_eq!(far, "127.0.0.5,60-2001:db8::5,60|198.51.100.7");
    // A network no region names: the service's default upstream.
    let other = ask("dn=app.example", Some("203.0.113.1")).await;
    assert_eq!(
        String::from_utf8_lossy(&other.body),
        "127.0.0.6|203.0.113.1"
    );
    // `ip` (Tencent's and Aliyun's parameter) answers for another address.
    let by_param = ask("dn=app.example&ip=198.51.100.9&type=aaaa", None).await;
    assert_eq!(
        String::from_utf8_lossy(&by_param.body),
        "2001:db8::5|198.51.100.9"
    );
    // A region whose upstream has no healthy target gets the service's default.
    near.set_mode(Mode::Failing);
    let fell_back = eventually(Duration::from_secs(5), || async {
        ask("dn=app.example", None).await.body == "127.0.0.6|127.0.0.1"
    });
    assert!(
        fell_back.await,
        "the default upstream answers for the failing region"
    );
    // The fleet's own addresses, ports dropped.
    let fleet = ask("dn=gw.example", None).await;
    assert_eq!(
        String::from_utf8_lossy(&fleet.body),
        "192.0.2.10;192.0.2.11|127.0.0.1"
    );
    gw.shutdown().await;
}

/// `hex(HMAC-SHA256(key, dn + ":" + t))`, computed here independently of the gateway.
fn sign(key: &str, dn: &str, t: u64) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(format!("{dn}:{t}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolver_that_requires_signatures_answers_only_valid_unexpired_ones() {
    let config = format!(
        "[upstreams.app]\ntargets = [\"127.0.0.7:80\"]\n\
         [secrets.dns-key]\nvalue = \"s3cret\"\n[secrets.old-key]\nvalue = \"other\"\n\
         {ROUTE}[httpdns]\nrequire_signature = true\nmax_expiry_s = 3600\n\
         keys = {{ app = \"dns-key\", old = \"old-key\" }}\n\
         services = {{ \"api.example\" = \"app\" }}\n"
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::http1();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let dn = "api.example,nope.example";
    let (t, s) = (now + 300, sign("s3cret", dn, now + 300));
    let valid = client
        .get(&gw.url(&format!("/d?dn={dn}&kid=app&t={t}&s={s}")))
        .await;
    assert_eq!(valid.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&valid.body),
        "api.example.:127.0.0.7\nnope.example.:0"
    );

    let refusals = [
        // Missing.
        (gw.url("/d?dn=api.example"), "signature_required"),
        // Signed with another key, or over other names.
        (
            gw.url(&format!(
                "/d?dn=api.example&kid=app&t={}&s={}",
                now + 300,
                sign("other", "api.example", now + 300)
            )),
            "invalid_signature",
        ),
        (
            gw.url(&format!(
                "/d?dn=api.example&kid=app&t={}&s={}",
                now + 300,
                sign("s3cret", dn, now + 300)
            )),
            "invalid_signature",
        ),
        // An unknown key id; an expiry past `max_expiry_s`.
        (
            gw.url(&format!(
                "/d?dn=api.example&kid=new&t={}&s={}",
                now + 300,
                sign("s3cret", "api.example", now + 300)
            )),
            "invalid_signature",
        ),
        (
            gw.url(&format!(
                "/d?dn=api.example&kid=app&t={}&s={}",
                now + 7200,
                sign("s3cret", "api.example", now + 7200)
            )),
            "invalid_signature",
        ),
        // Expired.
        (
            gw.url(&format!(
                "/d?dn=api.example&kid=app&t={}&s={}",
                now - 10,
                sign("s3cret", "api.example", now - 10)
            )),
            "signature_expired",
        ),
    ];
    for (url, code) in &refusals {
        let refused = client.get(url).await;
        assert_eq!(refused.status, 403, "{url}");
        assert_eq!(refused.header("x-weir-error"), Some(*code), "{url}");
        assert_eq!(refused.json()["error"], *code, "{url}");
    }
    // The other key signs too.
    let t = now + 60;
    let old = gw.url(&format!(
        "/d?dn=api.example&kid=old&t={t}&s={}",
        sign("other", "api.example", t)
    ));
    assert_eq!(client.get(&old).await.body, "127.0.0.7");

    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    for line in [
        "weir_httpdns_refused_total{reason=\"required\"} 1",
        "weir_httpdns_refused_total{reason=\"invalid\"} 4",
        "weir_httpdns_refused_total{reason=\"expired\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics");
    }
    gw.shutdown().await;
}
