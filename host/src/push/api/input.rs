//! Reading a push request: the caller, ids, the query and a JSON body, each checked
//! before anything changes.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};

use super::PushRequest;
use super::refusal::Refusal;
use crate::body::full_body;

/// The longest device id, message id, topic or user.
const MAX_ID: usize = 128;

/// The user an auth filter identified.
pub(in crate::push) fn consumer(request: &PushRequest<'_>) -> Result<String, Refusal> {
    (request.consumer.clone())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "no_consumer",
                "no filter on this route identified the caller (an auth filter sets `consumer`)",
            )
        })
}

/// An id: 1 to 128 bytes of letters, digits and `.`, `_`, `-`, `:`.
pub(in crate::push) fn check_id(what: &'static str, id: &str) -> Result<(), Refusal> {
    let fine = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    match fine {
        true => Ok(()),
        false => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            what,
            format!("{what}: 1 to {MAX_ID} letters, digits or . _ - :"),
        )),
    }
}

/// The request's body (taken from it) as JSON of type `T`, at most `max` bytes.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    request: &mut PushRequest<'_>,
    max: usize,
) -> Result<T, Refusal> {
    let body = std::mem::replace(&mut request.body, full_body(Bytes::new()));
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {max} bytes"),
            ));
        }
        Err(e) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body_failed",
                format!("the body could not be read: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))
}

/// The query parameter `name`, percent-decoding not needed for ids.
pub(in crate::push) fn query(parts: &http::request::Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}
