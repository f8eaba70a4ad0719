//! A real `redis-server`, started by the test on a free port and stopped when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process on 127.0.0.1; it can be stopped and started again on the same
/// port, to play an outage.
pub struct RedisServer {
    /// Its address.
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, without persistence, and waits until it answers.
    pub fn start() -> Self {
        let port = crate::free_port();
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        };
        server.resume();
        server
    }

    /// The `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills the server (an outage: connections drop, the port refuses).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed (`apt-get install redis-server`; .ci/run does)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn command(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut reply = [0u8; 512];
        let n = stream.read(&mut reply).ok()?;
        let text = String::from_utf8_lossy(&reply[..n]);
        text.lines().next().map(str::to_string)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
