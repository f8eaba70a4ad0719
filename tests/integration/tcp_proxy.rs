//! L4 proxying end to end: `[[tcp]]` listeners in front of real TCP echo servers. Bytes
//! round-trip (a half-close passes through), connections spread over the targets by the
//! upstream's policy, a dead target is skipped (a failed connect ejects it; a TCP health
//! check takes it out before anyone connects), an idle connection is closed, the cap
//! refuses the extra connection, the PROXY v2 header tells the target who the client is,
//! a target that never accepts fails the connect timeout, a reload moves new connections
//! to the new targets, and shutdown gives open connections the grace period.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_tests::{TestClient, TestGateway, base_config, eventually, free_port, write_atomic};

/// The signature that opens a PROXY protocol v2 header (proxy-protocol.txt §2.2).
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A real TCP echo server: it copies what it reads back until the client's end of stream,
/// then closes its side. It counts its connections and, when told to, first reads a
/// PROXY v2 header and keeps it.
struct Echo {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    async fn start(proxy_header: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (connections.clone(), headers.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let kept = kept.clone();
                tokio::spawn(async move {
                    if proxy_header {
                        let mut head = vec![0u8; 16];
                        if stream.read_exact(&mut head).await.is_err() {
                            return;
                        }
                        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
                        head.resize(16 + len, 0);
                        if stream.read_exact(&mut head[16..]).await.is_err() {
                            return;
                        }
                        kept.lock().expect("headers").push(head);
                    }
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        Self {
            addr,
            connections,
            headers,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `[[tcp]]` entry on a free port; `extra` adds keys.
fn listener(name: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[tcp]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{extra}"
    )
}

/// Sends `data`, shuts the sending side (a half-close), and reads until the proxy closes
/// its side; bounded by 10 s.
async fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the proxy");
        let (mut read, mut write) = stream.split();
        let send = async {
            write.write_all(data).await.expect("send");
            write.shutdown().await.expect("half-close");
        };
        let mut back = Vec::new();
        let receive = read.read_to_end(&mut back);
        let ((), received) = tokio::join!(send, receive);
        received.expect("read the echo");
        back
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the exchange ends")
}

/// Connects, sends `ping`, and reads it back: the connection is through to a target.
async fn open_echoing(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    stream.write_all(b"ping").await.expect("send");
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("the echo comes")
        .expect("read the echo");
    assert_eq!(&back, b"ping");
    stream
}

/// Waits (up to 10 s) for the proxy to close `stream`: a read that returns the end of
/// stream or an error. Returns how long that took.
async fn closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), end)
        .await
        .expect("the proxy closes the connection");
    started.elapsed()
}

/// The value of the sample `series` (name and labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_round_trip_and_connections_spread_over_the_targets() {
    let (a, b) = (Echo::start(false).await, Echo::start(false).await);
    let config = format!(
        "[upstreams.echo]\ntargets = [\"{}\", \"{}\"]\n{}",
        a.addr,
        b.addr,
        listener("echo", "echo", "")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let addr = gw.tcp_addr("echo");
    // Larger than every buffer on the way, so that it takes many reads and writes.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(round_trip(addr, &big).await, big);
    for i in 0..3 {
        let small = format!("hello {i}");
        assert_eq!(round_trip(addr, small.as_bytes()).await, small.as_bytes());
    }
    assert_eq!((a.connections(), b.connections()), (2, 2), "round robin");
    let client = TestClient::http1();
    let moved = (big.len() + 3 * "hello 0".len()) as u64;
    let counted = eventually(Duration::from_secs(5), || async {
        let text = gw.metrics(&client).await;
        sample(&text, "weir_tcp_connections_open{listener=\"echo\"}") == Some(0)
            && sample(&text, "weir_tcp_connections_total{listener=\"echo\"}") == Some(4)
            && sample(&text, "weir_tcp_received_bytes_total{listener=\"echo\"}") == Some(moved)
            && sample(&text, "weir_tcp_sent_bytes_total{listener=\"echo\"}") == Some(moved)
    })
    .await;
    assert!(counted, "{}", gw.metrics(&client).await);
    // Closed first, so that the admin listener has no keep-alive connection to drain.
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_target_is_skipped_after_a_failed_connect_or_a_health_check() {
    // Two live targets: the checked upstream's health checks connect to its own.
    let (live, checked_live) = (Echo::start(false).await, Echo::start(false).await);
    // A port nothing listens on: connecting is refused.
    let dead = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[upstreams.passive]\ntargets = [\"{live}\", \"{dead}\"]\n\
         passive = {{ consecutive_failures = 1, ejection_ms = 60000 }}\n\
         [upstreams.checked]\ntargets = [\"{checked_live}\", \"{dead}\"]\n\
         passive = {{ consecutive_failures = 0 }}\n\
         health_check = {{ kind = \"tcp\", interval_ms = 50, timeout_ms = 500, unhealthy_threshold = 1 }}\n\
         {}{}",
        listener("passive", "passive", ""),
        listener("checked", "checked", ""),
        live = live.addr,
        checked_live = checked_live.addr,
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::http1();
    // Passive: the connection the policy sends to the dead target fails over to the live
    // one, and the dead target is ejected: every client is served.
    for i in 0..4 {
        let data = format!("passive {i}");
        assert_eq!(
            round_trip(gw.tcp_addr("passive"), data.as_bytes()).await,
            data.as_bytes()
        );
    }
    assert_eq!(live.connections(), 4);
    let text = gw.metrics(&client).await;
    let failures = "weir_tcp_connect_failures_total{listener=\"passive\",reason=\"connect\"}";
    assert_eq!(
        sample(&text, failures),
        Some(1),
        "one failed connect, then ejected"
    );
    // Active: the TCP health check takes the dead target out before anyone connects.
    let down = format!("weir_upstream_target_healthy{{upstream=\"checked\",target=\"{dead}\"}}");
    let checked = eventually(Duration::from_secs(5), || async {
        sample(&gw.metrics(&client).await, &down) == Some(0)
    })
    .await;
    assert!(checked, "{}", gw.metrics(&client).await);
    let up = format!(
        "weir_upstream_target_healthy{{upstream=\"checked\",target=\"{}\"}}",
        checked_live.addr
    );
    assert_eq!(sample(&gw.metrics(&client).await, &up), Some(1));
    for i in 0..4 {
        let data = format!("checked {i}");
        assert_eq!(
            round_trip(gw.tcp_addr("checked"), data.as_bytes()).await,
            data.as_bytes()
        );
    }
    let text = gw.metrics(&client).await;
    let failures = "weir_tcp_connect_failures_total{listener=\"checked\",reason=\"connect\"}";
    assert_eq!(sample(&text, failures), Some(0), "never tried: {text}");
    // Closed first, so that the admin listener has no keep-alive connection to drain.
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_and_traffic_keeps_it_open() {
    let echo = Echo::start(false).await;
    let config = format!(
        "[upstreams.echo]\ntargets = [\"{}\"]\n{}",
        echo.addr,
        listener("echo", "echo", "idle_timeout_ms = 500\n")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let mut stream = open_echoing(gw.tcp_addr("echo")).await;
    // Traffic for twice the idle timeout keeps the connection open.
    let started = Instant::now();
    let mut buf = [0u8; 1];
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(b"x").await.expect("still open");
        stream.read_exact(&mut buf).await.expect("still echoing");
    }
    assert!(started.elapsed() >= Duration::from_millis(1000));
    // Then silence: closed after the idle timeout, not before.
    let after = closed(&mut stream).await;
    assert!(
        after >= Duration::from_millis(450),
        "closed after {after:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_refuses_the_extra_connection_and_frees_its_place() {
    let echo = Echo::start(false).await;
    let config = format!(
        "[upstreams.echo]\ntargets = [\"{}\"]\n{}",
        echo.addr,
        listener("capped", "echo", "max_connections = 2\n")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let addr = gw.tcp_addr("capped");
    let first = open_echoing(addr).await;
    let second = open_echoing(addr).await;
    // The third is accepted and closed at once; the target never sees it.
    let mut third = TcpStream::connect(addr)
        .await
        .expect("accepted by the kernel");
    let _ = third.write_all(b"ping").await;
    closed(&mut third).await;
    assert_eq!(echo.connections(), 2);
    let client = TestClient::http1();
    let text = gw.metrics(&client).await;
    assert_eq!(
        sample(
            &text,
            "weir_tcp_connections_refused_total{listener=\"capped\"}"
        ),
        Some(1),
        "{text}"
    );
    assert_eq!(
        sample(&text, "weir_tcp_connections_open{listener=\"capped\"}"),
        Some(2)
    );
    // A closed connection gives its place back.
    drop(first);
    let freed = eventually(Duration::from_secs(5), || async {
        sample(
            &gw.metrics(&client).await,
            "weir_tcp_connections_open{listener=\"capped\"}",
        ) == Some(1)
    })
    .await;
    assert!(freed);
    let third = open_echoing(addr).await;
    assert_eq!(echo.connections(), 3);
    drop((second, third));
    // Closed first, so that the admin listener has no keep-alive connection to drain.
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_protocol_v2_header_tells_the_target_who_the_client_is() {
    let echo = Echo::start(true).await;
    let config = format!(
        "[upstreams.echo]\ntargets = [\"{}\"]\n{}",
        echo.addr,
        listener("pp", "echo", "proxy_protocol = \"v2\"\n")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let addr = gw.tcp_addr("pp");
    let stream = open_echoing(addr).await;
    let client = stream.local_addr().expect("client address");
    let headers = echo.headers.lock().expect("headers").clone();
    assert_eq!(headers.len(), 1);
    let header = &headers[0];
    assert_eq!(header[..12], SIGNATURE);
    // Version 2, PROXY; AF_INET over STREAM; 12 bytes of addresses and ports.
    assert_eq!(header[12..16], [0x21, 0x11, 0x00, 0x0C]);
    assert_eq!(header[16..20], [127, 0, 0, 1], "the client's address");
    assert_eq!(
        header[20..24],
        [127, 0, 0, 1],
        "the address the client reached"
    );
    assert_eq!(
        header[24..26],
        client.port().to_be_bytes(),
        "the client's port"
    );
    assert_eq!(
        header[26..28],
        addr.port().to_be_bytes(),
        "the listener's port"
    );
    assert_eq!(header.len(), 28);
    drop(stream);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_never_accepts_fails_the_connect_timeout() {
    // A listener that never accepts, its accept queue filled: the kernel drops further
    // handshakes, so a connect to it hangs until the connecter gives up.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let black_hole = socket.listen(0).expect("listen");
    let target = black_hole.local_addr().expect("addr");
    let mut fillers = Vec::new();
    let mut hangs = false;
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(target)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("connect to the filled listener: {e}"),
            Err(_) => {
                hangs = true;
                break;
            }
        }
    }
    assert!(hangs, "the accept queue never filled");
    let config = format!(
        "[upstreams.hole]\ntargets = [\"{target}\"]\n{}",
        listener("hole", "hole", "connect_timeout_ms = 300\n")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let mut stream = TcpStream::connect(gw.tcp_addr("hole"))
        .await
        .expect("connect");
    let after = closed(&mut stream).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
    let client = TestClient::http1();
    let text = gw.metrics(&client).await;
    let timeouts = "weir_tcp_connect_failures_total{listener=\"hole\",reason=\"timeout\"}";
    assert_eq!(sample(&text, timeouts), Some(1), "{text}");
    // Closed first, so that the admin listener has no keep-alive connection to drain.
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_moves_new_connections_to_the_upstreams_new_targets() {
    let (old, new) = (Echo::start(false).await, Echo::start(false).await);
    let config = |target: SocketAddr| {
        format!(
            "[upstreams.echo]\ntargets = [\"{target}\"]\n{}",
            listener("echo", "echo", "")
        )
    };
    let gw = TestGateway::start(&config(old.addr), &[]).await;
    let addr = gw.tcp_addr("echo");
    // A connection open across the reload stays with its target.
    let mut before = open_echoing(addr).await;
    write_atomic(
        &gw.config_path,
        format!("{}{}", base_config(), config(new.addr)).as_bytes(),
    );
    let client = TestClient::http1();
    assert_eq!(gw.reload(&client).await.status, 200);
    assert_eq!(round_trip(addr, b"after").await, b"after");
    assert_eq!((old.connections(), new.connections()), (1, 1));
    before.write_all(b"still").await.expect("still open");
    let mut back = [0u8; 5];
    before.read_exact(&mut back).await.expect("still echoing");
    assert_eq!(&back, b"still");
    drop(before);
    // Closed first, so that the admin listener has no keep-alive connection to drain.
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_gives_open_connections_the_grace_period_then_closes_them() {
    let echo = Echo::start(false).await;
    let config = format!(
        "[upstreams.echo]\ntargets = [\"{}\"]\n{}",
        echo.addr,
        listener("echo", "echo", "")
    );
    let gw = TestGateway::start_with_server("shutdown_grace_ms = 400\n", &config, &[]).await;
    let addr = gw.tcp_addr("echo");
    let mut stream = open_echoing(addr).await;
    let started = Instant::now();
    let stopping = tokio::spawn(gw.shutdown());
    // Within the grace period the connection still carries bytes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream
        .write_all(b"grace")
        .await
        .expect("open in the grace period");
    let mut back = [0u8; 5];
    stream
        .read_exact(&mut back)
        .await
        .expect("echoing in the grace period");
    assert_eq!(&back, b"grace");
    // New connections are no longer accepted.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    closed(&mut stream).await;
    assert!(started.elapsed() >= Duration::from_millis(350));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends")
        .expect("shutdown task");
}
