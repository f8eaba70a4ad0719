//! The `weir` binary as a process: SIGTERM drains in-flight requests and exits 0; a bad
//! config is refused at startup with the file and the reason.

use std::process::{Command, Stdio};
use std::time::Duration;

use weir_tests::{TempDir, TestClient, TestUpstream, base_config, eventually, free_port};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let up = TestUpstream::start("slow").await;
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let port = free_port();
    let config = base_config().replace("127.0.0.1:0\"]", &format!("127.0.0.1:{port}\"]"))
        + &format!(
            "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
            up.addr
        );
    let config_path = dir.path().join("weir.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(WEIR)
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weir");
    let url = format!("http://127.0.0.1:{port}/");
    let client = TestClient::default();
    assert!(
        eventually(Duration::from_secs(20), || async {
            client.try_send(weir_tests::get(&url, &[])).await.is_ok()
        })
        .await
    );
    up.set_delay(Duration::from_millis(800));
    let served_before = up.hits();

    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { TestClient::default().get(&url).await.status })
        })
        .collect();
    // All four are in flight (the upstream holds each for 800 ms) before the signal.
    assert!(
        eventually(Duration::from_secs(10), || async {
            up.hits() == served_before + 4
        })
        .await
    );
    let pid = child.id().to_string();
    // The shell's `kill` builtin: no dependency on a separate kill binary.
    let signalled = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &pid])
        .status();
    assert!(signalled.is_ok_and(|s| s.success()));
    for request in in_flight {
        assert_eq!(
            request.await.unwrap(),
            200,
            "an in-flight request was dropped on SIGTERM"
        );
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "weir exited with {status}");
}

#[test]
fn bad_config_is_refused_at_startup_naming_the_file() {
    let dir = TempDir::new();
    let config_path = dir.path().join("broken.toml");
    std::fs::write(&config_path, "[server]\nlisten = [\"127.0.0.1:0\"]\nplugins_dir = \".\"\n[[routes]]\nname = \"r\"\nupstream = \"nope\"\n").unwrap();
    let output = Command::new(WEIR)
        .args(["check"])
        .arg(&config_path)
        .output()
        .expect("run weir");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("unknown upstream \"nope\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_backs_off_logs_once_and_recovers() {
    let up = TestUpstream::start("up").await;
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let port = free_port();
    let config = base_config()
        .replace("127.0.0.1:0\"]", &format!("127.0.0.1:{port}\"]"))
        .replace(
            "[runtime]",
            "workers = 1\n[server.limits]\nfirst_byte_timeout_ms = 3000\n[runtime]",
        )
        + &format!(
            "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
            up.addr
        );
    let config_path = dir.path().join("weir.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = dir.path().join("weir.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // A hard limit of 128 descriptors: the gateway cannot raise it, and runs out.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$1\"", WEIR])
        .arg(&config_path)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("start weir");
    let url = format!("http://127.0.0.1:{port}/");
    let client = TestClient::default();
    assert!(
        eventually(Duration::from_secs(20), || async {
            client.try_send(weir_tests::get(&url, &[])).await.is_ok()
        })
        .await
    );
    // Silent sockets, more than the gateway has descriptors for, held for about a second.
    let mut silent = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            silent.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(silent);
    // Once the first-byte timeout frees descriptors, new clients are served again.
    assert!(
        eventually(Duration::from_secs(15), || async {
            TestClient::default()
                .try_send(weir_tests::get(&url, &[]))
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await,
        "the gateway serves again after running out of descriptors"
    );
    let _ = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let failures = text.matches("accept failed").count();
    assert!(
        failures >= 1,
        "the gateway did run out of descriptors:\n{text}"
    );
    // Once per burst, not once per failed call (it used to be one line every 10 ms).
    assert!(failures <= 3, "{failures} accept-failure lines:\n{text}");
    assert!(text.contains("accept works again"), "{text}");
}
