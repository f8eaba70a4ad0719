//! Legacy signatures of draft-cavage-http-signatures-12 (as sent by Kong `hmac-auth` and
//! APISIX clients): `Authorization: Signature keyId="…",algorithm="hmac-sha256",
//! headers="(request-target) host date digest",signature="…"`, or the same parameters in
//! a `Signature` header. The parameters are not a structured field, so they are parsed here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use weir_plugin_sdk::Request;

use crate::components;
use crate::rejection::Rejection;
use crate::signed::{Format, Signed};

/// The legacy signature of the request with its signing string (§2.3); `None` when the
/// request carries none.
pub fn parse(request: &Request) -> Result<Option<Signed>, Rejection> {
    let Some((header, value)) = locate(request)? else {
        return Ok(None);
    };
    let params = parameters(&value)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| {
        get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| malformed(&format!("{name} must be an integer")))
            })
            .transpose()
    };

    let key_id = get("keyid").ok_or_else(|| malformed("the signature has no keyId"))?;
    let signature = STANDARD
        .decode(get("signature").ok_or_else(|| malformed("the signature has no signature"))?)
        .map_err(|_| malformed("signature must be base64"))?;
    // §2.1.6: without `headers`, only `(created)` is signed.
    let covered = get("headers")
        .unwrap_or("(created)")
        .split_ascii_whitespace();
    let covered: Vec<String> = covered.map(str::to_ascii_lowercase).collect();
    if covered.is_empty() {
        return Err(malformed("headers is empty"));
    }
    let mut signed = Signed {
        format: Format::Cavage(header),
        key_id: key_id.to_string(),
        // §2.1.3: `hs2019` means "as the key says", which is the configured default.
        algorithm: get("algorithm")
            .filter(|a| *a != "hs2019")
            .map(str::to_string),
        covered: Vec::new(),
        created: number("created")?,
        expires: number("expires")?,
        nonce: None,
        base: Vec::new(),
        signature,
    };
    signed.base = signing_string(request, &signed, &covered)?;
    // Parameters count only when signed. Without `(created)`, the signature is dated by
    // its covered `Date` header, as Kong's hmac-auth does.
    if !covered.iter().any(|c| c == "(created)") {
        signed.created = date(request, &covered)?;
    }
    if !covered.iter().any(|c| c == "(expires)") {
        signed.expires = None;
    }
    signed.covered = covered;
    Ok(Some(signed))
}

/// The header holding the parameters: `Authorization` with the `Signature` scheme, else
/// `Signature`.
fn locate(request: &Request<'_>) -> Result<Option<(&'static str, String)>, Rejection> {
    let text = |name| {
        request
            .header_bytes(name)
            .map(|v| {
                String::from_utf8(v).map_err(|_| malformed("the signature header is not text"))
            })
            .transpose()
    };
    if let Some(auth) = text("authorization")?
        && let Some((scheme, params)) = auth.split_once(' ')
        && scheme.eq_ignore_ascii_case("signature")
    {
        return Ok(Some(("authorization", params.to_string())));
    }
    Ok(text("signature")?.map(|v| ("signature", v)))
}

/// The signing string (§2.3): `name: value` lines for the covered headers, joined by `\n`.
fn signing_string(
    request: &Request,
    signed: &Signed,
    covered: &[String],
) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    for (i, name) in covered.iter().enumerate() {
        if covered[..i].contains(name) {
            return Err(malformed("a header is covered twice"));
        }
        let value = match name.as_str() {
            "(request-target)" => format!(
                "{} {}",
                request.method().to_ascii_lowercase(),
                request.path()
            )
            .into_bytes(),
            "(created)" => pseudo("created", signed.created)?,
            "(expires)" => pseudo("expires", signed.expires)?,
            n if n.starts_with('(') => return Err(Rejection::UnsupportedComponent(n.to_string())),
            // Over HTTP/2 the host is the `:authority`.
            "host" => components::field(request, "host")
                .or_else(|| request.authority().map(|a| a.as_bytes().to_vec()))
                .ok_or_else(|| Rejection::MissingComponent("host".into()))?,
            n => components::field(request, n)
                .ok_or_else(|| Rejection::MissingComponent(n.to_string()))?,
        };
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&value);
    }
    Ok(out)
}

fn pseudo(name: &str, value: Option<i64>) -> Result<Vec<u8>, Rejection> {
    value
        .map(|v| v.to_string().into_bytes())
        .ok_or_else(|| malformed(&format!("({name}) is covered but {name} is missing")))
}

/// The covered `Date` header (RFC 9110 §5.6.7) in seconds since the Unix epoch.
fn date(request: &Request, covered: &[String]) -> Result<Option<i64>, Rejection> {
    if !covered.iter().any(|c| c == "date") {
        return Ok(None);
    }
    let date = request
        .header("date")
        .and_then(|d| httpdate::parse_http_date(&d).ok())
        .ok_or_else(|| malformed("Date is not an HTTP date"))?;
    let secs = date
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Some(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// The comma-separated `name=value` parameters (§2.1), names lower-cased, values
/// unquoted; a repeated name is refused.
fn parameters(text: &str) -> Result<Vec<(String, String)>, Rejection> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("a parameter has no value"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || params.iter().any(|(n, _)| *n == name) {
            return Err(malformed("an empty or repeated parameter"));
        }
        let after = after.trim_start();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim_end().to_string(), &after[end..])
            }
        };
        params.push((name, value));
        rest = after.trim_start();
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start();
        } else if !rest.is_empty() {
            return Err(malformed("parameters must be separated by commas"));
        }
    }
    Ok(params)
}

/// A quoted-string's content (RFC 9110 §5.6.4) after its opening quote, and the rest.
fn unquote(text: &str) -> Result<(String, &str), Rejection> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => value.push(
                chars
                    .next()
                    .ok_or_else(|| malformed("unterminated quoted string"))?
                    .1,
            ),
            c => value.push(c),
        }
    }
    Err(malformed("unterminated quoted string"))
}

fn malformed(why: &str) -> Rejection {
    Rejection::Malformed(why.to_string())
}
