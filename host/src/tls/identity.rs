//! A client's verified certificate, as filters and upstreams see it: the
//! `X-Forwarded-Client-Cert` field in the format Envoy made common (`Hash`, `Subject`,
//! `URI`, `DNS` pairs), so that a filter in any language reads it as a header.

use http::HeaderValue;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a verified client certificate says of its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's subject, as an RFC 4514 string (`CN=alice,O=Example`).
    pub subject: String,
    /// Its `uniformResourceIdentifier` subject alternative names (SPIFFE IDs among them).
    pub uris: Vec<String>,
    /// Its `dNSName` subject alternative names.
    pub dns: Vec<String>,
    /// The SHA-256 of the certificate's DER, in lower-case hex.
    pub hash: String,
    /// The whole field value, built once per connection.
    pub header: HeaderValue,
}

impl ClientIdentity {
    /// Reads the identity of a certificate the handshake verified; none when the
    /// certificate cannot be parsed (it then is not one the verifier accepted).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject().to_string();
        let (mut uris, mut dns) = (Vec::new(), Vec::new());
        if let Ok(Some(names)) = cert.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push(uri.to_string()),
                    GeneralName::DNSName(name) => dns.push(name.to_string()),
                    _ => {}
                }
            }
        }
        let hash = hex(&Sha256::digest(der));
        let mut field = format!("Hash={hash};Subject={}", quoted(&subject));
        for uri in &uris {
            field.push_str(";URI=");
            field.push_str(&quoted(uri));
        }
        for name in &dns {
            field.push_str(";DNS=");
            field.push_str(&quoted(name));
        }
        let header = HeaderValue::from_str(&field).ok()?;
        Some(Self {
            subject,
            uris,
            dns,
            hash,
            header,
        })
    }
}

/// When the certificate `der` expires (Unix seconds); none when it cannot be parsed.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// `value` as a quoted-string: `"` and `\` escaped, so that `,`, `;` and `=` inside it
/// never split the field.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_would_split_the_field() {
        assert_eq!(quoted(r#"CN=a\"b;c,d"#), r#""CN=a\\\"b;c,d""#);
        assert_eq!(quoted("spiffe://x/y"), "\"spiffe://x/y\"");
    }
}
