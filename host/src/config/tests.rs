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
