//! A small XML element tree, read and written with quick-xml. Reading keeps local names
//! and each element's namespace (prefixes and `xmlns` declarations are dropped: the JSON
//! side has no use for them); writing takes names as given, so that an envelope can carry
//! its prefix.

use quick_xml::Writer;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// An element: its name, attributes in document order, and content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// The local name when read, the qualified name to write.
    pub name: String,
    /// The namespace name when read (the SOAP envelope's, say); not written: `xmlns`
    /// attributes declare namespaces in what is written.
    pub namespace: Option<String>,
    /// Attributes (name, value).
    pub attributes: Vec<(String, String)>,
    /// Child elements and text, in document order.
    pub children: Vec<Node>,
}

/// A piece of element content.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text (character data, CDATA and resolved references).
    Text(String),
}

impl Element {
    /// An element with no attributes or content.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The text content of this element and its descendants, trimmed.
    pub fn text(&self) -> String {
        fn collect(e: &Element, out: &mut String) {
            for node in &e.children {
                match node {
                    Node::Text(t) => out.push_str(t),
                    Node::Element(child) => collect(child, out),
                }
            }
        }
        let mut out = String::new();
        collect(self, &mut out);
        out.trim().to_string()
    }
}

/// How deep elements may nest: the tree is converted and written recursively, and JSON
/// nests no deeper either (serde_json's limit is 128).
const MAX_DEPTH: usize = 128;

/// The local part of a qualified name (`soap:Body` → `Body`).
fn local(name: &[u8]) -> Result<String, String> {
    let local = name.rsplit(|b| *b == b':').next().unwrap_or(name);
    String::from_utf8(local.to_vec()).map_err(|e| e.to_string())
}

/// Reads a document into its root element. Document type declarations are refused, so
/// that no entity is ever expanded beyond XML's five predefined ones.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let (namespace, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let namespace = match namespace {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.0).into_owned()),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
        };
        let finished = match event {
            Event::Start(start) => {
                if open.len() == MAX_DEPTH {
                    return Err(format!("elements are nested deeper than {MAX_DEPTH}"));
                }
                open.push(start_element(&start, namespace)?);
                None
            }
            Event::Empty(start) => Some(start_element(&start, namespace)?),
            Event::End(_) => open.pop(),
            Event::Text(text) => {
                push_text(&mut open, &text.xml_content().map_err(|e| e.to_string())?)?;
                None
            }
            Event::CData(data) => {
                push_text(&mut open, &data.xml_content().map_err(|e| e.to_string())?)?;
                None
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(|e| e.to_string())?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_string()
                    }
                };
                push_text(&mut open, &resolved)?;
                None
            }
            Event::DocType(_) => return Err("document type declarations are not accepted".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => None,
            Event::Eof => break,
        };
        if let Some(done) = finished {
            match open.last_mut() {
                Some(parent) => parent.children.push(Node::Element(done)),
                None if root.is_none() => root = Some(done),
                None => return Err("more than one root element".into()),
            }
        }
    }
    if !open.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

/// An element from a start tag, without `xmlns` declarations. Two attributes whose local
/// names are the same (`a:id`, `b:id`) are refused: they would be one name here.
fn start_element(start: &BytesStart<'_>, namespace: Option<String>) -> Result<Element, String> {
    let mut element = Element::new(local(start.name().as_ref())?);
    element.namespace = namespace;
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = attribute.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let name = local(key)?;
        if element.attributes.iter().any(|(seen, _)| *seen == name) {
            return Err(format!(
                "<{}> has two attributes named {name:?} without their prefixes",
                element.name
            ));
        }
        let value = attribute.unescape_value().map_err(|e| e.to_string())?;
        element.attributes.push((name, value.into_owned()));
    }
    Ok(element)
}

/// Adds text to the open element; text outside the root must be whitespace.
fn push_text(open: &mut [Element], text: &str) -> Result<(), String> {
    match open.last_mut() {
        Some(parent) => match parent.children.last_mut() {
            Some(Node::Text(previous)) => previous.push_str(text),
            _ => parent.children.push(Node::Text(text.to_string())),
        },
        None if text.trim().is_empty() => {}
        None => return Err("text outside the root element".into()),
    }
    Ok(())
}

/// Writes a document: an XML declaration and `root`.
pub fn write(root: &Element) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write_element(&mut writer, root);
    writer.into_inner()
}

fn write_element(writer: &mut Writer<Vec<u8>>, element: &Element) {
    let mut start = BytesStart::new(element.name.as_str());
    for (name, value) in &element.attributes {
        start.push_attribute((name.as_str(), value.as_str()));
    }
    if element.children.is_empty() {
        let _ = writer.write_event(Event::Empty(start));
        return;
    }
    let _ = writer.write_event(Event::Start(start));
    for node in &element.children {
        match node {
            Node::Element(child) => write_element(writer, child),
            Node::Text(text) => {
                let _ = writer.write_event(Event::Text(BytesText::new(text)));
            }
        }
    }
    let _ = writer.write_event(Event::End(BytesEnd::new(element.name.as_str())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_attributes_text_and_references() {
        let doc = br#"<?xml version="1.0"?><s:Root xmlns:s="urn:x" a="1&amp;2"><b>x &lt; y&#33;</b><![CDATA[<raw>]]><c/></s:Root>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Root");
        assert_eq!(root.namespace.as_deref(), Some("urn:x"));
        assert_eq!(root.attributes, vec![("a".into(), "1&2".into())]);
        assert_eq!(root.child("b").unwrap().text(), "x < y!");
        assert_eq!(root.children[1], Node::Text("<raw>".into()));
        assert_eq!(root.child("c"), Some(&Element::new("c")));
    }

    #[test]
    fn refuses_bad_documents() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"<a/><b/>",
            b"",
            b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            b"<a>&x;</a>",
            br#"<a xmlns:p="urn:p" p:k="1" k="2"/>"#,
        ] {
            assert!(parse(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
        let nested = |depth| "<a>".repeat(depth) + &"</a>".repeat(depth);
        assert!(parse(nested(128).as_bytes()).is_ok());
        assert!(parse(nested(129).as_bytes()).is_err());
    }

    #[test]
    fn writes_what_it_reads() {
        let mut root = Element::new("r");
        root.attributes.push(("k".into(), "\"<&>".into()));
        root.children.push(Node::Text("a & b".into()));
        root.children.push(Node::Element(Element::new("e")));
        assert_eq!(parse(&write(&root)).unwrap(), root);
    }
}
