//! The config's own checks.

use super::*;

fn parse(server_extra: &str) -> anyhow::Result<Config> {
    let text = format!("[server]\nlisten = [\"127.0.0.1:1\"]\nplugins_dir = \".\"\n{server_extra}");
    Config::parse(&text, ".".into())
}

#[test]
fn admin_off_loopback_needs_a_token() {
    let refused = parse("admin = \"0.0.0.0:9901\"\n").unwrap_err();
    assert!(refused.to_string().contains("admin_token"), "{refused}");
    assert!(parse("admin = \"0.0.0.0:9901\"\nadmin_token = { value = \"t\" }\n").is_ok());
    let missing = parse("admin_token = { env = \"WEIR_TEST_SURELY_UNSET\" }\n").unwrap_err();
    assert!(
        missing.to_string().contains("WEIR_TEST_SURELY_UNSET"),
        "{missing}"
    );
}

#[test]
fn redis_settings_the_gateway_cannot_serve_are_refused_at_load() {
    let state = |settings: &str| {
        parse(&format!(
            "[state]\nbackend = \"redis\"\n[state.redis]\n{settings}\n"
        ))
    };
    assert!(state("url = { value = \"redis://127.0.0.1:6379\" }").is_ok());
    assert!(state("url = { value = \"rediss://a:6379,rediss://b:6379\" }\ncluster = true").is_ok());
    assert!(
        state("url = { value = \"rediss://a:1,rediss://b:1\" }\nsentinel_master = \"m\"").is_ok()
    );
    let http = state("url = { value = \"http://127.0.0.1:6379\" }").unwrap_err();
    assert!(http.to_string().contains("redis://"), "{http}");
    let refused = [
        (
            "url = { value = \"redis://a:1\" }\nkey_prefix = \"weir{x}:\"",
            "key_prefix",
        ),
        (
            "url = { value = \"redis://a:1\" }\nca_file = \"ca.pem\"",
            "ca_file",
        ),
        (
            "url = { value = \"redis://a:1\" }\ncluster = true\nsentinel_master = \"m\"",
            "exclude",
        ),
        (
            "url = { value = \"rediss://a:1,redis://b:1\" }\nsentinel_master = \"m\"",
            "sentinel_master",
        ),
    ];
    for (settings, reason) in refused {
        let refusal = state(settings).unwrap_err();
        assert!(
            refusal.to_string().contains(reason),
            "{settings}: {refusal}"
        );
    }
}

#[test]
fn bulkheads_are_checked_at_load() {
    let config = |extra: &str| {
        parse(&format!(
            "[upstreams.u]\ntargets = [\"127.0.0.1:1\"]\n{extra}\n\
             [[routes]]\nname = \"r\"\nupstream = \"u\"\nbulkhead = \"b\"\n"
        ))
    };
    assert!(config("[bulkheads.b]\nmax_concurrent = 8").is_ok());
    let refused = [
        ("", "unknown bulkhead"),
        (
            "[bulkheads.b]\nmax_concurrent = 0",
            "bulkheads.b.max_concurrent",
        ),
        (
            "[bulkheads.b]\nmax_concurrent = 1\nqueue_timeout_ms = 0",
            "bulkheads.b.queue_timeout_ms",
        ),
    ];
    for (extra, reason) in refused {
        let refusal = config(extra).unwrap_err();
        assert!(
            format!("{refusal:#}").contains(reason),
            "{extra}: {refusal:#}"
        );
    }
}

