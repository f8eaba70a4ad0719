//! A real `redis-server`, started by the test on a free port and stopped when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;
use crate::tls::SignedCertificate;

/// A `redis-server` process on 127.0.0.1; it can be stopped and started again on the same
/// port, to play an outage.
pub struct RedisServer {
    /// Its address.
    pub addr: SocketAddr,
    child: Option<Child>,
    /// A config file to start from (a sentinel's), before the other arguments.
    config: Option<String>,
    /// Arguments beyond the port, the address and no persistence.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port, without persistence, and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A server that writes every acknowledged write to its append-only file in `dir`
    /// before answering (`appendfsync always`): killed and resumed, it has them all.
    pub fn start_durable(dir: &Path) -> Self {
        let dir = dir.display().to_string();
        let args = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir,
        ];
        Self::start_with(args.map(String::from).to_vec())
    }

    /// A server that also speaks TLS, on the port returned, with a certificate for
    /// 127.0.0.1 signed by a CA made for the test; the CA's certificate is `dir/ca.pem`.
    /// (The plain port stays open for the test's own commands.)
    pub fn start_tls(dir: &Path) -> (Self, u16) {
        let tls_port = crate::free_port();
        (Self::start_with(tls_arguments(dir, tls_port)), tls_port)
    }

    /// [`RedisServer::start`], with more `redis-server` arguments.
    fn start_with(extra: Vec<String>) -> Self {
        Self::start_from(None, crate::free_port(), extra)
    }

    /// A server on `port`, from `config` if given, with `extra` arguments.
    fn start_from(config: Option<String>, port: u16, extra: Vec<String>) -> Self {
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            config,
            extra,
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
        // A replica writes the snapshot it receives into its working directory: the system
        // temp dir, not the source tree.
        let child = Command::new("redis-server")
            .current_dir(std::env::temp_dir())
            .args(&self.config)
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
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

    /// Waits (up to 10 s) until every replica of this master has acknowledged all it
    /// holds; false if one has not by then.
    pub fn wait_for_replicas(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let info = self.reply("INFO replication").unwrap_or_default();
            let offset = (info.lines())
                .find_map(|line| line.strip_prefix("master_repl_offset:"))
                .map(|value| value.trim().to_string());
            let replicas: Vec<Option<String>> = (info.lines())
                .filter(|line| line.starts_with("slave") && line.contains("offset="))
                .map(|line| {
                    (line.split(','))
                        .find_map(|part| part.strip_prefix("offset="))
                        .map(str::to_string)
                })
                .collect();
            if !replicas.is_empty() && replicas.iter().all(|r| *r == offset) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether this is a replica (of a cluster or of another server).
    pub fn is_replica(&self) -> bool {
        self.reply("ROLE")
            .is_some_and(|role| role.contains("\r\nslave\r\n"))
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn command(&self, command: &str) -> Option<String> {
        self.reply(command)?.lines().next().map(str::to_string)
    }

    /// Sends one inline command and returns the start of the reply (its first read, at
    /// most 4 KiB).
    pub fn reply(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut reply = [0u8; 4096];
        let n = stream.read(&mut reply).ok()?;
        Some(String::from_utf8_lossy(&reply[..n]).into_owned())
    }
}

/// The TLS arguments of a server on `tls_port` with a certificate for 127.0.0.1 signed by
/// the CA of `dir/ca.pem` (made on the first call for `dir`), trusting that CA as a client
/// (a replica of a TLS master, a sentinel) and not asking clients for certificates.
fn tls_arguments(dir: &Path, tls_port: u16) -> Vec<String> {
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path.display().to_string()
    };
    if !dir.join("ca.pem").exists() {
        let signed = SignedCertificate::for_names(&["127.0.0.1"]);
        write("ca.pem", signed.ca_pem);
        write("cert.pem", signed.certificate.pem());
        write("key.pem", signed.key.serialize_pem());
    }
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "--tls-port".to_string(),
        tls_port.to_string(),
        "--tls-cert-file".to_string(),
        path("cert.pem"),
        "--tls-key-file".to_string(),
        path("key.pem"),
        "--tls-ca-cert-file".to_string(),
        path("ca.pem"),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ]
    .to_vec()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters on free ports, made with `redis-cli --cluster create`;
/// stopped when dropped.
pub struct RedisCluster {
    /// Its nodes.
    pub nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Three masters (no replicas), with the 16,384 slots spread over them; returns once
    /// every node reports the cluster ok.
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each. A node that has not answered its peers
    /// for three seconds is failed over (long enough that a busy machine does not fail a
    /// live node over).
    pub fn start_with_replicas(replicas: usize) -> Self {
        let dir = TempDir::new();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|i| {
                let config = dir.path().join(format!("nodes-{i}.conf"));
                let args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "3000",
                    "--cluster-config-file",
                    &config.display().to_string(),
                    "--dir",
                    &dir.path().display().to_string(),
                ];
                RedisServer::start_with(args.map(String::from).to_vec())
            })
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|node| node.addr.to_string()))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_until_ok(|node| {
            // A replica counts once it has synchronised with its master.
            !node.is_replica()
                || node
                    .reply("INFO replication")
                    .is_some_and(|info| info.contains("master_link_status:up"))
        });
        cluster
    }

    /// Waits until three running nodes are masters: after a master is stopped, until its
    /// replica has taken its place (which the others agree to after the node timeout).
    pub fn wait_for_failover(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.running().filter(|node| !node.is_replica()).count() != 3 {
            assert!(Instant::now() < deadline, "no replica took over");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_ok(|_| true);
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|node| node.child.is_some())
    }

    /// Waits until every running node reports the cluster ok and passes `ready`.
    fn wait_until_ok(&self, ready: impl Fn(&RedisServer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.running().all(|node| {
            node.reply("CLUSTER INFO")
                .is_some_and(|info| info.contains("cluster_state:ok"))
                && ready(node)
        }) {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running master that holds `key`.
    pub fn master_of(&mut self, key: &str) -> &mut RedisServer {
        let command = format!("EXISTS {key}");
        self.nodes
            .iter_mut()
            .filter(|node| node.child.is_some() && !node.is_replica())
            .find(|node| node.command(&command).as_deref() == Some(":1"))
            .unwrap_or_else(|| panic!("no master holds {key}"))
    }

    /// The seed nodes as `[state.redis] url` takes them with `cluster = true`.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        urls.join(",")
    }

    /// Keys held by each node.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|node| {
                node.command("DBSIZE")
                    .and_then(|reply| reply.strip_prefix(':')?.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// A master, its replica and a Redis Sentinel that watches them as `weir` (quorum 1, the
/// master deemed down after two seconds without an answer); stopped when dropped.
pub struct RedisSentinel {
    /// The master at the start.
    pub master: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The sentinel.
    pub sentinel: RedisServer,
    /// The ports the sentinel knows the replica and itself by: their TLS ports when they
    /// speak TLS.
    replica_port: u16,
    sentinel_url: String,
    _dir: TempDir,
}

impl RedisSentinel {
    /// Starts the three and waits until the sentinel knows the replica.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`RedisSentinel::start`], everything over TLS: the sentinel's clients, the
    /// sentinel's and the replica's links to the master, the master's clients; each
    /// server's certificate is signed by the CA of [`RedisSentinel::ca_file`].
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let dir = TempDir::new();
        // The TLS arguments of a server, and the port others reach it by.
        let reach = |port: u16| -> (Vec<String>, u16) {
            match tls {
                true => {
                    let tls_port = crate::free_port();
                    let mut args = tls_arguments(dir.path(), tls_port);
                    args.extend(["--tls-replication".into(), "yes".into()]);
                    (args, tls_port)
                }
                false => (Vec::new(), port),
            }
        };
        let master_port = crate::free_port();
        let (args, master_reached) = reach(master_port);
        let master = RedisServer::start_from(None, master_port, args);
        let replica_port = crate::free_port();
        let (mut args, replica_reached) = reach(replica_port);
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_reached.to_string(),
            "--replica-announce-port".into(),
            replica_reached.to_string(),
        ]);
        let replica = RedisServer::start_from(None, replica_port, args);
        let config = dir.path().join("sentinel.conf");
        let rules = format!(
            "sentinel monitor weir 127.0.0.1 {master_reached} 1\n\
             sentinel down-after-milliseconds weir 2000\n\
             sentinel failover-timeout weir 5000\n"
        );
        std::fs::write(&config, rules).expect("write sentinel.conf");
        let sentinel_port = crate::free_port();
        let (mut args, sentinel_reached) = reach(sentinel_port);
        args.push("--sentinel".into());
        let sentinel =
            RedisServer::start_from(Some(config.display().to_string()), sentinel_port, args);
        let replica_at = replica_reached.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sentinel
            .reply("SENTINEL REPLICAS weir")
            .is_some_and(|replicas| replicas.contains(&replica_at))
            || !replica
                .reply("INFO replication")
                .is_some_and(|info| info.contains("master_link_status:up"))
        {
            assert!(
                Instant::now() < deadline,
                "the sentinel did not find the replica at {replica_at}: {:?}, {:?}",
                sentinel.reply("SENTINEL REPLICAS weir"),
                replica.reply("INFO replication"),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let scheme = if tls { "rediss" } else { "redis" };
        Self {
            master,
            replica,
            sentinel,
            replica_port: replica_reached,
            sentinel_url: format!("{scheme}://127.0.0.1:{sentinel_reached}"),
            _dir: dir,
        }
    }

    /// The CA every server's certificate is signed by, with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self._dir.path().join("ca.pem")
    }

    /// The sentinel as `[state.redis] url` takes it with `sentinel_master = "weir"`.
    pub fn url(&self) -> String {
        self.sentinel_url.clone()
    }

    /// Waits until the sentinel names the replica as the master.
    pub fn wait_for_failover(&self) {
        let replica_port = self.replica_port.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .sentinel
            .reply("SENTINEL GET-MASTER-ADDR-BY-NAME weir")
            .is_some_and(|master| master.contains(&replica_port))
            || self.replica.is_replica()
        {
            assert!(Instant::now() < deadline, "the sentinel did not fail over");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
