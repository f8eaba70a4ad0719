//! The `xml` mode: JSON ↔ XML, the direction set by the route and each body converted only
//! when its content type says it is the other format. `json-to-xml` lets JSON clients call
//! an XML (or SOAP) upstream; `xml-to-json` lets XML clients call a JSON upstream. The
//! mapping convention is in [`json`].

mod json;
mod soap;
mod tree;

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_plugin_sdk::prelude::*;

use crate::error;
use crate::media::essence;
use crate::params::is_blank;
use json::AsJson;
use soap::{Payload, Version};
use tree::Element;

/// The `xml` mode's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which side speaks XML.
    #[serde(default)]
    direction: Direction,
    /// The root element of the XML the filter writes.
    root: String,
    /// The default namespace (`xmlns`) of that root element.
    namespace: Option<String>,
    /// Wrap the XML the filter writes in a SOAP envelope of this version.
    soap: Option<Version>,
    /// The SOAP action (json-to-xml only).
    soap_action: Option<String>,
    /// Element names read as JSON arrays even when they occur once.
    #[serde(default)]
    arrays: BTreeSet<String>,
}

/// Which side speaks XML.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Direction {
    /// JSON client, XML upstream (the default).
    #[default]
    JsonToXml,
    /// XML client, JSON upstream.
    XmlToJson,
}

/// The `xml` mode.
pub struct Xml {
    config: Config,
}