#[test]
fn httpdns_settings_that_cannot_work_are_refused_naming_the_key() {
    let base = "[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[upstreams.eu]\ntargets = [\"127.0.0.2:1\"]\n\
                [secrets.k]\nvalue = \"s\"\n";
    let httpdns = |settings: &str| parse(&format!("{base}[httpdns]\n{settings}\n"));
    let good = "fleet = [\"192.0.2.1:443\"]\nregions = { \"10.0.0.0/8\" = \"eu\" }\n\
                keys = { k1 = \"k\" }\nrequire_signature = true\n\
                services = { \"api.example\" = \"app\", \"gw.example\" = { fleet = true }, \
                \"app.example\" = { upstream = \"app\", regions = { eu = \"eu\" } } }";
    assert!(httpdns(good).is_ok(), "{:?}", httpdns(good).err());
    let refused = [
        ("ttl_s = 0", "httpdns.ttl_s"),
        ("max_names = 65", "httpdns.max_names"),
        ("max_expiry_s = 0", "httpdns.max_expiry_s"),
        ("fleet = [\"gw.example\"]", "httpdns.fleet"),
        ("regions = { \"10.0.0.0/33\" = \"eu\" }", "httpdns.regions"),
        ("trusted_proxies = [\"x\"]", "trusted_proxies"),
        ("keys = { k1 = \"nope\" }", "httpdns.keys.k1"),
        ("require_signature = true", "httpdns.require_signature"),
        ("services = { \"API\" = \"app\" }", "not a service name"),
        (
            "services = { \"a\" = \"nope\" }",
            "httpdns.services.a.upstream",
        ),
        (
            "services = { \"a\" = { fleet = true } }",
            "httpdns.fleet addresses",
        ),
        ("services = { \"a\" = { } }", "give upstream or fleet"),
        (
            "services = { \"a\" = { upstream = \"app\", regions = { eu = \"nope\" } } }",
            "httpdns.services.a.regions.eu",
        ),
        (
            "services = { \"a\" = { upstream = \"app\", regions = { mars = \"eu\" } } }",
            "region \"mars\"",
        ),
    ];
    for (settings, key) in refused {
        let error = httpdns(settings).expect_err(settings).to_string();
        assert!(error.contains(key), "{settings}: {error}");
    }
    let route = |extra: &str| {
        parse(&format!(
            "{base}[[routes]]\nname = \"d\"\nhttpdns = true\n{extra}"
        ))
    };
    assert!(route("").is_ok());
    let both = route("upstream = \"app\"\n").unwrap_err().to_string();
    assert!(both.contains("one of them"), "{both}");
}

#[test]
fn tcp_listeners_are_checked_at_load_with_the_key_named() {
    let upstreams = "[upstreams.db]\ntargets = [\"127.0.0.1:5432\"]\n\
                     [upstreams.secure]\ntargets = [\"127.0.0.1:443\"]\n[upstreams.secure.tls]\n";
    let tcp = |entries: &str| parse(&format!("{upstreams}{entries}"));
    let one = "[[tcp]]\nname = \"pg\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"db\"\n";
    let config = tcp(one).unwrap();
    let pg = &config.tcp[0];
    assert_eq!(
        (
            pg.connect_timeout_ms,
            pg.idle_timeout_ms,
            pg.max_connections
        ),
        (1_000, 600_000, 10_000)
    );
    assert_eq!((pg.buffer_bytes, pg.proxy_protocol), (16 << 10, None));
    let v2 = tcp(&format!("{one}proxy_protocol = \"v2\"\n")).unwrap();
    assert_eq!(v2.tcp[0].proxy_protocol, Some(ProxyProtocol::V2));
    let refused = [
        (
            one.replace("\"db\"", "\"nope\""),
            "tcp \"pg\": upstream: unknown upstream \"nope\"",
        ),
        (one.replace("\"db\"", "\"secure\""), "speaks no TLS"),
        (
            format!("{one}max_connections = 0\n"),
            "tcp \"pg\": max_connections must be at least 1",
        ),
        (
            format!("{one}idle_timeout_ms = 0\n"),
            "tcp \"pg\": idle_timeout_ms must be at least 1",
        ),
        (
            format!("{one}connect_timeout_ms = 0\n"),
            "tcp \"pg\": connect_timeout_ms",
        ),
        (
            format!("{one}buffer_bytes = 10\n"),
            "tcp \"pg\": buffer_bytes",
        ),
        (format!("{one}proxy_protocol = \"v1\"\n"), "proxy_protocol"),
        (format!("{one}{one}"), "tcp name \"pg\" is used twice"),
        (
            format!("{one}{}", one.replace("\"pg\"", "\"pg2\"")),
            "tcp \"pg2\": listen: 127.0.0.1:6432 is taken by tcp \"pg\": listen already",
        ),
        (
            one.replace("127.0.0.1:6432", "127.0.0.1:1"),
            "is taken by server.listen",
        ),
        (
            one.replace("127.0.0.1:6432", "127.0.0.1:9901"),
            "is taken by server.admin",
        ),
    ];
    for (text, why) in refused {
        let error = format!("{:#}", tcp(&text).unwrap_err());
        assert!(error.contains(why), "{why:?} in {error:?}");
    }
    // Port 0 is a free port each time: two such listeners do not clash.
    let any = one.replace("127.0.0.1:6432", "127.0.0.1:0");
    assert!(tcp(&format!("{any}{}", any.replace("\"pg\"", "\"pg2\""))).is_ok());
}
