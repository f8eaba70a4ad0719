//! The body against its digest: `Content-Digest` (RFC 9530 §2) for RFC 9421 signatures,
//! `Digest` (RFC 3230 §4.3.2) for legacy ones. Every supported algorithm present must
//! match, and at least one must be present.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sfv::{Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use weir_plugin_sdk::Request;

use crate::components;
use crate::rejection::Rejection;
use crate::signed::Format;

/// Checks the request's digest field for `format` against `body`.
pub fn check(format: Format, request: &Request, body: &[u8]) -> Result<(), Rejection> {
    let name = format.digest_component();
    let value = components::field(request, name)
        .ok_or_else(|| Rejection::MissingComponent(name.to_string()))?;
    let digests = match format {
        Format::Rfc9421 => content_digest(&value)?,
        Format::Cavage(_) => legacy_digest(&value)?,
    };
    let mut checked = false;
    for (algorithm, expected) in digests {
        let actual = match algorithm.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if !bool::from(actual.ct_eq(&expected)) {
            return Err(mismatch(&format!(
                "the body does not match its {algorithm} digest"
            )));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(mismatch("no sha-256 or sha-512 digest of the body"))
    }
}

/// The `Content-Digest` dictionary: algorithm → byte sequence (RFC 9530 §2).
fn content_digest(value: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
    let dict: Dictionary = Parser::new(value)
        .parse()
        .map_err(|_| mismatch("Content-Digest is not a structured-field dictionary"))?;
    dict.iter()
        .map(|(key, entry)| match entry {
            ListEntry::Item(item) => item
                .bare_item
                .as_byte_sequence()
                .map(|bytes| (key.as_str().to_string(), bytes.to_vec()))
                .ok_or_else(|| mismatch("a Content-Digest value must be a byte sequence")),
            ListEntry::InnerList(_) => {
                Err(mismatch("a Content-Digest value must be a byte sequence"))
            }
        })
        .collect()
}

/// The `Digest` header: comma-separated `algorithm=base64` (RFC 3230 §4.3.2), algorithm
/// names compared case-insensitively and mapped to the RFC 9530 names.
fn legacy_digest(value: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
    let text = std::str::from_utf8(value).map_err(|_| mismatch("Digest is not text"))?;
    text.split(',')
        .map(|member| {
            let (algorithm, encoded) = member
                .trim()
                .split_once('=')
                .ok_or_else(|| mismatch("a Digest member must be algorithm=value"))?;
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| mismatch("a Digest value must be base64"))?;
            Ok((algorithm.trim().to_ascii_lowercase(), bytes))
        })
        .collect()
}

fn mismatch(why: &str) -> Rejection {
    Rejection::DigestMismatch(why.to_string())
}

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::testing::FakeRequest;

    use super::*;

    /// The content of RFC 9530's examples (Appendix B), with its final newline.
    const CONTENT: &[u8] = b"{\"hello\": \"world\"}\n";

    fn check_field(format: Format, name: &str, value: &str, body: &[u8]) -> Result<(), Rejection> {
        let request = FakeRequest::post("/").header(name, value);
        check(format, &request.view(), body)
    }

    #[test]
    fn the_rfc_9530_examples_match_their_content() {
        let sha256 = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:";
        let sha512 = "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:";
        for value in [sha256, sha512, &format!("{sha256}, {sha512}")] {
            assert_eq!(
                check_field(Format::Rfc9421, "content-digest", value, CONTENT),
                Ok(())
            );
        }
        // B.2: an empty content (the response to a HEAD).
        let empty = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";
        assert_eq!(
            check_field(Format::Rfc9421, "content-digest", empty, b""),
            Ok(())
        );
        // B.3: a partial content (`"world"}` and the newline of a range).
        let partial = "sha-256=:jjcgBDWNAtbYUXI37CVG3gRuGOAjaaDRGpIUFsdyepQ=:";
        assert_eq!(
            check_field(Format::Rfc9421, "content-digest", partial, b"\"world\"}\n"),
            Ok(())
        );
    }

    #[test]
    fn any_mismatch_refuses_even_beside_a_match() {
        let sha256 = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:";
        let wrong512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
        let both = format!("{sha256}, {wrong512}");
        let result = check_field(Format::Rfc9421, "content-digest", &both, CONTENT);
        assert!(matches!(result, Err(Rejection::DigestMismatch(_))));
        // Without the newline, the SHA-512 is the one RFC 9421 Appendix B.2 signs.
        assert_eq!(
            check_field(Format::Rfc9421, "content-digest", wrong512, &CONTENT[..18]),
            Ok(())
        );
        // Only unknown algorithms: nothing was checked.
        let unknown = "md5=:Sd/dVLAcvNLSq16eXua5uQ==:";
        let result = check_field(Format::Rfc9421, "content-digest", unknown, CONTENT);
        assert!(matches!(result, Err(Rejection::DigestMismatch(_))));
    }

    #[test]
    fn the_legacy_digest_header_uses_rfc_3230_names() {
        let value = "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=";
        let result = check_field(Format::Cavage("signature"), "digest", value, &CONTENT[..18]);
        assert_eq!(result, Ok(()));
    }
}
