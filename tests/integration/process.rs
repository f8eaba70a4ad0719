//! The `weir` binary as a process: SIGTERM drains in-flight requests and exits 0; a bad
//! config is refused at startup with the file and the reason.

use std::process::{Command, Stdio};
use std::time::Duration;

use weir_tests::{
    TempDir, TestClient, TestUpstream, base_config, eventually, free_port, one_route,
};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// A `weir` process on a free port, proxying everything to `up`, with `server_extra` in
/// `[server]`, started through `sh -c "<prelude> && exec weir CONFIG"` (the prelude sets
/// limits, say), its standard output in `DIR/weir.log`. Returns once it serves.
pub(crate) struct WeirProcess {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
    prelude: String,
}

impl WeirProcess {
    async fn start(up: &TestUpstream, server_extra: &str, prelude: &str) -> Self {
        Self::start_with(&one_route(up.addr, ""), server_extra, prelude, &[]).await
    }

    /// A `weir` process serving `routes` (upstreams, routes and more tables after the base
    /// config) with `plugins` (file name, built component) in its plugins directory.
    pub(crate) async fn start_with(
        routes: &str,
        server_extra: &str,
        prelude: &str,
        plugins: &[(&str, &str)],
    ) -> Self {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        for (name, built) in plugins {
            std::fs::copy(built, dir.path().join("plugins").join(name)).unwrap();
        }
        let port = free_port();
        let config = base_config()
            .replace("127.0.0.1:0\"]", &format!("127.0.0.1:{port}\"]"))
            .replace("[runtime]", &format!("{server_extra}[runtime]"))
            + routes;
        std::fs::write(dir.path().join("weir.toml"), config).unwrap();
        let mut weir = Self {
            child: Self::spawn(&dir, prelude),
            port,
            dir,
            prelude: prelude.to_string(),
        };
        weir.wait_serving().await;
        weir
    }

