//! The XML ↔ JSON mapping convention, both ways:
//!
//! | XML                                 | JSON                                    |
//! | ----------------------------------- | --------------------------------------- |
//! | `<a>text</a>`                       | `"a": "text"` (text is always a string) |
//! | `<a/>` or `<a></a>`                 | `"a": null`                             |
//! | `<a k="v">text</a>`                 | `"a": {"@k": "v", "#text": "text"}`     |
//! | `<a><b>1</b><c>2</c></a>`           | `"a": {"b": "1", "c": "2"}`             |
//! | `<a><b>1</b><b>2</b></a>`           | `"a": {"b": ["1", "2"]}`                |
//! | one `<b>` whose name is in `arrays` | `"b": ["1"]`                            |
//!
//! An element's text pieces are joined and trimmed, so whitespace-only text between elements
//! disappears; the text of an element that also has children or attributes is `#text`. JSON numbers and booleans become text. Element order
//! is kept both ways (the JSON object's key order gives the XML element order).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::tree::{Element, Node};

/// The key prefix of an attribute.
const ATTRIBUTE: &str = "@";
/// The key of an element's own text.
const TEXT: &str = "#text";

/// An element's content as JSON, serialised straight from the tree (in document order).
pub struct AsJson<'a> {
    /// The element whose content (not name) this is.
    pub element: &'a Element,
    /// Element names that are always arrays.
    pub arrays: &'a BTreeSet<String>,
}

impl Serialize for AsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let element = self.element;
        let text: String = element
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect();
        let text = text.trim();
        let mut groups: Vec<(&str, Vec<&Element>)> = Vec::new();
        for child in element.elements() {
            match groups.iter_mut().find(|(name, _)| *name == child.name) {
                Some((_, members)) => members.push(child),
                None => groups.push((&child.name, vec![child])),
            }
        }
        if element.attributes.is_empty() && groups.is_empty() {
            return match text {
                "" => serializer.serialize_unit(),
                text => serializer.serialize_str(text),
            };
        }
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in &element.attributes {
            map.serialize_entry(&format!("{ATTRIBUTE}{name}"), value)?;
        }
        if !text.is_empty() {
            map.serialize_entry(TEXT, text)?;
        }
        for (name, members) in groups {
            match members.as_slice() {
                [single] if !self.arrays.contains(name) => {
                    map.serialize_entry(name, &self.child(single))?
                }
                all => map.serialize_entry(name, &Siblings(all, self))?,
            }
        }
        map.end()
    }
}

impl<'a> AsJson<'a> {
    /// A child element's content, with the same array names.
    fn child(&self, element: &'a Element) -> Self {
        AsJson {
            element,
            arrays: self.arrays,
        }
    }
}

/// Repeated elements as a JSON array.
struct Siblings<'a, 'b>(&'b [&'a Element], &'b AsJson<'a>);

impl Serialize for Siblings<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for element in self.0 {
            seq.serialize_element(&self.1.child(element))?;
        }
        seq.end()
    }
}

/// Reads a JSON document into an element named `name` (the root the config names).
pub fn from_json(name: &str, json: &[u8]) -> Result<Element, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let element = ElementSeed { name, array: false }
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    match <[Element; 1]>::try_from(element) {
        Ok([element]) => Ok(element),
        Err(_) => Err("the JSON document must be an object or a scalar, not an array".into()),
    }
}

/// Whether `name` is an XML name without a prefix (XML 1.0 §2.3, restricted to the common
/// characters).
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Deserialises a JSON value into the elements named `name` it stands for: one, or one
/// per array item.
struct ElementSeed<'a> {
    name: &'a str,
    /// Inside an array: a nested array has no XML form.
    array: bool,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = Vec<Element>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ElementSeed<'_> {
    fn text<E: de::Error>(self, text: String) -> Result<Vec<Element>, E> {
        let mut element = Element::new(self.name);
        element.children.push(Node::Text(xml_text(text)?));
        Ok(vec![element])
    }
}

