//! The deployment files (`Dockerfile`, `deploy/kubernetes/`) agree with the config they
//! mount: ports, paths, probes, secrets and the drain; and that config, run as the
//! Deployment runs it (its secrets in the environment, a real Redis), serves and answers
//! the probes where the Deployment asks them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weir_tests::redis::RedisServer;
use weir_tests::{TempDir, TestClient, TestUpstream, eventually, free_port, get};
use yaml_rust2::{Yaml, YamlLoader};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every document of a file in `deploy/kubernetes`.
fn manifests(file: &str) -> Vec<Yaml> {
    let path = root().join("deploy/kubernetes").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The string at `yaml`, or a panic naming `what`.
fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {yaml:?}"))
}

/// The entry of `list` whose `key` is `value`.
fn named<'a>(list: &'a Yaml, key: &str, value: &str) -> &'a Yaml {
    list.as_vec()
        .into_iter()
        .flatten()
        .find(|entry| entry[key].as_str() == Some(value))
        .unwrap_or_else(|| panic!("no entry with {key} = {value:?} in {list:?}"))
}

/// The port of a `host:port` listen address in the config.
fn port_of(address: &toml::Value) -> i64 {
    let address = address.as_str().expect("an address");
    let port = address.rsplit_once(':').expect("host:port").1;
    port.parse().expect("a port")
}

