//! The caller key: which budget a request draws from.

use std::fmt::Write;

use sha2::{Digest, Sha256};
use weir_plugin_sdk::Request;

use weir_plugin_sdk::client_ip::TrustedProxies;

/// Values longer than this enter the key as their SHA-256, so that a client cannot blow up
/// the backend's key size with a long header.
const MAX_PART_LEN: usize = 64;

/// One part of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's IP (see [`TrustedProxies`]).
    ClientIp,
    /// The `consumer` variable set by an auth filter earlier in the chain; falls back to the
    /// client IP for anonymous requests.
    Consumer,
    /// The route's name: one budget for everyone on the route.
    Route,
    /// A request header's value; falls back to the client IP when it is absent.
    Header(String),
}

impl KeyPart {
    /// Parses `client_ip`, `consumer`, `route` or `header:<name>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "client_ip" => Ok(Self::ClientIp),
            "consumer" => Ok(Self::Consumer),
            "route" => Ok(Self::Route),
            _ => match text.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Ok(Self::Header(name.to_ascii_lowercase())),
                _ => Err(format!(
                    "key: unknown part {text:?} (client_ip, consumer, route, header:<name>)"
                )),
            },
        }
    }

    fn label(&self) -> &str {
        match self {
            Self::ClientIp => "ip",
            Self::Consumer => "consumer",
            Self::Route => "route",
            Self::Header(name) => name,
        }
    }
}

/// The key of `request` for `parts`: each part as `label=len:value`, so that no value can
/// be crafted to look like another combination.
pub fn caller_key(parts: &[KeyPart], request: &Request, trusted: &TrustedProxies) -> String {
    let client_ip = || {
        (trusted.of(request)).map_or_else(|| request.client_addr().to_string(), |ip| ip.to_string())
    };
    let mut key = String::new();
    for part in parts {
        let (label, value) = match part {
            KeyPart::ClientIp => ("ip", client_ip()),
            KeyPart::Route => ("route", request.route().to_string()),
            KeyPart::Consumer => match request.variable("consumer") {
                Some(consumer) => ("consumer", consumer.to_string()),
                None => ("ip", client_ip()),
            },
            KeyPart::Header(name) => match request.header_bytes(name) {
                Some(value) => (part.label(), String::from_utf8_lossy(&value).into_owned()),
                None => ("ip", client_ip()),
            },
        };
        push_part(&mut key, label, &value);
    }
    key
}

fn push_part(key: &mut String, label: &str, value: &str) {
    if !key.is_empty() {
        key.push('&');
    }
    if value.len() > MAX_PART_LEN {
        let _ = write!(key, "{label}=#");
        for byte in Sha256::digest(value.as_bytes()) {
            let _ = write!(key, "{byte:02x}");
        }
    } else {
        let _ = write!(key, "{label}={}:{value}", value.len());
    }
}
