//! A stored response, as bytes: what the filter needs to answer from it without
//! decoding the RFC 9111 policy (status, headers, the times, the request's `Vary`
//! values), the policy (for merging a 304), and the body. Length-prefixed fields, so that
//! a hit costs a copy and a few reads.

use http_cache_semantics::CachePolicy;

/// The format's first bytes; an entry written otherwise reads as a miss.
const MAGIC: &[u8; 4] = b"WC1\n";

/// One stored response.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The status.
    pub status: u16,
    /// The headers sent with it (no hop-by-hop field, no `Set-Cookie`, no `Age`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the response arrived, ms since the Unix epoch.
    pub response_ms: u64,
    /// Its age when it arrived, in seconds (RFC 9111 §4.2.3).
    pub initial_age_s: u64,
    /// Until when it is fresh, ms since the Unix epoch.
    pub fresh_until_ms: u64,
    /// How long after that it may be served while one request revalidates it.
    pub stale_while_revalidate_ms: u64,
    /// How long after that it may be served when the upstream fails.
    pub stale_if_error_ms: u64,
    /// The values the storing request had for each field the response's `Vary` names.
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    /// The RFC 9111 policy, as JSON (decoded only to merge a 304).
    pub policy: Vec<u8>,
    /// The body.
    pub body: Vec<u8>,
}

impl Entry {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The policy, decoded.
    pub fn policy(&self) -> Option<CachePolicy> {
        serde_json::from_slice(&self.policy).ok()
    }

    /// Its age at `now_ms`, in seconds.
    pub fn age_s(&self, now_ms: u64) -> u64 {
        self.initial_age_s + now_ms.saturating_sub(self.response_ms) / 1000
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.policy.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        for n in [
            self.response_ms,
            self.initial_age_s,
            self.fresh_until_ms,
            self.stale_while_revalidate_ms,
            self.stale_if_error_ms,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        put_len(&mut out, self.headers.len());
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value);
        }
        put_len(&mut out, self.vary.len());
        for (name, value) in &self.vary {
            put_bytes(&mut out, name.as_bytes());
            out.push(u8::from(value.is_some()));
            put_bytes(&mut out, value.as_deref().unwrap_or_default());
        }
        put_bytes(&mut out, &self.policy);
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads stored bytes; `None` for bytes that are not an entry of this format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes.strip_prefix(MAGIC)?);
        let status = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        let mut times = [0u64; 5];
        for t in &mut times {
            *t = r.u64()?;
        }
        let headers = (0..r.len()?)
            .map(|_| Some((r.text()?, r.bytes()?.to_vec())))
            .collect::<Option<Vec<_>>>()?;
        let vary = (0..r.len()?)
            .map(|_| {
                let name = r.text()?;
                let present = r.take(1)?[0] == 1;
                let value = r.bytes()?.to_vec();
                Some((name, present.then_some(value)))
            })
            .collect::<Option<Vec<_>>>()?;
        let policy = r.bytes()?.to_vec();
        let [response_ms, initial_age_s, fresh_until_ms, swr, sie] = times;
        Some(Self {
            status,
            headers,
            response_ms,
            initial_age_s,
            fresh_until_ms,
            stale_while_revalidate_ms: swr,
            stale_if_error_ms: sie,
            vary,
            policy,
            body: r.0.to_vec(),
        })
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads length-prefixed fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}
