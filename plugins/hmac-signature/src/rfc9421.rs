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
    let component = |name: &str| {
        if name.starts_with('@') {
            components::derived(request, name).map(String::into_bytes)
        } else {
            components::field(request, name)
        }
    };
    parse_fields(&input, &signatures, label, component).map(Some)
}

/// [`parse`] on the two fields' values, with `component` giving a covered component's
/// value (`None` when the request has none).
fn parse_fields(
    input: &[u8],
    signatures: &[u8],
    label: Option<&str>,
    component: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Signed, Rejection> {
    let inputs = dictionary("Signature-Input", input)?;
    let signatures = dictionary("Signature", signatures)?;

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
    signed.base = base(inner, &mut signed.covered, component)?;
    Ok(signed)
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
    inner: &InnerList,
    covered: &mut Vec<String>,
    component: impl Fn(&str) -> Option<Vec<u8>>,
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
        let value = component(name).ok_or_else(|| Rejection::MissingComponent(name.to_string()))?;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every component has a value, so that parsing goes as far as it can.
    fn any_component(name: &str) -> Option<Vec<u8>> {
        Some(name.as_bytes().to_vec())
    }

    #[test]
    fn the_rfc_example_parses() {
        // RFC 9421 §2.5 (the covered components and parameters of its example).
        let input = br#"sig1=("@method" "@authority" "@path" "content-digest");created=1618884473;keyid="test-key-rsa-pss""#;
        let signed = parse_fields(input, b"sig1=:AAEC:", None, any_component).unwrap();
        assert_eq!(signed.key_id, "test-key-rsa-pss");
        assert_eq!(signed.created, Some(1_618_884_473));
        assert_eq!(
            signed.covered,
            ["@method", "@authority", "@path", "content-digest"]
        );
        assert_eq!(signed.signature, [0, 1, 2]);
    }

    /// A refusal that blames the request (each of these is a 401).
    fn is_client_error(rejection: &Rejection) -> bool {
        matches!(
            rejection,
            Rejection::Malformed(_)
                | Rejection::MissingSignature
                | Rejection::UnsupportedComponent(_)
                | Rejection::MissingComponent(_)
        )
    }

    /// Signature-Input-like text: members, inner lists, strings, parameters and junk.
    fn input_like() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("sig1=".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just(";".to_string()),
            Just(",".to_string()),
            Just(" ".to_string()),
            Just("=".to_string()),
            Just(":".to_string()),
            "\"[@a-zA-Z0-9 -]{0,12}\"",
            "[a-z@*][a-z0-9_.*-]{0,8}",
            "-?[0-9]{1,20}(\\.[0-9]{1,4})?",
            "\\?[01]",
            ":[A-Za-z0-9+/=]{0,12}:",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(atom, 0..40).prop_map(|atoms| atoms.concat())
    }

    proptest! {
        #[test]
        fn junk_bytes_are_refused_not_a_panic(
            input in prop::collection::vec(any::<u8>(), 0..200),
            signature in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            if let Err(rejection) = parse_fields(&input, &signature, None, any_component) {
                prop_assert!(is_client_error(&rejection), "{rejection:?}");
            }
        }

        #[test]
        fn junk_structured_text_is_refused_not_a_panic(
            input in input_like(),
            signature in input_like(),
            label in prop::option::of("[a-z]{1,4}"),
        ) {
            let result = parse_fields(input.as_bytes(), signature.as_bytes(), label.as_deref(), any_component);
            if let Err(rejection) = result {
                prop_assert!(is_client_error(&rejection), "{rejection:?}");
            }
        }
    }
}
