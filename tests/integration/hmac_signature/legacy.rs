//! Legacy draft-cavage-http-signatures-12 signatures, accepted only when switched on.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, Request};
use sha2::{Digest, Sha256, Sha512};
use weir_tests::{TestClient, request};

use super::{Body, CLIENT1_KEY, GRANTS, KEYS, assert_refused, copy, now, setup};

/// How a draft-cavage-http-signatures-12 signature is made here, with the `hmac` crate
/// (there is no maintained independent signer): `(request-target) host date digest`.
struct Cavage<'a> {
    algorithm: &'a str,
    /// `authorization` or `signature`.
    header: &'a str,
    /// What the `Digest` (RFC 3230) is computed over, if not the body.
    digest_of: Option<&'a str>,
    /// How old the `Date` is, in seconds.
    age: u64,
}

impl Default for Cavage<'_> {
    fn default() -> Self {
        Self {
            algorithm: "hmac-sha256",
            header: "authorization",
            digest_of: None,
            age: 0,
        }
    }
}

impl Cavage<'_> {
    fn sign(&self, method: &str, url: String, body: &str) -> Request<Body> {
        let uri: http::Uri = url.parse().expect("uri");
        let host = uri.authority().expect("authority").to_string();
        let path = uri.path_and_query().expect("path").to_string();
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now() - self.age));
        let digested = self.digest_of.unwrap_or(body).as_bytes();
        let sha512 = self.algorithm == "hmac-sha512";
        let digest = if sha512 {
            format!("SHA-512={}", STANDARD.encode(Sha512::digest(digested)))
        } else {
            format!("SHA-256={}", STANDARD.encode(Sha256::digest(digested)))
        };
        let signing_string = format!(
            "(request-target): {} {path}\nhost: {host}\ndate: {date}\ndigest: {digest}",
            method.to_ascii_lowercase()
        );
        let mac = if sha512 {
            mac::<Hmac<Sha512>>(signing_string.as_bytes())
        } else {
            mac::<Hmac<Sha256>>(signing_string.as_bytes())
        };
        let params = format!(
            "keyId=\"client-1\",algorithm=\"{}\",headers=\"(request-target) host date digest\",signature=\"{}\"",
            self.algorithm,
            STANDARD.encode(mac)
        );
        let value = match self.header {
            "authorization" => format!("Signature {params}"),
            _ => params,
        };
        request(
            method,
            &url,
            &[("date", &date), ("digest", &digest), (self.header, &value)],
            body.to_string(),
        )
    }
}

/// The MAC of `message` under `client-1`'s key.
fn mac<M: Mac + KeyInit>(message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(CLIENT1_KEY.as_bytes()).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_cavage_signatures_only_when_switched_on() {
    let on = format!("{KEYS}\nlegacy = {{ enabled = true }}");
    let (upstream, gw) = setup(&[("legacy", &on, GRANTS), ("modern", KEYS, GRANTS)]).await;
    let client = TestClient::default();
    let body = "{\"n\": 1}";

    for (algorithm, header) in [
        ("hmac-sha256", "authorization"),
        ("hmac-sha512", "authorization"),
        ("hmac-sha256", "signature"),
    ] {
        let signer = Cavage {
            algorithm,
            header,
            ..Cavage::default()
        };
        // Distinct paths: the same signature twice would be a replay.
        let url = gw.url(&format!("/legacy/{algorithm}/{header}?y=1"));
        let r = client.send(signer.sign("POST", url, body)).await;
        assert_eq!(r.status, 200, "{algorithm} in {header}: {:?}", r.body);
    }

    let r = client
        .send(Cavage::default().sign("POST", gw.url("/modern/x"), body))
        .await;
    assert_refused(&r, 401, "missing_signature");
    let wrong_digest = Cavage {
        digest_of: Some("{\"n\": 2}"),
        ..Cavage::default()
    };
    let r = client
        .send(wrong_digest.sign("POST", gw.url("/legacy/x"), body))
        .await;
    assert_refused(&r, 401, "digest_mismatch");
    let old = Cavage {
        age: 3600,
        ..Cavage::default()
    };
    let r = client
        .send(old.sign("POST", gw.url("/legacy/x"), body))
        .await;
    assert_refused(&r, 401, "signature_expired");
    let mut req = Cavage::default().sign("POST", gw.url("/legacy/x"), body);
    *req.method_mut() = Method::PUT;
    assert_refused(&client.send(req).await, 401, "invalid_signature");
    assert_eq!(upstream.hits(), 3);
    gw.shutdown().await;
}

/// A legacy signature carries no nonce: the signature itself is remembered, and the same
/// request sent again is a replay.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_legacy_signature_is_refused() {
    let on = format!("{KEYS}\nlegacy = {{ enabled = true }}");
    let (upstream, gw) = setup(&[("legacy", &on, GRANTS)]).await;
    let client = TestClient::default();
    let body = "{\"n\": 1}";
    let req = Cavage::default().sign("POST", gw.url("/legacy/pay"), body);
    let again = copy(&req, body);
    assert_eq!(client.send(req).await.status, 200);
    assert_refused(&client.send(again).await, 401, "replayed");
    assert_eq!(upstream.hits(), 1);
    gw.shutdown().await;
}
