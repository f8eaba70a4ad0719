//! What a refusal says: each broken rule as a [`Violation`], and the one response shape
//! that carries them.

use serde::Serialize;
use weir_plugin_sdk::prelude::*;

/// A message longer than this is cut (it may quote the client's own value).
const MAX_MESSAGE_LEN: usize = 200;

/// One broken rule: the field (`query.limit`, `path.id`, `header.x-api-version`, or a JSON
/// pointer into the body, `/items/0/qty`, `""` for the whole body), the rule (`type`,
/// `required`, `maximum`, …) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where the rule was broken.
    pub field: String,
    /// Which rule.
    pub rule: &'static str,
    /// Why, for people.
    pub message: String,
}

impl Violation {
    /// A violation, its message cut at [`MAX_MESSAGE_LEN`] bytes.
    pub fn new(field: &str, rule: &'static str, mut message: String) -> Self {
        if message.len() > MAX_MESSAGE_LEN {
            let mut end = MAX_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self {
            field: field.to_string(),
            rule,
            message,
        }
    }
}

/// The kinds of refusal, each with its status and stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400 `invalid_request`: a parameter, header or the body broke a rule.
    Invalid,
    /// 411 `length_required`: a body of unknown length where only a declared length can
    /// be judged.
    LengthRequired,
    /// 413 `body_too_large`: the body is over `max_body_bytes` (the gateway's own code).
    TooLarge,
    /// 415 `unsupported_media_type`: the body's `Content-Type` is not allowed.
    MediaType,
}

impl Kind {
    fn status_and_code(self) -> (u16, &'static str) {
        match self {
            Kind::Invalid => (400, "invalid_request"),
            Kind::LengthRequired => (411, "length_required"),
            Kind::TooLarge => (413, "body_too_large"),
            Kind::MediaType => (415, "unsupported_media_type"),
        }
    }
}

/// The refusal in the gateway's error shape (`error`, `message`, `request_id`, and the code
/// in `x-weir-error`), with the broken rules in `errors` (at most `max`, then
/// `errors_truncated: true`). The message is the first violation's.
pub fn respond(kind: Kind, violations: &[Violation], max: usize, request: &Request) -> Response {
    let (status, code) = kind.status_and_code();
    let message = match violations {
        [] => "the request is invalid".to_string(),
        [only] => format!("{}: {}", shown(&only.field), only.message),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more)",
            shown(&first.field),
            first.message,
            rest.len()
        ),
    };
    let shown_errors = &violations[..violations.len().min(max)];
    let mut body = serde_json::json!({
        "error": code,
        "message": message,
        "request_id": request.request_id(),
        "errors": shown_errors,
    });
    if shown_errors.len() < violations.len() {
        body["errors_truncated"] = true.into();
    }
    Response::json(status, body.to_string()).header("x-weir-error", code)
}

/// A field as a message names it: the whole body's empty pointer reads `body`.
fn shown(field: &str) -> &str {
    match field {
        "" => "body",
        field => field,
    }
}
