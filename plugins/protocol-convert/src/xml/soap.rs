//! SOAP envelopes: SOAP 1.1 (W3C Note, §4 envelope, §4.4 fault, §6 HTTP binding) and SOAP
//! 1.2 (W3C Rec, Part 1 §5 envelope, §5.4 fault; Part 2 §7 HTTP binding).

use serde::Deserialize;

use super::tree::{Element, Node};

/// A SOAP version.
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum Version {
    /// SOAP 1.1: `text/xml`, the action in `SOAPAction`.
    #[serde(rename = "1.1")]
    V11,
    /// SOAP 1.2: `application/soap+xml` with an `action` parameter.
    #[serde(rename = "1.2")]
    V12,
}

impl Version {
    fn namespace(self) -> &'static str {
        match self {
            Self::V11 => "http://schemas.xmlsoap.org/soap/envelope/",
            Self::V12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }

    /// The request headers of this binding: content type, and the action.
    pub fn headers(self, action: Option<&str>) -> Vec<(&'static str, String)> {
        match self {
            // SOAP 1.1 §6.1.1: the header is present, its value a quoted URI (may be "").
            Self::V11 => vec![
                ("content-type", "text/xml; charset=utf-8".into()),
                ("soapaction", format!("\"{}\"", action.unwrap_or_default())),
            ],
            // SOAP 1.2 Part 2 §7.1.4 and RFC 3902: the optional `action` parameter.
            Self::V12 => {
                let action = action
                    .map(|a| format!("; action=\"{a}\""))
                    .unwrap_or_default();
                vec![(
                    "content-type",
                    format!("application/soap+xml; charset=utf-8{action}"),
                )]
            }
        }
    }

    /// `payload` in an envelope's body.
    pub fn wrap(self, payload: Element) -> Element {
        let mut body = Element::new("soap:Body");
        body.children.push(Node::Element(payload));
        let mut envelope = Element::new("soap:Envelope");
        envelope
            .attributes
            .push(("xmlns:soap".into(), self.namespace().into()));
        envelope.children.push(Node::Element(body));
        envelope
    }
}

/// A fault (1.1 `faultcode`/`faultstring`/`detail`, 1.2 `Code/Value`/`Reason/Text`/`Detail`).
#[derive(Debug, PartialEq)]
pub struct Fault {
    /// The code's local name (`Client`, `Server`, `Sender`, `Receiver`, ...).
    pub code: String,
    /// The reason, for people.
    pub reason: String,
    /// The detail element, if any.
    pub detail: Option<Element>,
}

impl Fault {
    /// The HTTP status: the client's fault is a bad request, any other the upstream's. A
    /// SOAP 1.1 code made more specific with dots (`Client.Authentication`, §4.4.1) is a
    /// fault of its first part.
    pub fn status(&self) -> u16 {
        match self.code.split('.').next().unwrap_or_default() {
            "Client" | "Sender" => 400,
            _ => 502,
        }
    }
}

/// What a document carries.
#[derive(Debug, PartialEq)]
pub enum Payload {
    /// The element itself (not an envelope), or the body's first element.
    Message(Element),
    /// An envelope with an empty body.
    Empty,
    /// An envelope whose body is a fault.
    Fault(Fault),
}

/// Takes `root` out of its envelope, if it is one (either version: an `Envelope` in one of
/// their namespaces).
pub fn unwrap(root: Element) -> Result<Payload, String> {
    let soap = |e: &Element, name: &str| {
        e.name == name && e.namespace.is_some() && e.namespace == root.namespace
    };
    let versions = [Version::V11, Version::V12].map(Version::namespace);
    let enveloped = root.name == "Envelope"
        && root
            .namespace
            .as_deref()
            .is_some_and(|ns| versions.contains(&ns));
    if !enveloped {
        return Ok(Payload::Message(root));
    }
    let body = root
        .elements()
        .find(|e| soap(e, "Body"))
        .ok_or("a SOAP envelope without a Body")?;
    let Some(first) = body.elements().next() else {
        return Ok(Payload::Empty);
    };
    if !soap(first, "Fault") {
        return Ok(Payload::Message(first.clone()));
    }
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(first, |e, name| e.child(name))
            .map(Element::text)
            .unwrap_or_default()
    };
    let (code, reason) = match first.child("faultcode") {
        Some(code) => (code.text(), text(&["faultstring"])),
        None => (text(&["Code", "Value"]), text(&["Reason", "Text"])),
    };
    let code = code.rsplit(':').next().unwrap_or_default().to_string();
    let detail = first
        .elements()
        .find(|e| e.name == "detail" || e.name == "Detail")
        .cloned();
    Ok(Payload::Fault(Fault {
        code,
        reason,
        detail,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse;
    use super::*;

    /// The fault an envelope carries; panics if it carries none.
    fn fault_of(envelope: &[u8]) -> Fault {
        match unwrap(parse(envelope).unwrap()).unwrap() {
            Payload::Fault(fault) => fault,
            _ => panic!("a fault"),
        }
    }

    #[test]
    fn unwraps_bodies_and_faults_of_both_versions() {
        let v11 =
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode>s:Client</faultcode><faultstring>no such user</faultstring>
            <detail><id>7</id></detail></s:Fault></s:Body></s:Envelope>"#;
        let fault = fault_of(v11);
        assert_eq!(
            (fault.code.as_str(), fault.reason.as_str()),
            ("Client", "no such user")
        );
        assert_eq!(fault.status(), 400);
        assert_eq!(fault.detail.unwrap().child("id").unwrap().text(), "7");

        let v12 = br#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>
            <env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code>
            <env:Reason><env:Text xml:lang="en">down</env:Text></env:Reason></env:Fault>
            </env:Body></env:Envelope>"#;
        let fault = fault_of(v12);
        assert_eq!(
            (fault.code.as_str(), fault.reason.as_str()),
            ("Receiver", "down")
        );
        assert_eq!(fault.status(), 502);

        let message = Version::V12.wrap(Element::new("Ping"));
        let read = parse(&super::super::tree::write(&message)).unwrap();
        assert_eq!(unwrap(read), Ok(Payload::Message(Element::new("Ping"))));
    }
}