/// `text` if XML 1.0 can carry it: only characters of its `Char` production (§2.2), which
/// leaves out most C0 controls, U+FFFE and U+FFFF — not even a reference may stand for them.
fn xml_text<E: de::Error>(text: String) -> Result<String, E> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='\u{fffd}' | '\u{10000}'..);
    match text.chars().find(|c| !allowed(*c)) {
        None => Ok(text),
        Some(c) => Err(E::custom(format!("{c:?} is not a character XML allows"))),
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_> {
    type Value = Vec<Element>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON value for the element {:?}", self.name)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(vec![Element::new(self.name)])
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.text(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.text(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.text(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.text(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.text(v.to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.array {
            return Err(de::Error::custom(format!(
                "{:?}: an array in an array has no XML form",
                self.name
            )));
        }
        let mut elements = Vec::new();
        let seed = || ElementSeed {
            name: self.name,
            array: true,
        };
        while let Some(mut items) = seq.next_element_seed(seed())? {
            elements.append(&mut items);
        }
        Ok(elements)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut element = Element::new(self.name);
        while let Some(key) = map.next_key::<String>()? {
            if let Some(attribute) = key.strip_prefix(ATTRIBUTE) {
                if !is_xml_name(attribute) {
                    return Err(de::Error::custom(format!("{key:?} is not an XML name")));
                }
                let value = map.next_value::<Scalar>()?.0;
                element.attributes.push((attribute.to_string(), value));
            } else if key == TEXT {
                let text = map.next_value::<Scalar>()?.0;
                element.children.push(Node::Text(text));
            } else if is_xml_name(&key) {
                let seed = ElementSeed {
                    name: &key,
                    array: false,
                };
                let children = map.next_value_seed(seed)?;
                element
                    .children
                    .extend(children.into_iter().map(Node::Element));
            } else {
                return Err(de::Error::custom(format!("{key:?} is not an XML name")));
            }
        }
        Ok(vec![element])
    }
}

/// A JSON scalar as text (attribute values and `#text`); `null` is empty text.
struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Null => Ok(Scalar(String::new())),
            serde_json::Value::String(s) => xml_text(s).map(Scalar),
            v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => {
                Ok(Scalar(v.to_string()))
            }
            _ => Err(de::Error::custom(
                "attributes and #text must be strings, numbers, booleans or null",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree;
    use super::*;

    fn to_json(xml: &str, arrays: &[&str]) -> serde_json::Value {
        let root = tree::parse(xml.as_bytes()).unwrap();
        let arrays = arrays.iter().map(|s| s.to_string()).collect();
        serde_json::to_value(AsJson {
            element: &root,
            arrays: &arrays,
        })
        .unwrap()
    }

    #[test]
    fn xml_to_json_follows_the_convention() {
        let json = to_json(
            r#"<r id="7"><name> Ada </name><tag>a</tag><tag>b</tag><empty/><one>x</one>
               <note lang="en">hi</note></r>"#,
            &["one"],
        );
        assert_eq!(
            json,
            serde_json::json!({"@id": "7", "name": "Ada", "tag": ["a", "b"], "empty": null,
                "one": ["x"], "note": {"@lang": "en", "#text": "hi"}})
        );
    }

    #[test]
    fn json_to_xml_keeps_key_order() {
        let root = from_json(
            "r",
            br##"{"z": 1, "@id": 7, "a": [true, null], "n": {"#text": "t", "@k": "v"}}"##,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(tree::write(&root)).unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?><r id="7"><z>1</z><a>true</a><a/><n k="v">t</n></r>"#
        );
    }

    #[test]
    fn json_without_an_xml_form_is_refused() {
        for json in [
            &br#"{"a b": 1}"#[..],
            br#"{"a": [[1]]}"#,
            br#"{"@k": {}}"#,
            b"[1]x",
            b"[1, 2]",
            br#"{"a": "\u0001"}"#,
            br#"{"@k": "\uffff"}"#,
        ] {
            assert!(
                from_json("r", json).is_err(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }
}
