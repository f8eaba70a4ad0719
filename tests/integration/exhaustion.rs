//! One client cannot take the gateway down: idle and slow sockets are closed on time,
//! connections are capped in all and per address, bodies are timed and their buffering is
//! budgeted, and a client's broken uploads are never counted against the upstream.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_tests::plugins::TESTER;
use weir_tests::{
    TestClient, TestGateway, TestUpstream, eventually, one_route, raw_head, raw_status,
};

/// One route to `up`, with `filters` (TOML) on it.
fn route(up: &TestUpstream, filters: &str) -> String {
    format!(
        "[upstreams.u]\ntargets = [\"{}\"]\npassive = {{ consecutive_failures = 3, ejection_ms = 60000 }}\n\
         [[routes]]\nname = \"r\"\nupstream = \"u\"\n{filters}",
        up.addr
    )
}

/// A gateway with one filterless route to `up` and these `[server.limits]` lines.
async fn limited(up: &TestUpstream, limits: &str) -> TestGateway {
    let limits = format!("[server.limits]\n{limits}");
    TestGateway::start_with_server(&limits, &route(up, ""), &[]).await
}

/// Waits until the gateway closes `stream` (EOF or reset), up to `within`; returns how long
/// it took. Anything the gateway sends first (a 408, say) is skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout_at((started + within).into(), stream.read(&mut buf))
            .await
            .expect("the gateway closes the connection in time");
        if matches!(read, Ok(0) | Err(_)) {
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_slow_sockets_are_closed_while_others_are_served() {
    let up = TestUpstream::start("up").await;
    let gw = limited(
        &up,
        "first_byte_timeout_ms = 300\nheader_read_timeout_ms = 300\nidle_timeout_ms = 300\n",
    )
    .await;
    // Sockets that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // A started HTTP/2 preface, and a request head that never ends.
    let mut preface = TcpStream::connect(gw.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut slow_head = TcpStream::connect(gw.addr).await.unwrap();
    slow_head
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    // Others are served meanwhile.
    let r = TestClient::default().get(&gw.url("/")).await;
    assert_eq!(r.status, 200);
    for stream in silent.iter_mut().chain([&mut preface, &mut slow_head]) {
        let took = closed_within(stream, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // A keep-alive connection with nothing in flight is closed after the idle timeout.
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed before the idle timeout: {took:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_capped_per_address_and_in_all() {
    let up = TestUpstream::start("up").await;
    let gw = limited(&up, "max_connections_per_ip = 4\nmax_connections = 6\n").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        // A first request, so that the connection is surely admitted and open.
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    // The fifth from this address is closed at once.
    let mut fifth = TcpStream::connect(gw.addr).await.unwrap();
    let _ = fifth.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let took = closed_within(&mut fifth, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1));
    // Another address (127.0.0.2 is loopback too) still gets in, up to the total cap.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(gw.addr).await.unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert_eq!(raw_status(&answer), 200, "{answer}");
    // Places are given back when connections close.
    held.clear();
    let mut served = false;
    for _ in 0..50 {
        if raw_status(&raw_head(gw.addr, "GET / HTTP/1.1\r\nHost: a\r\n").await) == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "a new connection is admitted after the others closed"
    );
    gw.shutdown().await;
}

/// A POST whose body stops after `sent` of `declared` bytes; the stream stays open.
async fn stalled_post(gw: &TestGateway, declared: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; sent]).await.unwrap();
    stream
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_is_a_408_and_not_the_upstreams_fault() {
    let up = TestUpstream::start("up").await;
    let limits = "[server.limits]\nbody_idle_timeout_ms = 300\n";
    // Streamed to the upstream, and buffered for a filter.
    let buffered =
        "[[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = { uppercase_body = true }\n";
    for filters in ["", buffered] {
        let gw = TestGateway::start_with_server(
            limits,
            &route(&up, filters),
            &[("tester.wasm", TESTER)],
        )
        .await;
        for _ in 0..5 {
            let mut stream = stalled_post(&gw, 100, 10).await;
            let answer = read_answer(&mut stream).await;
            assert_eq!(raw_status(&answer), 408, "{filters}: {answer}");
        }
        // Five stalls against an ejection threshold of three: the target is still in.
        let r = TestClient::default().get(&gw.url("/")).await;
        assert_eq!(r.status, 200, "{filters}: {:?}", r.body);
        gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aborted_uploads_leave_targets_healthy_and_circuits_closed() {
    let up = TestUpstream::start("up").await;
    let config = format!(
        "{}[[routes.filters]]\nplugin = \"degradation.wasm\"\ngrants = [\"upstreams\", \"clock\", \"kv\"]\n\
         config.breaker = {{ window_ms = 60000, min_calls = 2, failure_rate = 0.5, open_ms = 60000 }}\n",
        route(&up, "")
    );
    let gw = TestGateway::start(
        &config,
        &[("degradation.wasm", weir_tests::plugins::DEGRADATION)],
    )
    .await;
    for _ in 0..20 {
        let stream = stalled_post(&gw, 100_000, 1000).await;
        drop(stream);
    }
    // Each abort reaches the upstream call as a broken body; none may count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let r = TestClient::default().get(&gw.url("/")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(
            r.header("x-weir-degraded").is_none(),
            "the circuit opened on client aborts"
        );
    }
    let upstreams = TestClient::default()
        .get(&gw.admin_url("/upstreams"))
        .await
        .json();
    assert!(
        !upstreams.to_string().contains("ejected\":true"),
        "{upstreams}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn buffered_bodies_share_one_budget() {
    let up = TestUpstream::start("up").await;
    let buffered =
        "[[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = { uppercase_body = true }\n";
    let gw = TestGateway::start_with_server(
        "[server.limits]\nmax_buffered_bytes = 4096\n",
        &route(&up, buffered),
        &[("tester.wasm", TESTER)],
    )
    .await;
    // One request holds most of the budget while it stalls...
    let mut holder = stalled_post(&gw, 8000, 3000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ... so the next one that needs more than the rest is refused with a 503.
    let post = |body: usize| weir_tests::request("POST", &gw.url("/"), &[], vec![b'a'; body]);
    let r = TestClient::default().send(post(2000)).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    // A small one fits.
    let r = TestClient::default().send(post(500)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "A".repeat(500));
    // The holder's share comes back when it is done.
    holder.shutdown().await.unwrap();
    drop(holder);
    let mut fits = false;
    for _ in 0..50 {
        if TestClient::default().send(post(2000)).await.status == 200 {
            fits = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fits);
    gw.shutdown().await;
}

/// An upstream that reads each connection's request and answers it with `answer`.
async fn scripted_upstream<F, Fut>(answer: F) -> std::net::SocketAddr
where
    F: Fn(TcpStream) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                answer(stream).await;
            });
        }
    });
    upstream
}

/// A new connection to the gateway with one `GET /` sent on it.
async fn get_on_a_new_connection(gw: &TestGateway) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_body_is_cut_off() {
    let upstream = scripted_upstream(|mut stream| async move {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
        let _ = stream.write_all(head).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let gw = TestGateway::start_with_server(
        "[server.limits]\nupstream_body_idle_timeout_ms = 300\n",
        &one_route(upstream, ""),
        &[],
    )
    .await;
    let mut client = get_on_a_new_connection(&gw).await;
    let took = closed_within(&mut client, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    gw.shutdown().await;
}

/// Sends a POST of `chunks` bytes, one every `every`, and returns the answer's status.
async fn trickled_post(gw: &TestGateway, chunks: usize, every: Duration) -> u16 {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {chunks}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        tokio::time::sleep(every).await;
        if stream.write_all(b"x").await.is_err() {
            break;
        }
    }
    raw_status(&read_answer(&mut stream).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_timed_apart_from_the_upstream() {
    let up = TestUpstream::start("up").await;
    // The route gives the upstream 300 ms; the upload takes about 600 ms.
    let config = route(&up, "").replace("name = \"r\"\n", "name = \"r\"\ntimeout_ms = 300\n");
    let gw = TestGateway::start_with_server(
        "[server.limits]\nbody_total_timeout_ms = 2000\n",
        &config,
        &[],
    )
    .await;
    assert_eq!(
        trickled_post(&gw, 6, Duration::from_millis(100)).await,
        200,
        "a slow upload is not a slow upstream"
    );
    gw.shutdown().await;
    // But an upload longer than the total body timeout is a 408, however lively.
    let gw = limited(&up, "body_total_timeout_ms = 400\n").await;
    let started = Instant::now();
    assert_eq!(
        trickled_post(&gw, 20, Duration::from_millis(100)).await,
        408
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed() {
    let up = TestUpstream::start("up").await;
    let gw = limited(&up, "idle_timeout_ms = 300\n").await;
    let mut h2 = TcpStream::connect(gw.addr).await.unwrap();
    // The preface and an empty SETTINGS frame (RFC 9113 §3.4), then nothing.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = closed_within(&mut h2, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    gw.shutdown().await;
}

/// The number of open connections the gateway counts as parked.
async fn parked(gw: &TestGateway, client: &TestClient) -> u64 {
    connection_metric(gw, client, "weir_connections_parked").await
}

/// The value of the connection metric `name` (a gauge or a counter).
async fn connection_metric(gw: &TestGateway, client: &TestClient, name: &str) -> u64 {
    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Reads from `stream` until `count` answers have begun (each `HTTP/1.1 200` status line).
async fn read_answers(stream: &mut TcpStream, count: usize) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen)
        .matches("HTTP/1.1 200")
        .count()
        < count
    {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answers in time")
            .expect("the connection stays open");
        assert!(n > 0, "closed after {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
}

/// A connection that made one request and was then parked (the only one parked).
async fn parked_connection(gw: &TestGateway, client: &TestClient) -> TcpStream {
    let mut stream = get_on_a_new_connection(gw).await;
    read_answers(&mut stream, 1).await;
    let parks = eventually(Duration::from_secs(6), || async {
        parked(gw, client).await == 1
    });
    assert!(parks.await, "the idle connection is parked");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_parked_and_serves_its_next_requests() {
    let up = TestUpstream::start("up").await;
    let gw = limited(&up, "idle_release_ms = 100\nidle_timeout_ms = 1500\n").await;
    let client = TestClient::default();
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    // No request for `idle_release_ms`: hyper lets go of the connection, which waits
    // holding only its socket.
    let mut kept = parked_connection(&gw, &client).await;
    // Its next requests, two at once, are served on the same socket.
    kept.write_all(&[&request[..], &request[..]].concat())
        .await
        .unwrap();
    read_answers(&mut kept, 2).await;
    // Parked again, it still ends at the idle timeout, counted from its last request.
    let took = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(parked(&gw, &client).await, 0);
    // A gateway that stops does not wait on a parked connection.
    let mut last = parked_connection(&gw, &client).await;
    let started = Instant::now();
    gw.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    closed_within(&mut last, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_connection_that_sends_again_is_served_not_parked_again_at_once() {
    let up = TestUpstream::start("up").await;
    // Parked after 2 s without a request: the counts below are read well within that.
    let gw = limited(&up, "idle_release_ms = 2000\nidle_timeout_ms = 30000\n").await;
    let client = TestClient::default();
    let mut kept = parked_connection(&gw, &client).await;
    // Each time the client sends again, the connection leaves its parking once and the
    // request is served: a connection released again before it has read anything would
    // be parked again with the request still unread, over and over.
    for round in 1..=3 {
        kept.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        read_answers(&mut kept, 1).await;
        let parks = connection_metric(&gw, &client, "weir_connections_parks_total").await;
        assert_eq!(
            parks, round,
            "parks after {round} requests on a parked connection"
        );
        let parks_again = eventually(Duration::from_secs(5), || async {
            parked(&gw, &client).await == 1
        });
        assert!(parks_again.await, "parked again after its idle release");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_still_being_sent_is_never_parked_or_cut() {
    // An upstream that trickles a chunked body: ten chunks, one every 150 ms.
    let upstream = scripted_upstream(|mut stream| async move {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = stream.write_all(head).await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = stream.write_all(b"1\r\nx\r\n").await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    // Parking after 100 ms without a request, and a short grace: a connection shut down
    // under the response would lose it within 300 ms.
    let gw = TestGateway::start_with_server(
        "shutdown_grace_ms = 200\n[server.limits]\nidle_release_ms = 100\n",
        &one_route(upstream, ""),
        &[],
    )
    .await;
    let mut client = get_on_a_new_connection(&gw).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the body arrives in time")
            .unwrap_or(0);
        assert!(n > 0, "cut off: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&answer);
    assert_eq!(body.matches("\r\nx\r\n").count(), 10, "{body}");
    gw.shutdown().await;
}