/// Whether a content type is JSON (`application/json`, `application/*+json`).
fn is_json(content_type: Option<&str>) -> bool {
    essence(content_type).is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

/// Whether a content type is XML (`text/xml`, `application/xml`, `application/*+xml`).
fn is_xml(content_type: Option<&str>) -> bool {
    essence(content_type)
        .is_some_and(|t| t == "text/xml" || t == "application/xml" || t.ends_with("+xml"))
}

impl Xml {
    /// Checks the config.
    pub fn new(config: Config) -> Result<Self, String> {
        if !json::is_xml_name(&config.root) {
            return Err(format!("xml: root {:?} is not an XML name", config.root));
        }
        if config.soap_action.is_some() && !matches!(config.direction, Direction::JsonToXml) {
            return Err("xml: soap_action applies to direction = \"json-to-xml\" only".into());
        }
        Ok(Self { config })
    }

    /// Converts the request body when it is in the client's format.
    pub fn on_request(&self, request: &Request<'_>) -> RequestDecision {
        let content_type = request.header("content-type");
        let body = request.body().unwrap_or_default();
        if is_blank(body) {
            // No body, nothing to convert.
            return RequestDecision::proceed();
        }
        let converted = match self.config.direction {
            Direction::JsonToXml if is_json(content_type.as_deref()) => {
                json::from_json(&self.config.root, body).map(|root| self.xml_changes(root))
            }
            Direction::XmlToJson if is_xml(content_type.as_deref()) => {
                self.json_body(body).map(|json| {
                    RequestChanges::new()
                        .set_body(json)
                        .set_header("content-type", "application/json")
                        .set_header("accept", "application/json")
                })
            }
            // Already in the upstream's format: nothing to convert.
            _ => return RequestDecision::proceed(),
        };
        match converted {
            Ok(changes) => RequestDecision::Continue(
                changes
                    .remove_header("accept-encoding")
                    .set_context(&self.config.root),
            ),
            Err(message) => {
                RequestDecision::Respond(Response::error(400, "invalid_body", &message, request))
            }
        }
    }

    /// Converts the upstream's body when it is in the upstream's format.
    pub fn on_response(
        &self,
        request: &Request<'_>,
        response: &ResponseView<'_>,
    ) -> ResponseDecision {
        let content_type = response.header("content-type");
        let body = response.body().unwrap_or_default();
        if is_blank(body) {
            // No body (a 204, say), nothing to convert.
            return ResponseDecision::proceed();
        }
        let converted = match self.config.direction {
            Direction::JsonToXml if is_xml(content_type.as_deref()) => {
                match tree::parse(body).and_then(soap::unwrap) {
                    Ok(Payload::Fault(fault)) => {
                        return fault_response(fault, request, &self.config.arrays);
                    }
                    Ok(Payload::Message(root)) => Ok((self.as_json(&root), "application/json")),
                    Ok(Payload::Empty) => Ok((b"null".to_vec(), "application/json")),
                    Err(e) => Err(e),
                }
            }
            Direction::XmlToJson if is_json(content_type.as_deref()) => {
                json::from_json(&self.config.root, body)
                    .map(|root| (self.write_xml(root), self.xml_content_type()))
            }
            _ => return ResponseDecision::proceed(),
        };
        match converted {
            Ok((body, content_type)) => ResponseDecision::Continue(
                ResponseChanges::new()
                    .set_body(body)
                    .set_header("content-type", content_type),
            ),
            Err(why) => ResponseDecision::Replace(Response::error(
                502,
                "bad_upstream_body",
                &format!("the upstream's body cannot be converted: {why}"),
                request,
            )),
        }
    }

    /// The request changes that send `root` as the upstream's XML.
    fn xml_changes(&self, root: Element) -> RequestChanges {
        let mut changes = RequestChanges::new()
            .set_body(self.write_xml(root))
            .set_header("accept", "application/xml, text/xml, application/soap+xml");
        match self.config.soap {
            Some(version) => {
                // Both SOAP HTTP bindings send requests with POST.
                changes = changes.set_method("POST");
                for (name, value) in version.headers(self.config.soap_action.as_deref()) {
                    changes = changes.set_header(name, value);
                }
            }
            None => changes = changes.set_header("content-type", self.xml_content_type()),
        }
        changes
    }

    /// The document for `root`: with the namespace, in an envelope when configured.
    fn write_xml(&self, mut root: Element) -> Vec<u8> {
        if let Some(namespace) = &self.config.namespace {
            root.attributes
                .insert(0, ("xmlns".into(), namespace.clone()));
        }
        let document = match self.config.soap {
            Some(version) => version.wrap(root),
            None => root,
        };
        tree::write(&document)
    }

    /// The content type of the XML the filter writes to the client.
    fn xml_content_type(&self) -> &'static str {
        match self.config.soap {
            Some(Version::V11) => "text/xml; charset=utf-8",
            Some(Version::V12) => "application/soap+xml; charset=utf-8",
            None => "application/xml; charset=utf-8",
        }
    }

    /// A client's XML document (in an envelope or not) as JSON.
    fn json_body(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        match tree::parse(body).and_then(soap::unwrap)? {
            Payload::Message(root) => Ok(self.as_json(&root)),
            Payload::Empty => Ok(b"null".to_vec()),
            Payload::Fault(_) => Err("a SOAP fault is not a request".into()),
        }
    }

    /// The JSON for an element's content.
    fn as_json(&self, root: &Element) -> Vec<u8> {
        let arrays = &self.config.arrays;
        // Serialising a tree of strings cannot fail.
        serde_json::to_vec(&AsJson {
            element: root,
            arrays,
        })
        .unwrap_or_default()
    }
}

/// An element's content as a JSON value.
fn json_value(element: &Element, arrays: &BTreeSet<String>) -> Value {
    // Serialising a tree of strings into a value cannot fail.
    serde_json::to_value(AsJson { element, arrays }).unwrap_or_default()
}

/// The error response for a SOAP fault, the fault in `soap_fault`.
fn fault_response(
    fault: soap::Fault,
    request: &Request<'_>,
    arrays: &BTreeSet<String>,
) -> ResponseDecision {
    let mut detail = Map::new();
    detail.insert("code".into(), fault.code.as_str().into());
    detail.insert("reason".into(), fault.reason.as_str().into());
    if let Some(element) = &fault.detail {
        detail.insert("detail".into(), json_value(element, arrays));
    }
    let extra = Map::from_iter([("soap_fault".to_string(), Value::Object(detail))]);
    let message = match fault.reason.as_str() {
        "" => "the upstream answered with a SOAP fault",
        reason => reason,
    };
    ResponseDecision::Replace(error::with_details(
        fault.status(),
        "soap_fault",
        message,
        request,
        extra,
    ))
}
