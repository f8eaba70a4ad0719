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
