//! `mode = "xml"`: JSON clients against a SOAP 1.1/1.2 server and a plain XML server (both
//! parse what they get with roxmltree and refuse what is not right), and XML clients
//! against a JSON upstream.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::json;
use weir_tests::{TestClient, TestUpstream, post_json, request};

use super::{RecordingServer, gateway, header, route, upstream};

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const DIRECTORY: &str = "urn:weir:directory";

/// What the server saw of one request: its content type, SOAP action and body.
#[derive(Debug, Clone, Default)]
struct Seen {
    content_type: String,
    soap_action: Option<String>,
    body: String,
}

/// The XML server: `/soap11` and `/soap12` serve the `GetUser` operation (user 7 exists,
/// 404 is the client's fault, 401 too (`Client.Authentication` in SOAP 1.1), anything
/// else the server's), `/echo` answers the XML it got,
/// `/text` answers plain text, `/empty` an XML content type with no body.
type XmlServer = RecordingServer<Seen>;

async fn xml_server() -> XmlServer {
    RecordingServer::start(|parts, body| {
        let content_type = header(parts, "content-type").unwrap_or_default();
        let text = String::from_utf8_lossy(body).into_owned();
        let seen = Seen {
            content_type: content_type.clone(),
            soap_action: header(parts, "soapaction"),
            body: text.clone(),
        };
        let reply = match parts.uri.path() {
            "/soap11" if content_type == "text/xml; charset=utf-8" => soap(&text, SOAP11),
            "/soap12"
                if content_type
                    == "application/soap+xml; charset=utf-8; action=\"urn:GetUser\"" =>
            {
                soap(&text, SOAP12)
            }
            "/echo" | "/letter" if content_type.starts_with("application/xml") => {
                roxmltree::Document::parse(&text)
                    .map(|_| (200, "application/xml", text.clone()))
                    .map_err(|e| e.to_string())
            }
            "/text" => Ok((200, "text/plain", "plain".to_string())),
            "/empty" => Ok((200, "application/xml", String::new())),
            _ => Err(format!("unexpected content type {content_type:?}")),
        };
        let (status, content_type, body) = reply.unwrap_or_else(|why| (400, "text/plain", why));
        let response = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        (seen, response)
    })
    .await
}

