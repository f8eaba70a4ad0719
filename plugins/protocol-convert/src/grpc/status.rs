//! gRPC status codes (grpc/doc/statuscodes.md) and the HTTP status each maps to, as
//! grpc-gateway maps them (`runtime.HTTPStatusFromCode`).

/// Names and HTTP statuses of the codes 0..=16, by code.
const CODES: [(&str, u16); 17] = [
    ("OK", 200),
    ("CANCELLED", 499),
    ("UNKNOWN", 500),
    ("INVALID_ARGUMENT", 400),
    ("DEADLINE_EXCEEDED", 504),
    ("NOT_FOUND", 404),
    ("ALREADY_EXISTS", 409),
    ("PERMISSION_DENIED", 403),
    ("RESOURCE_EXHAUSTED", 429),
    ("FAILED_PRECONDITION", 400),
    ("ABORTED", 409),
    ("OUT_OF_RANGE", 400),
    ("UNIMPLEMENTED", 501),
    ("INTERNAL", 500),
    ("UNAVAILABLE", 503),
    ("DATA_LOSS", 500),
    ("UNAUTHENTICATED", 401),
];

/// A status from `grpc-status`; a code outside the table is `UNKNOWN` (statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status(u32);

impl Status {
    /// Reads a `grpc-status` value: `1*DIGIT` (PROTOCOL-HTTP2.md), no sign or space.
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(value).ok()?.parse().ok().map(Status)
    }

    /// Whether the call succeeded.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The numeric code as received.
    pub fn code(self) -> u32 {
        self.0
    }

    fn entry(self) -> (&'static str, u16) {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| CODES.get(i).copied())
            .unwrap_or(CODES[2])
    }

    /// The code's name (`NOT_FOUND`).
    pub fn name(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status.
    pub fn http_status(self) -> u16 {
        self.entry().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_like_grpc_gateway() {
        let of = |v: &[u8]| Status::parse(v).map(|s| (s.name(), s.http_status()));
        assert_eq!(of(b"0"), Some(("OK", 200)));
        assert_eq!(of(b"3"), Some(("INVALID_ARGUMENT", 400)));
        assert_eq!(of(b"5"), Some(("NOT_FOUND", 404)));
        assert_eq!(of(b"12"), Some(("UNIMPLEMENTED", 501)));
        assert_eq!(of(b"14"), Some(("UNAVAILABLE", 503)));
        assert_eq!(of(b"16"), Some(("UNAUTHENTICATED", 401)));
        assert_eq!(of(b"99"), Some(("UNKNOWN", 500)));
        assert_eq!(of(b"x"), None);
        assert_eq!(of(b"+0"), None);
        assert_eq!(of(b""), None);
    }
}
