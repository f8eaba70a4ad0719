//! RFC 9421 signatures: the `Signature-Input` and `Signature` dictionaries (§4.1, §4.2,
//! parsed as structured fields by `sfv`) and the signature base (§2.5).

use sfv::{BareItem, Dictionary, InnerList, ItemSerializer, ListEntry, ListSerializer, Parser};
use weir_plugin_sdk::Request;

use crate::components::{self, DERIVED};
use crate::rejection::Rejection;
use crate::signed::{Format, Signed};

/// The signature labelled `label` (by default the first in `Signature-Input`), with its
/// signature base; `None` when the request has no `Signature-Input`.
pub fn parse(request: &Request, label: Option<&str>) -> Result<Option<Signed>, Rejection> {
    let Some(input) = components::field(request, "signature-input") else {
        return Ok(None);
    };
    let signatures = components::field(request, "signature")
        .ok_or_else(|| malformed("Signature-Input without Signature"))?;
    let inputs = dictionary("Signature-Input", &input)?;
    let signatures = dictionary("Signature", &signatures)?;

    let (label, entry) = match label {
        Some(wanted) => inputs
            .iter()
            .find(|(key, _)| key.as_str() == wanted)
            .ok_or(Rejection::MissingSignature)?,
        None => inputs
            .first()
            .ok_or_else(|| malformed("Signature-Input is empty"))?,
    };
    let ListEntry::InnerList(inner) = entry else {
        return Err(malformed("a Signature-Input member must be an inner list"));
    };
    let signature = match signatures.iter().find(|(key, _)| *key == label) {
        Some((_, ListEntry::Item(item))) => item
            .bare_item
            .as_byte_sequence()
            .ok_or_else(|| malformed("a Signature member must be a byte sequence"))?,
        _ => return Err(malformed("no Signature with the label of Signature-Input")),
    };

    let mut signed = parameters(inner)?;
    signed.signature = signature.to_vec();
    signed.base = base(request, inner, &mut signed.covered)?;
    Ok(Some(signed))
}

/// The signature parameters (§2.3) of an inner list.
fn parameters(inner: &InnerList) -> Result<Signed, Rejection> {
    let mut signed = Signed {
        format: Format::Rfc9421,
        key_id: String::new(),
        algorithm: None,
        covered: Vec::with_capacity(inner.items.len()),
        created: None,
        expires: None,
        nonce: None,
        base: Vec::new(),
        signature: Vec::new(),
    };
    let mut key_id = None;
    for (key, value) in &inner.params {
        match key.as_str() {
            "created" => signed.created = Some(integer("created", value)?),
            "expires" => signed.expires = Some(integer("expires", value)?),
            "nonce" => signed.nonce = Some(string("nonce", value)?),
            "alg" => signed.algorithm = Some(string("alg", value)?),
            "keyid" => key_id = Some(string("keyid", value)?),
            // `tag` and parameters from later registrations are signed through
            // `@signature-params` and need no check here.
            _ => {}
        }
    }
    signed.key_id = key_id.ok_or_else(|| malformed("the signature has no keyid"))?;
    Ok(signed)
}

/// The signature base (§2.5): one line per covered component, then `@signature-params`.
/// Fills `covered` with the component names.
fn base(
    request: &Request,
    inner: &InnerList,
    covered: &mut Vec<String>,
) -> Result<Vec<u8>, Rejection> {
    let mut base = Vec::new();
    for item in &inner.items {
        let name = item
            .bare_item
            .as_string()
            .ok_or_else(|| malformed("a component identifier must be a string"))?
            .as_str();
        let identifier = ItemSerializer::new()
            .bare_item(&item.bare_item)
            .parameters(&item.params)
            .finish();
        // Parameters (`sf`, `key`, `bs`, `req`, `tr`, `name`) change how a value is
        // derived; none is supported, so a parameterised component is refused.
        if !item.params.is_empty() || name.starts_with('@') && !DERIVED.contains(&name) {
            return Err(Rejection::UnsupportedComponent(identifier));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed("a field name must be lower-case"));
        }
        if covered.iter().any(|c| c == name) {
            return Err(malformed("a component is covered twice"));
        }
        let value = if name.starts_with('@') {
            components::derived(request, name).map(String::into_bytes)
        } else {
            components::field(request, name)
        }
        .ok_or_else(|| Rejection::MissingComponent(name.to_string()))?;
        base.extend_from_slice(identifier.as_bytes());
        base.extend_from_slice(b": ");
        base.extend_from_slice(&value);
        base.push(b'\n');
        covered.push(name.to_string());
    }
    base.extend_from_slice(b"\"@signature-params\": ");
    base.extend_from_slice(signature_params(inner).as_bytes());
    Ok(base)
}

/// The `@signature-params` value (§2.3): the inner list serialised again (RFC 8941 §4.1).
fn signature_params(inner: &InnerList) -> String {
    let mut list = ListSerializer::new();
    {
        let mut items = list.inner_list();
        items.items(&inner.items);
        items.finish().parameters(&inner.params);
    }
    // The list has one member, so there is always output.
    list.finish().unwrap_or_default()
}

fn dictionary(field: &str, value: &[u8]) -> Result<Dictionary, Rejection> {
    Parser::new(value).parse::<Dictionary>().map_err(|e| {
        malformed(&format!(
            "{field} is not a structured-field dictionary: {e}"
        ))
    })
}

fn integer(name: &str, value: &BareItem) -> Result<i64, Rejection> {
    value
        .as_integer()
        .map(i64::from)
        .ok_or_else(|| malformed(&format!("{name} must be an integer")))
}

fn string(name: &str, value: &BareItem) -> Result<String, Rejection> {
    value
        .as_string()
        .map(|s| s.as_str().to_string())
        .ok_or_else(|| malformed(&format!("{name} must be a string")))
}

fn malformed(why: &str) -> Rejection {
    Rejection::Malformed(why.to_string())
}
