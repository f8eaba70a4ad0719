//! The JavaScript client example (`examples/push-client/weir-push.js`) under Node against
//! the gateway: it gets messages in order and acks each after its handler, reconnects by
//! itself after a drop and resumes with `last_offset`, reports gaps, and nothing it acked
//! comes again. Node.js 20.10 or later must be installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;
use weir_tests::TempDir;

use super::{ALICE, Push, push_routes_with};

/// How long one step of the script may take.
const NODE_WAIT: Duration = Duration::from_secs(20);

/// Publishes `m<n>` with the payload `{"n": n}` to the device `web`, for each `n`.
async fn publish(push: &Push, ns: impl IntoIterator<Item = u64>) {
    for n in ns {
        let reply = push
            .publish(
                &format!("m{n}"),
                json!({ "device": "web" }),
                json!({ "n": n }),
            )
            .await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
    }
}

/// The script's record of message `m<n>`.
fn message(n: u64) -> Value {
    json!({ "type": "message", "offset": n, "id": format!("m{n}"), "payload": { "n": n } })
}

/// `examples/push-client/test/resume.js` under Node, killed when dropped. Its output is
/// read through non-blocking pipes (the tests' tokio has no `process` feature).
struct Node {
    child: Child,
    stdin: pipe::Sender,
    stdout: Lines<BufReader<pipe::Receiver>>,
    stderr: PathBuf,
}

impl Node {
    /// Starts the script with `config`; its stderr goes to `<dir>/<name>.stderr`.
    fn start(dir: &Path, name: &str, config: &Value) -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/push-client/test/resume.js");
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = Command::new("node")
            .arg("--experimental-websocket")
            .arg(script)
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("the stderr file"))
            .spawn()
            .expect("`node` runs: this test needs Node.js 20.10 or later (.ci/run installs it)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            stdin: pipe::Sender::from_owned_fd(stdin.into()).expect("stdin as a pipe"),
            stdout: BufReader::new(
                pipe::Receiver::from_owned_fd(stdout.into()).expect("stdout as a pipe"),
            )
            .lines(),
            child,
            stderr,
        }
    }

    /// The next line the script prints, as JSON.
    async fn line(&mut self) -> Value {
        match tokio::time::timeout(NODE_WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
                Ok(value) => value,
                Err(e) => self.fail(&format!("printed a line that is not JSON ({e}): {line}")),
            },
            Ok(Ok(None)) => self.fail("ended early"),
            Ok(Err(e)) => self.fail(&format!("could not be read: {e}")),
            Err(_) => self.fail(&format!("printed nothing within {NODE_WAIT:?}")),
        }
    }

    /// Sends the script a line.
    async fn say(&mut self, line: &str) {
        let line = format!("{line}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the script");
    }

    /// Waits for the script to exit, which must be a success.
    async fn finish(mut self) {
        match tokio::time::timeout(NODE_WAIT, self.stdout.next_line()).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(line))) => self.fail(&format!("printed more: {line}")),
            Ok(Err(e)) => self.fail(&format!("could not be read: {e}")),
            Err(_) => self.fail(&format!("did not exit within {NODE_WAIT:?}")),
        }
        // Its output closed: it has exited.
        let status = self.child.wait().expect("the script's status");
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
    }

    /// Stops the script and panics with `what` and its stderr.
    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!("the push client script {what}\n--- its stderr ---\n{stderr}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_gets_messages_in_order_acks_them_resumes_after_a_drop_and_reports_gaps() {
    let push = Push::start_with(&push_routes_with("history = 3", ""), &[]).await;
    push.register(ALICE, "web").await;
    let dir = TempDir::new();
    let url = format!("ws://{}/push/connect", push.gw.addr);
    let config = |state: &str, phases: Value| {
        json!({
            "url": url,
            "apiKey": ALICE,
            "device": "web",
            "state": dir.path().join(state),
            "phases": phases,
        })
    };

    // Three messages wait for the device; it gets them in order and acks them.
    publish(&push, 1..=3).await;
    let mut node = Node::start(dir.path(), "first", &config("first.json", json!([3, 2])));
    let offline = node.line().await;
    assert_eq!(offline["event"], "offline", "{offline}");
    assert_eq!(
        offline["events"],
        json!([message(1), message(2), message(3)])
    );
    // Its connection dropped and it cannot reconnect: two more are published meanwhile.
    publish(&push, 4..=5).await;
    node.say("online").await;
    let done = node.line().await;
    node.finish().await;
    assert_eq!(done["event"], "done", "{done}");
    let all: Vec<Value> = (1..=5).map(message).collect();
    assert_eq!(done["events"], json!(all), "in order, each once");
    assert_eq!(done["acked"], 5, "the gateway stored the acks: {done}");
    assert_eq!(
        done["ackedEarly"],
        json!([]),
        "acked only after the handler"
    );
    assert_eq!(done["lastOffset"], 5);
    assert_eq!(done["stored"], "5", "the offset went through the storage");
    // It retried by itself, and resumed after the offset it had.
    assert!(done["refused"].as_u64() >= Some(1), "{done}");
    let urls: Vec<&str> = (done["urls"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let query = format!("device=web&apikey={ALICE}");
    assert_eq!(urls.first(), Some(&format!("{url}?{query}").as_str()));
    assert_eq!(
        urls.last(),
        Some(&format!("{url}?{query}&last_offset=3").as_str())
    );

    // Another run, with nothing stored: only the gateway's acks say where it resumes, and
    // nothing acked comes again. Of the five new messages the history of 3 kept the last
    // three: the two before are a gap.
    publish(&push, 6..=10).await;
    let mut node = Node::start(dir.path(), "second", &config("second.json", json!([3])));
    let done = node.line().await;
    node.finish().await;
    assert_eq!(done["event"], "done", "{done}");
    assert_eq!(
        done["events"],
        json!([{ "type": "gap", "from": 6, "to": 7 }, message(8), message(9), message(10)]),
    );
    assert_eq!(done["acked"], 10, "{done}");
    assert_eq!(done["stored"], "10");
    push.gw.shutdown().await;
}
