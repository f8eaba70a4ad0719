//! How a push endpoint says no: a status, a stable code and a message, in the gateway's
//! error format.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use crate::body::{ProxyBody, full_body};
use crate::push::store::StoreError;

/// A refusal: a status, a stable code and a message.
pub(in crate::push) struct Refusal(
    StatusCode,
    pub(in crate::push) &'static str,
    pub(in crate::push) String,
);

impl Refusal {
    /// A refusal with `status`, the stable `code` and `message`.
    pub(in crate::push) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self(status, code, message.into())
    }

    /// The refusal in the gateway's error format: the code in the body and in
    /// `x-weir-error`, with the request id.
    pub(in crate::push) fn response(self, request_id: &str) -> Response<ProxyBody> {
        let body = json!({ "error": self.1, "message": self.2, "request_id": request_id });
        let mut response = json_response(self.0, body.to_string());
        let headers = response.headers_mut();
        headers.insert("x-weir-error", http::HeaderValue::from_static(self.1));
        if let Ok(id) = http::HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", id);
        }
        response
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken => Self::new(StatusCode::CONFLICT, "device_taken", e.to_string()),
            StoreError::Failed(_) => {
                tracing::error!(error = %e, "push store failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the push store failed",
                )
            }
        }
    }
}

/// A response with `status` and the JSON text `body`.
pub(super) fn json_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The device is not one of the caller's (whether another user has it or nobody).
pub(in crate::push) fn unknown_device() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "unknown_device",
        "no such device of this user",
    )
}

/// The endpoint does not serve this method; it serves `allowed`.
pub(super) fn method_not_allowed(allowed: &str) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("allowed: {allowed}"),
    )
}
