//! A buffered request as stored: its head after the request filters (hop-by-hop fields
//! gone, forwarding fields and the request id added), its body, and when it was accepted;
//! in a small length-prefixed binary form, since header values and bodies are bytes.
//! And the ticket that names it: 128 random bits, in hex.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The form's version byte.
const VERSION: u8 = 1;

/// A request waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its method.
    pub method: Method,
    /// Its path and query.
    pub uri: String,
    /// Its header fields, as the upstream gets them (but `Idempotency-Key`).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// The request id of the client's request.
    pub request_id: String,
    /// When it was accepted, in ms since the Unix epoch.
    pub accepted_ms: u64,
}

impl Entry {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.body.len() + 32 * self.headers.len());
        out.put_u8(VERSION);
        put(&mut out, self.method.as_str().as_bytes());
        put(&mut out, self.uri.as_bytes());
        put(&mut out, self.request_id.as_bytes());
        out.put_u64(self.accepted_ms);
        out.put_u32(self.headers.len() as u32);
        for (name, value) in &self.headers {
            put(&mut out, name.as_str().as_bytes());
            put(&mut out, value.as_bytes());
        }
        out.extend_from_slice(&self.body);
        out.freeze()
    }

    /// The entry stored as `bytes`; `None` when they are not one.
    pub fn decode(bytes: &Bytes) -> Option<Self> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(1)?[0] != VERSION {
            return None;
        }
        let method = Method::from_bytes(reader.field()?).ok()?;
        let uri = std::str::from_utf8(reader.field()?).ok()?.to_string();
        let request_id = std::str::from_utf8(reader.field()?).ok()?.to_string();
        let accepted_ms = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
        let count = u32::from_be_bytes(reader.take(4)?.try_into().ok()?);
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            let name = HeaderName::from_bytes(reader.field()?).ok()?;
            let value = HeaderValue::from_bytes(reader.field()?).ok()?;
            headers.append(name, value);
        }
        Some(Self {
            method,
            uri,
            headers,
            body: bytes.slice(reader.at..),
            request_id,
            accepted_ms,
        })
    }
}

/// A new ticket: 128 random bits from the OS, in hex (unguessable: it is the only key to
/// a ticket's status).
pub fn new_ticket() -> Option<String> {
    let mut bits = [0u8; 16];
    getrandom::getrandom(&mut bits).ok()?;
    Some(bits.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `text` has the form of a ticket (so that nothing else reaches the store).
pub fn is_ticket(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn put(out: &mut BytesMut, field: &[u8]) {
    out.put_u32(field.len() as u32);
    out.extend_from_slice(field);
}

struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Some(taken)
    }

    fn field(&mut self) -> Option<&[u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written_and_junk_does_not_read() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_bytes(b"\xff2").unwrap());
        let entry = Entry {
            method: Method::PATCH,
            uri: "/orders/7?x=1".into(),
            headers,
            body: Bytes::from_static(b"{\"n\":1}"),
            request_id: "r1".into(),
            accepted_ms: 42,
        };
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes), Some(entry));
        for cut in [0, 1, 5, 20] {
            assert_eq!(Entry::decode(&bytes.slice(..cut)), None);
        }
        assert_eq!(Entry::decode(&Bytes::from_static(b"\x02")), None);
    }

    #[test]
    fn tickets_are_random_hex() {
        let (a, b) = (new_ticket().unwrap(), new_ticket().unwrap());
        assert!(is_ticket(&a) && is_ticket(&b) && a != b);
        assert!(!is_ticket("../etc") && !is_ticket(&a.to_uppercase()));
    }
}
