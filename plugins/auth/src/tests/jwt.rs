//! JWT bearer tokens: the JWS examples of RFC 7515 Appendix A, verified through the
//! filter with the keys the appendix publishes (the HMAC key for A.1, the public keys for
//! A.2 and A.3). Their payload is `{"iss":"joe","exp":1300819380,...}`, so the tests
//! name the consumer by `iss` and run the clock just before that `exp`.

use serde_json::json;
use weir_plugin_sdk::testing::FakeHost;

use super::{accepted, auth, authorized, challenges, refused};
use crate::Auth;

/// The payload every example signs (RFC 7515 A.1.1), base64url.
const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

/// Its `exp`, in ms.
const EXP_MS: u64 = 1_300_819_380_000;

/// A.1: HS256 with the appendix's symmetric key.
const HS256_JWS_HEADER: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
const HS256_SIGNATURE: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const HS256_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// A.2: RS256, and the RSA public key's modulus (the exponent is AQAB).
const RS256_JWS_HEADER: &str = "eyJhbGciOiJSUzI1NiJ9";
const RS256_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const RSA_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

/// A.3: ES256, and the P-256 public key's coordinates.
const ES256_JWS_HEADER: &str = "eyJhbGciOiJFUzI1NiJ9";
const ES256_SIGNATURE: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

fn token(header: &str, signature: &str) -> String {
    format!("{header}.{PAYLOAD}.{signature}")
}

/// A verifier with the three appendix keys, naming the consumer by `iss`, with no leeway.
fn verifier() -> Auth {
    let jwks = json!({ "keys": [
        { "kty": "oct", "kid": "a1", "alg": "HS256", "k": HS256_KEY },
        { "kty": "RSA", "kid": "a2", "n": RSA_N, "e": "AQAB" },
        { "kty": "EC", "kid": "a3", "crv": "P-256", "x": EC_X, "y": EC_Y } ] });
    auth(json!({ "jwt": { "jwks": jwks, "consumer_claim": "iss", "leeway": "0s" } })).unwrap()
}

#[test]
fn the_appendix_a_examples_verify_before_their_exp() {
    let _host = FakeHost::new().at_ms(EXP_MS - 1_000).install();
    let filter = verifier();
    for (header, signature) in [
        (HS256_JWS_HEADER, HS256_SIGNATURE),
        (RS256_JWS_HEADER, RS256_SIGNATURE),
        (ES256_JWS_HEADER, ES256_SIGNATURE),
    ] {
        let request = authorized(&format!("Bearer {}", token(header, signature)));
        accepted(&filter, &request, "joe", "jwt");
    }
}

#[test]
fn the_examples_expire_at_their_exp() {
    let _host = FakeHost::new().at_ms(EXP_MS).install();
    let request = authorized(&format!(
        "Bearer {}",
        token(HS256_JWS_HEADER, HS256_SIGNATURE)
    ));
    let response = refused(&verifier(), &request, 401, "token_expired");
    assert_eq!(
        challenges(&response),
        [
            "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"the token has expired\""
        ]
    );
}

#[test]
fn a_signature_moved_to_another_algorithm_or_altered_is_refused() {
    let _host = FakeHost::new().at_ms(EXP_MS - 1_000).install();
    let filter = verifier();
    // The RS256 signature under the HS256 header, and the ES256 one under RS256's.
    for (header, signature) in [
        (HS256_JWS_HEADER, RS256_SIGNATURE),
        (RS256_JWS_HEADER, ES256_SIGNATURE),
    ] {
        let request = authorized(&format!("Bearer {}", token(header, signature)));
        refused(&filter, &request, 401, "invalid_token");
    }
    let altered = HS256_SIGNATURE.replace('d', "e");
    let request = authorized(&format!("Bearer {}", token(HS256_JWS_HEADER, &altered)));
    refused(&filter, &request, 401, "invalid_token");
}

#[test]
fn the_legacy_leeway_key_still_reads_seconds() {
    let _host = FakeHost::new().at_ms(EXP_MS + 30_000).install();
    let jwks = json!({ "keys": [{ "kty": "oct", "k": HS256_KEY }] });
    let config = json!({ "jwt": { "jwks": jwks, "consumer_claim": "iss", "leeway_s": 60 } });
    let request = authorized(&format!(
        "Bearer {}",
        token(HS256_JWS_HEADER, HS256_SIGNATURE)
    ));
    accepted(&auth(config).unwrap(), &request, "joe", "jwt");
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let _host = FakeHost::new().at_ms(EXP_MS - 1_000).install();
    let jwks = json!({ "keys": [{ "kty": "oct", "k": HS256_KEY }] });
    let request = authorized(&format!(
        "Bearer {}",
        token(HS256_JWS_HEADER, HS256_SIGNATURE)
    ));
    let joe = json!({ "jwt": { "jwks": jwks, "consumer_claim": "iss", "issuer": "joe" } });
    accepted(&auth(joe).unwrap(), &request, "joe", "jwt");
    let other = json!({ "jwt": { "jwks": jwks, "consumer_claim": "iss", "issuer": "ann" } });
    refused(&auth(other).unwrap(), &request, 401, "invalid_token");
    // The payload has no `aud`: a configured audience refuses it.
    let aud = json!({ "jwt": { "jwks": jwks, "consumer_claim": "iss", "audience": "api" } });
    refused(&auth(aud).unwrap(), &request, 401, "invalid_token");
}