/// Answers one SOAP request of the version with namespace `ns`: status, content type, body.
fn soap(text: &str, ns: &str) -> Result<(u16, &'static str, String), String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let envelope = doc.root_element();
    if !envelope.has_tag_name((ns, "Envelope")) {
        return Err(format!("not a SOAP envelope in {ns}"));
    }
    let body = envelope
        .children()
        .find(|n| n.has_tag_name((ns, "Body")))
        .ok_or("no Body")?;
    let operation = body
        .children()
        .find(|n| n.is_element())
        .ok_or("empty Body")?;
    if !operation.has_tag_name((DIRECTORY, "GetUser")) {
        return Err(format!("unknown operation {:?}", operation.tag_name()));
    }
    let id = operation
        .children()
        .find(|n| n.has_tag_name((DIRECTORY, "id")))
        .and_then(|n| n.text())
        .ok_or("no id")?;
    let content_type = if ns == SOAP11 {
        "text/xml; charset=utf-8"
    } else {
        "application/soap+xml; charset=utf-8"
    };
    let envelope = |body: String| {
        format!(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="{ns}"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    };
    // SOAP 1.1 §4.4.1: a fault code may be made more specific with dots (`Client.Auth`).
    let fault = |client: bool, reason: &str| {
        let detail = format!("<id>{id}</id>");
        if ns == SOAP11 {
            let code = match (client, id) {
                (true, "401") => "s:Client.Authentication",
                (true, _) => "s:Client",
                (false, _) => "s:Server",
            };
            format!(
                "<s:Fault><faultcode>{code}</faultcode><faultstring>{reason}</faultstring><detail>{detail}</detail></s:Fault>"
            )
        } else {
            let code = if client { "s:Sender" } else { "s:Receiver" };
            format!(
                r#"<s:Fault><s:Code><s:Value>{code}</s:Value></s:Code><s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason><s:Detail>{detail}</s:Detail></s:Fault>"#
            )
        }
    };
    Ok(match id {
        "7" => (
            200,
            content_type,
            envelope(format!(
                r#"<GetUserResponse xmlns="{DIRECTORY}"><user id="7"><name>Ada &amp; Co</name><tag>a</tag><tag>b</tag><manager/></user></GetUserResponse>"#
            )),
        ),
        "404" => (500, content_type, envelope(fault(true, "no such user"))),
        "401" => (500, content_type, envelope(fault(true, "who are you"))),
        _ => (
            500,
            content_type,
            envelope(fault(false, "directory unavailable")),
        ),
    })
}

/// The SOAP routes `/soap11`, `/soap12` and the plain XML routes `/echo`, `/text`, `/empty`,
/// `/letter` (a root named `Envelope` that is not SOAP's).
async fn setup() -> (XmlServer, weir_tests::TestGateway) {
    let server = xml_server().await;
    let soap = |version: &str| {
        format!(
            "{{ mode = \"xml\", root = \"GetUser\", namespace = \"{DIRECTORY}\", soap = \"{version}\", soap_action = \"urn:GetUser\" }}"
        )
    };
    let plain = r#"{ mode = "xml", direction = "json-to-xml", root = "order", arrays = ["line"] }"#;
    let routes = [
        route("soap11", "/soap11", "xml", &soap("1.1"), ""),
        route("soap12", "/soap12", "xml", &soap("1.2"), ""),
        route("echo", "/echo", "xml", plain, ""),
        route("text", "/text", "xml", plain, ""),
        route("empty", "/empty", "xml", plain, ""),
        route(
            "letter",
            "/letter",
            "xml",
            r#"{ mode = "xml", root = "Envelope", namespace = "urn:weir:post" }"#,
            "",
        ),
    ];
    let gw = gateway(&[upstream("xml", server.addr, "")], &routes).await;
    (server, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_client_calls_a_soap_service_in_both_versions() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    for (path, ns) in [("/soap11", SOAP11), ("/soap12", SOAP12)] {
        let r = client.send(post_json(&gw.url(path), r#"{"id": 7}"#)).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(
            r.json(),
            json!({"user": {"@id": "7", "name": "Ada & Co", "tag": ["a", "b"], "manager": null}}),
            "{path}: the Body's element, its root dropped"
        );
        let seen = server.last();
        assert_eq!(
            seen.body,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Body><GetUser xmlns="{DIRECTORY}"><id>7</id></GetUser></soap:Body></soap:Envelope>"#
            ),
            "{path}"
        );
        let action = (ns == SOAP11).then(|| "\"urn:GetUser\"".to_string());
        assert_eq!(
            seen.soap_action, action,
            "{path}: SOAPAction only in SOAP 1.1"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn soap_faults_become_error_statuses() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let cases = [
        ("/soap11", "404", 400, "Client", "no such user"),
        (
            "/soap11",
            "401",
            400,
            "Client.Authentication",
            "who are you",
        ),
        ("/soap11", "500", 502, "Server", "directory unavailable"),
        ("/soap12", "404", 400, "Sender", "no such user"),
        ("/soap12", "500", 502, "Receiver", "directory unavailable"),
    ];
    for (path, id, status, code, reason) in cases {
        let r = client
            .send(post_json(&gw.url(path), &format!(r#"{{"id": "{id}"}}"#)))
            .await;
        assert_eq!(r.status, status, "{path} {id}: {:?}", r.body);
        let body = r.json();
        assert_eq!(body["error"], "soap_fault");
        assert_eq!(body["message"], reason);
        assert_eq!(
            body["soap_fault"],
            json!({"code": code, "reason": reason, "detail": {"id": id}})
        );
    }
    assert_eq!(server.hits(), cases.len());

    // JSON that has no XML form is refused before any call: characters XML 1.0 does not
    // allow (§2.2, not even as references) included.
    let no_xml_form = [
        r#"{"a b": 1}"#,
        r#"{"id": [[1]]}"#,
        "[1, 2]",
        "{",
        r#"{"id": "7\u0001"}"#,
        r##"{"id": {"@k": "\u0000", "#text": "7"}}"##,
        r#"{"id": "\uffff"}"#,
    ];
    for body in no_xml_form {
        let r = client.send(post_json(&gw.url("/soap11"), body)).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["error"], "invalid_body", "{body}");
    }
    assert_eq!(server.hits(), cases.len());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_xml_keeps_order_attributes_and_arrays_both_ways() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let order = r##"{"@id": "5", "customer": {"@vip": true, "#text": "Ada"}, "line": {"sku": "x", "qty": 2}, "note": null, "b": "<&>"}"##;
    let r = client.send(post_json(&gw.url("/echo"), order)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        server.last().body,
        r#"<?xml version="1.0" encoding="UTF-8"?><order id="5"><customer vip="true">Ada</customer><line><sku>x</sku><qty>2</qty></line><note/><b>&lt;&amp;&gt;</b></order>"#,
        "element order is the JSON key order"
    );
    assert_eq!(server.last().content_type, "application/xml; charset=utf-8");
    assert_eq!(
        r.json(),
        json!({"@id": "5", "customer": {"@vip": "true", "#text": "Ada"}, "line": [{"sku": "x", "qty": "2"}], "note": null, "b": "<&>"}),
        "back to JSON: text is text, `line` is always an array"
    );

    // Bodies that are already XML, and answers that are not XML, pass unchanged.
    let xml = r#"<order id="6"/>"#;
    let r = client
        .send(request(
            "POST",
            &gw.url("/echo"),
            &[("content-type", "application/xml")],
            xml,
        ))
        .await;
    assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, xml.as_bytes()));
    let r = client.send(post_json(&gw.url("/text"), "{}")).await;
    assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, &b"plain"[..]));
    assert_eq!(
        server.last().body,
        r#"<?xml version="1.0" encoding="UTF-8"?><order/>"#
    );
    // No body: nothing to convert.
    let r = client.send(post_json(&gw.url("/text"), "")).await;
    assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, &b"plain"[..]));
    assert_eq!(server.last().body, "");
    assert_eq!(server.last().content_type, "application/json");
    let r = client.send(post_json(&gw.url("/empty"), "{}")).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_ref()),
        (200, &b""[..]),
        "no body to convert"
    );
    // An `Envelope` in another namespace than SOAP's is no SOAP envelope.
    let r = client
        .send(post_json(&gw.url("/letter"), r#"{"to": "Ada"}"#))
        .await;
    assert_eq!(
        server.last().body,
        r#"<?xml version="1.0" encoding="UTF-8"?><Envelope xmlns="urn:weir:post"><to>Ada</to></Envelope>"#
    );
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (200, json!({"to": "Ada"})),
        "{:?}",
        r.body
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_xml_client_calls_a_json_upstream() {
    let json_upstream = TestUpstream::start("json").await;
    let config = r#"{ mode = "xml", direction = "xml-to-json", root = "reply", namespace = "urn:weir:echo", arrays = ["item"] }"#;
    let gw = gateway(
        &[upstream("json", json_upstream.addr, "")],
        &[route("orders", "/orders", "json", config, "")],
    )
    .await;
    let client = TestClient::default();
    let xml = r#"<?xml version="1.0"?><order xmlns="urn:x" id="5"><item>a</item><item>b</item><note>x &lt; y</note></order>"#;
    let r = client
        .send(request(
            "POST",
            &gw.url("/orders"),
            &[("content-type", "text/xml")],
            xml,
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the answer is XML");
    let root = doc.root_element();
    assert!(root.has_tag_name(("urn:weir:echo", "reply")), "{text}");
    let child = |name: &str| {
        root.children()
            .find(|n| n.has_tag_name(("urn:weir:echo", name)))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    assert_eq!(child("method").as_deref(), Some("POST"));
    let sent: serde_json::Value = serde_json::from_str(&child("body").unwrap_or_default()).unwrap();
    assert_eq!(
        sent,
        json!({"@id": "5", "item": ["a", "b"], "note": "x < y"}),
        "the upstream got JSON"
    );
    assert!(
        text.contains("<content-type>application/json</content-type>"),
        "{text}"
    );

    // Malformed XML is refused before any call, and so is an element whose attributes
    // share a local name (the JSON would hold the key `@id` twice); a JSON client passes
    // unchanged.
    let hits = json_upstream.hits();
    let refused = [
        "<a><b></a>",
        r#"<a xmlns:p="urn:p" xmlns:q="urn:q" p:id="1" q:id="2"/>"#,
    ];
    for xml in refused {
        let r = client
            .send(request(
                "POST",
                &gw.url("/orders"),
                &[("content-type", "application/xml")],
                xml,
            ))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["error"].as_str()),
            (400, Some("invalid_body")),
            "{xml}: {:?}",
            r.body
        );
    }
    assert_eq!(json_upstream.hits(), hits);
    let r = client
        .send(request(
            "POST",
            &gw.url("/orders"),
            &[("content-type", "application/json")],
            "{}",
        ))
        .await;
    assert_eq!(r.json()["body"], "{}", "not converted: {:?}", r.body);
    gw.shutdown().await;
}
