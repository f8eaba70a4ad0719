//! Opaque tokens checked by token introspection (RFC 7662) through the fake `http`.

use serde_json::json;
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::http::Response;
use weir_plugin_sdk::testing::{FakeHost, Installed};

use super::{accepted, auth, authorized, refused};
use crate::Auth;

/// A host whose introspection endpoint answers `status` and `body`.
fn host(status: u16, body: &'static str) -> Installed {
    FakeHost::new()
        .at_ms(1_000_000)
        .secret("client", "my client:s3cret/+")
        .http(move |_| {
            Ok(Response {
                status,
                headers: Vec::new(),
                body: Some(body.as_bytes().to_vec()),
            })
        })
        .install()
}

fn filter() -> Auth {
    auth(
        json!({ "oauth2": { "upstream": "idp", "path": "/introspect",
        "client_secret": "client", "token_type_hint": "access_token", "timeout": "250ms" } }),
    )
    .unwrap()
}

#[test]
fn an_active_token_names_its_consumer_and_the_answer_is_cached_until_exp() {
    // RFC 7662 §2.2's example answer (with `exp` moved to our clock: 1 000 s).
    let host = host(
        200,
        r#"{"active": true, "client_id": "l238j323ds-23ij4", "username": "jdoe",
            "scope": "read write dolphin", "sub": "Z5O3upPC88QrAjx00dis",
            "aud": "https://protected.example.net/resource", "iss": "https://server.example.com/",
            "exp": 1005, "iat": 1000}"#,
    );
    let filter = filter();
    let request = authorized("Bearer mF_9.B5f-4.1JqM");
    let changes = accepted(&filter, &request, "Z5O3upPC88QrAjx00dis", "oauth2");
    assert_eq!(changes.variable("consumer"), Some("Z5O3upPC88QrAjx00dis"));
    let sent = host.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].timeout_ms, Some(250));
    let body = String::from_utf8(sent[0].body.clone().unwrap()).unwrap();
    assert_eq!(body, "token=mF_9.B5f-4.1JqM&token_type_hint=access_token");
    // RFC 6749 §2.3.1: the client credentials form-encoded, then Basic.
    let authorization = sent[0].headers.iter().find(|h| h.name == "authorization");
    let expected = format!("Basic {}", base64_of("my+client:s3cret%2F%2B"));
    assert_eq!(authorization.unwrap().value, expected.as_bytes());
    accepted(&filter, &request, "Z5O3upPC88QrAjx00dis", "oauth2");
    assert_eq!(
        host.sent().len(),
        1,
        "the second request is served from the cache"
    );
    host.advance_ms(5_000);
    refused(&filter, &request, 401, "token_expired");
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn an_inactive_token_is_a_401() {
    let _host = host(200, r#"{"active": false}"#);
    refused(&filter(), &authorized("Bearer t"), 401, "invalid_token");
}

#[test]
fn an_endpoint_that_fails_or_answers_no_json_is_a_503() {
    for (status, body) in [(500, "{}"), (200, "<html>"), (200, "[1]")] {
        let _host = host(status, body);
        refused(&filter(), &authorized("Bearer t"), 503, "auth_unavailable");
    }
    let host = host(200, "{}");
    host.fail("http", HostError::Unavailable("connection refused".into()));
    refused(&filter(), &authorized("Bearer t"), 503, "auth_unavailable");
}