    fn spawn(dir: &TempDir, prelude: &str) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("weir.log"))
            .unwrap();
        Command::new("sh")
            .args(["-c", &format!("{prelude} && exec \"$0\" \"$1\""), WEIR])
            .arg(dir.path().join("weir.toml"))
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start weir")
    }

    /// Waits until the listener answers HTTP.
    async fn wait_serving(&mut self) {
        let url = self.url();
        let client = TestClient::default();
        assert!(
            eventually(Duration::from_secs(20), || async {
                client.try_send(weir_tests::get(&url, &[])).await.is_ok()
            })
            .await,
            "weir serves"
        );
    }

    /// Kills the process with SIGKILL (no chance to flush or drain) and starts it again
    /// on the same config, directory and port.
    pub(crate) async fn kill_and_restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.dir, &self.prelude);
        self.wait_serving().await;
    }

    /// Kills the process with SIGKILL, for good.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Its proxy address.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its proxy URL for `/`.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// What it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weir.log")).unwrap_or_default()
    }

    /// Sends SIGTERM (the shell's `kill` builtin: no dependency on a kill binary).
    fn terminate(&self) -> bool {
        Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for WeirProcess {
    /// A test that failed half-way leaves no gateway behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let up = TestUpstream::start("slow").await;
    let mut weir = WeirProcess::start(&up, "", "true").await;
    let url = weir.url();
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
    assert!(weir.terminate());
    for request in in_flight {
        assert_eq!(
            request.await.unwrap(),
            200,
            "an in-flight request was dropped on SIGTERM"
        );
    }
    let status = tokio::task::spawn_blocking(move || weir.child.wait())
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

/// `weir check` says what is wrong and nothing about serving (nothing serves), reads
/// `weir.toml` when given no file, and `help` and `version` are commands, not config paths.
#[test]
fn the_command_line_says_what_it_does() {
    let dir = TempDir::new();
    let config_path = dir.path().join("weir.toml");
    std::fs::write(&config_path, "[server]\nlisten = [\"127.0.0.1:0\"]\nplugins_dir = \".\"\n[[routes]]\nname = \"r\"\nupstream = \"nope\"\n").unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(WEIR)
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run weir");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let (code, stdout, stderr) = run(&["check"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("weir.toml") && stderr.contains("unknown upstream \"nope\""),
        "{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(
        !all.contains("keeps serving"),
        "nothing serves during a check: {all}"
    );
    assert!(
        !all.contains('\u{1b}'),
        "no colour codes into a pipe: {all:?}"
    );

    let (code, stdout, _) = run(&["help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("usage: weir"), "{stdout}");
    let (code, stdout, _) = run(&["version"]);
    assert_eq!(code, Some(0));
    let want = format!(
        "weir {} (plugin contract {})",
        env!("CARGO_PKG_VERSION"),
        weir::plugin::CONTRACT
    );
    assert_eq!(stdout.trim(), want);
    let (code, _, stderr) = run(&["chek"]);
    assert_eq!(code, Some(2), "a misspelt command is not a config path");
    assert!(stderr.contains("usage: weir"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_backs_off_logs_once_and_recovers() {
    let up = TestUpstream::start("up").await;
    // A hard limit of 128 descriptors: the gateway cannot raise it, and runs out.
    let mut weir = WeirProcess::start(
        &up,
        "workers = 1\n[server.limits]\nfirst_byte_timeout_ms = 3000\n",
        "ulimit -n 128",
    )
    .await;
    let (url, port) = (weir.url(), weir.port);
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
    assert!(weir.terminate());
    let text = weir.log();
    let _ = tokio::task::spawn_blocking(move || weir.child.wait()).await;
    let failures = text.matches("accept failed").count();
    assert!(
        failures >= 1,
        "the gateway did run out of descriptors:\n{text}"
    );
    // Once per burst, not once per failed call (it used to be one line every 10 ms).
    assert!(failures <= 3, "{failures} accept-failure lines:\n{text}");
    assert!(text.contains("accept works again"), "{text}");
}

/// How many failed requests of route `down` the log accounts for: one per warning logged,
/// plus the counts it reports (`unlogged=` on a warning, `more=` on a sweep's line), and how
/// many lines it took.
fn failures_logged(log: &str) -> (u64, usize) {
    let number = |line: &str, key: &str| -> u64 {
        line.split_once(key)
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("WARN") && (l.contains("route=down") || l.contains("route=\"down\""))
        })
        .collect();
    let accounted = lines
        .iter()
        .map(|line| {
            if line.contains(": repeated") {
                number(line, "more=")
            } else {
                1 + number(line, "unlogged=")
            }
        })
        .sum();
    (accounted, lines.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_outage_is_a_few_warnings_with_counts_not_one_per_request() {
    let up = TestUpstream::start("up").await;
    // Route `down` goes to a port nothing listens on: every request there fails upstream.
    let routes = format!(
        "[upstreams.up]\ntargets = [\"{}\"]\n[upstreams.gone]\ntargets = [\"127.0.0.1:{}\"]\n\
         [[routes]]\nname = \"down\"\nupstream = \"gone\"\nmatch = {{ path_prefix = \"/down\" }}\n\
         [[routes]]\nname = \"ok\"\nupstream = \"up\"\n",
        up.addr,
        free_port()
    );
    let weir =
        WeirProcess::start_with(&routes, "log_repeat_interval_ms = 1000\n", "true", &[]).await;
    let client = TestClient::default();
    let url = format!("http://127.0.0.1:{}/down", weir.port);
    const FAILED: u64 = 60;
    for _ in 0..FAILED {
        assert!(client.get(&url).await.status.is_server_error());
    }
    // Every failure is accounted for once the sweep has reported the last interval's count…
    assert!(
        eventually(Duration::from_secs(10), || async {
            failures_logged(&weir.log()).0 == FAILED
        })
        .await,
        "the log accounts for {:?} of {FAILED} failures:\n{}",
        failures_logged(&weir.log()),
        weir.log()
    );
    // …in a few lines: one warning per interval and one count, not one line per request.
    let (_, lines) = failures_logged(&weir.log());
    assert!(
        lines <= 6,
        "{lines} lines for {FAILED} failures:\n{}",
        weir.log()
    );
}