/// The environment variables the config reads its secrets from (`{ env = "NAME" }`).
fn env_secrets(config: &str) -> Vec<String> {
    config
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn the_kubernetes_manifests_agree_with_the_config_they_mount() {
    let kustomization = &manifests("kustomization.yaml")[0];
    let docs: Vec<Yaml> = kustomization["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .flat_map(|file| manifests(text(file, "a resource")))
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|doc| {
                doc["kind"].as_str() == Some(kind) && doc["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let generator = &kustomization["configMapGenerator"][0];
    let config_file = text(&generator["files"][0], "the generated config file");
    let config_text = std::fs::read_to_string(root().join("deploy/kubernetes").join(config_file))
        .expect("config");
    let config: toml::Value = toml::from_str(&config_text).expect("the config parses");
    let server = &config["server"];

    let deployment = find("Deployment", "weir");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = named(&pod["containers"], "name", "weir");
    let mount = |container: &Yaml, volume: &str| {
        text(
            &named(&container["volumeMounts"], "name", volume)["mountPath"],
            volume,
        )
        .to_string()
    };

    // The config the container runs is the generated ConfigMap's file.
    let volume = named(&pod["volumes"], "name", "config");
    assert_eq!(volume["configMap"]["name"], generator["name"]);
    let config_path = format!("{}/{config_file}", mount(container, "config"));
    assert_eq!(
        text(&container["args"][0], "the config argument"),
        config_path
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!(
            "COPY deploy/kubernetes/{config_file} {config_path}"
        )),
        "the image's own config is the same file at the same path"
    );

    // The plugins directory is the plugins volume, seeded from where the image keeps the
    // bundled plugins.
    let plugins_dir = server["plugins_dir"].as_str().expect("plugins_dir");
    assert_eq!(mount(container, "plugins"), plugins_dir);
    let seed = named(&pod["initContainers"], "name", "plugins");
    assert_eq!(mount(seed, "plugins"), plugins_dir);
    let copy = text(&seed["command"][2], "the seeding command");
    assert!(copy.contains(&format!(" {plugins_dir}/")), "{copy}");
    let bundled = copy.split_whitespace().nth(1).expect("cp source");
    let bundled_dir = bundled.trim_end_matches("/*.wasm");
    assert!(
        dockerfile.contains(&format!("COPY --from=binary /out/plugins {bundled_dir}")),
        "the image keeps its plugins in {bundled_dir}"
    );

    // The compiled-plugin cache (and its key beside it) is on a writable volume of its
    // own: the config's directory is a read-only ConfigMap, and the image makes the
    // directories the config names for the user it runs as.
    let cache_dir = server["cache_dir"].as_str().expect("cache_dir");
    let cache_volume = mount(container, "cache");
    assert!(
        Path::new(cache_dir).parent() == Some(Path::new(&cache_volume)),
        "{cache_dir} (and its key) in the cache volume {cache_volume}"
    );
    assert!(!named(&pod["volumes"], "name", "cache")["emptyDir"].is_badvalue());
    for dir in [cache_volume.as_str(), plugins_dir] {
        assert!(dockerfile.contains(dir), "the image makes {dir}");
    }
    assert!(
        dockerfile.contains(&format!(
            "COPY --from=binary --chown=10001:10001 /out/plugins {plugins_dir}"
        )),
        "the image alone serves its config: its plugins_dir holds the bundled plugins"
    );

    // Ports: the container's named ports are the config's listeners; the probes ask the
    // admin port for /live and /ready; the Service sends to the proxy port.
    let port = |name: &str| named(&container["ports"], "name", name)["containerPort"].as_i64();
    assert_eq!(port("http"), Some(port_of(&server["listen"][0])));
    assert_eq!(port("admin"), Some(port_of(&server["admin"])));
    for (probe, path) in [("livenessProbe", "/live"), ("readinessProbe", "/ready")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(
            (get["path"].as_str(), get["port"].as_str()),
            (Some(path), Some("admin")),
            "{probe}"
        );
    }
    let service = find("Service", "weir");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let scrape = &deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"];
    assert_eq!(scrape.as_str().and_then(|p| p.parse().ok()), port("admin"));

    // Every secret the config reads from the environment is set from a Secret.
    for var in env_secrets(&config_text) {
        let env = named(&container["env"], "name", &var);
        assert!(
            !env["valueFrom"]["secretKeyRef"]["key"].is_badvalue(),
            "{var} from a Secret"
        );
    }

    // The drain: the preStop pause and the gateway's grace fit in the pod's grace period.
    let pause: i64 = text(
        &container["lifecycle"]["preStop"]["exec"]["command"][1],
        "pause",
    )
    .parse()
    .expect("a pause in seconds");
    let grace_ms = server["shutdown_grace_ms"]
        .as_integer()
        .expect("shutdown_grace_ms");
    let period = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("a grace period");
    assert!(
        pause * 1000 + grace_ms < period * 1000,
        "{pause} s + {grace_ms} ms within {period} s"
    );

    let hpa = find("HorizontalPodAutoscaler", "weir");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
}

/// A gateway process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fleet config with the test's ports, upstream and (when given) plugins and cache
/// directories in place of the Deployment's.
fn fleet_config(
    (port, admin): (u16, u16),
    app: std::net::SocketAddr,
    dirs: Option<(&Path, &Path)>,
) -> String {
    let config = std::fs::read_to_string(root().join("deploy/kubernetes/weir.toml"))
        .expect("the fleet config");
    let mut config = config
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{port}"))
        .replace("0.0.0.0:9901", &format!("127.0.0.1:{admin}"))
        .replace("\"app:8080\"", &format!("\"{app}\""));
    if let Some((plugins, cache)) = dirs {
        config = config
            .replace("\"/var/lib/weir/plugins\"", &format!("{plugins:?}"))
            .replace("\"/var/cache/weir/cache\"", &format!("{cache:?}"));
    }
    assert!(
        config.contains(&app.to_string()),
        "the fleet config's upstream is app:8080"
    );
    config
}

/// Runs `command` (a gateway on the fleet config, its secrets in the environment) until
/// dropped, and checks it serves as the Deployment expects: ready and live on the admin
/// port, a request proxied with its rate-limit budget in `redis`.
async fn serves_as_deployed(mut command: Command, (port, admin): (u16, u16), redis: &RedisServer) {
    let _weir = Process(
        command
            .env("WEIR_ADMIN_TOKEN", "a-token-for-the-test")
            .env("REDIS_URL", redis.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weir"),
    );
    let client = TestClient::default();
    let ready = format!("http://127.0.0.1:{admin}/ready");
    let up = eventually(Duration::from_secs(60), || async {
        client
            .try_send(get(&ready, &[]))
            .await
            .is_ok_and(|r| r.status == 200)
    });
    assert!(up.await, "ready on the admin port");
    let live = client.get(&format!("http://127.0.0.1:{admin}/live")).await;
    assert_eq!(live.status, 200);
    let served = client.get(&format!("http://127.0.0.1:{port}/hello")).await;
    assert_eq!(served.status, 200);
    assert!(
        served.header("ratelimit").is_some(),
        "rate-limited: {:?}",
        served.headers
    );
    assert_eq!(
        redis.command("DBSIZE").as_deref(),
        Some(":1"),
        "the budget lives in Redis"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_config_serves_and_answers_the_probes() {
    let redis = RedisServer::start();
    let app = TestUpstream::start("app").await;
    let ports = (free_port(), free_port());
    let plugins = root()
        .join("target/plugins")
        .canonicalize()
        .expect("the built plugins");
    let dir = TempDir::new();
    let cache = dir.path().join("cache");
    let path = dir.path().join("weir.toml");
    let config = fleet_config(ports, app.addr, Some((&plugins, &cache)));
    std::fs::write(&path, config).expect("write the config");
    let mut command = Command::new(WEIR);
    command.arg("run").arg(&path);
    serves_as_deployed(command, ports, &redis).await;
}

/// The static binary the README's test command builds before the tests, for the image.
const STATIC_BINARY: &str = "target/x86_64-unknown-linux-musl/debug/weir";

/// Runs `buildah` with its storage under `storage` (vfs: no mounts, no privileges beyond
/// root's); its standard output, trimmed.
fn buildah(storage: &Path, args: &[&str]) -> String {
    let output = Command::new("buildah")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("run"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .expect("buildah must be installed (`apt-get install buildah`; .ci/run does)");
    assert!(
        output.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The Dockerfile builds offline (its empty base needs no registry) from the static
/// binary, the plugins and a CA bundle in the context's `image/`; the image runs as its
/// user, and the gateway, chrooted into the image's files alone, serves the fleet config
/// as the Deployment expects.
#[tokio::test(flavor = "multi_thread")]
async fn the_image_builds_offline_and_serves_from_its_own_files() {
    let binary = root().join(STATIC_BINARY);
    assert!(
        binary.exists(),
        "{STATIC_BINARY}: the README's test command builds it first \
         (cargo build --target x86_64-unknown-linux-musl --bin weir)"
    );
    let dir = TempDir::new();
    let context = dir.path().join("context");
    let copy = |from: &Path, to: &str| {
        let to = context.join(to);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    copy(&root().join("Dockerfile"), "Dockerfile");
    let config = "deploy/kubernetes/weir.toml";
    copy(&root().join(config), config);
    copy(&binary, "image/weir");
    for plugin in std::fs::read_dir(root().join("target/plugins")).expect("the built plugins") {
        let path = plugin.expect("a plugin").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_name().expect("a name").to_string_lossy();
            copy(&path, &format!("image/plugins/{name}"));
        }
    }
    let roots = context.join("image/ca-certificates.crt");
    std::fs::write(
        &roots,
        weir_tests::tls::SignedCertificate::for_names(&["ca"]).ca_pem,
    )
    .expect("a CA bundle");
    std::fs::create_dir_all(context.join("image/empty")).expect("mkdir");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox: `apt-get install busybox-static` (.ci/run does)"
    );
    copy(busybox, "image/busybox");

    let storage = dir.path().join("storage");
    let context = context.display().to_string();
    let dockerfile = format!("{context}/Dockerfile");
    let build = [
        "bud",
        "--isolation",
        "chroot",
        "--build-arg",
        "BINARY=prebuilt",
        "-t",
        "weir-test",
        "-f",
        &dockerfile,
        &context,
    ];
    buildah(&storage, &build);
    let format = "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}";
    let described = buildah(
        &storage,
        &[
            "inspect",
            "--type",
            "image",
            "--format",
            format,
            "weir-test",
        ],
    );
    assert_eq!(
        described,
        "10001:10001 [/usr/local/bin/weir run] [/etc/weir/weir.toml]"
    );
    let container = buildah(&storage, &["from", "weir-test"]);
    let rootfs = PathBuf::from(buildah(&storage, &["mount", &container]));
    // The commands the Deployment runs in the image are there: the init container's seeding
    // of the plugins volume, the preStop pause.
    let deployment = (manifests("deployment.yaml").into_iter())
        .find(|doc| doc["kind"].as_str() == Some("Deployment"))
        .expect("the Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let seed = named(&pod["initContainers"], "name", "plugins");
    let container_spec = named(&pod["containers"], "name", "weir");
    let pause = &container_spec["lifecycle"]["preStop"]["exec"]["command"];
    for command in [&seed["command"], pause] {
        let mut args: Vec<String> = (command.as_vec().into_iter().flatten())
            .map(|arg| text(arg, "a command's argument").to_string())
            .collect();
        if args[0] == "sleep" {
            args[1] = "0".into();
        }
        let ran = Command::new("chroot")
            .arg("--userspec=10001:10001")
            .arg(&rootfs)
            .args(&args)
            .status()
            .expect("chroot");
        assert!(ran.success(), "{args:?} in the image");
    }

    // The image's own config, with the test's ports and upstream in place.
    let redis = RedisServer::start();
    let app = TestUpstream::start("app").await;
    let ports = (free_port(), free_port());
    std::fs::write(
        rootfs.join("etc/weir/weir.toml"),
        fleet_config(ports, app.addr, None),
    )
    .expect("write the config");
    let mut command = Command::new("chroot");
    command.arg("--userspec=10001:10001").arg(&rootfs).args([
        "/usr/local/bin/weir",
        "run",
        "/etc/weir/weir.toml",
    ]);
    serves_as_deployed(command, ports, &redis).await;
    buildah(&storage, &["rm", &container]);
}
