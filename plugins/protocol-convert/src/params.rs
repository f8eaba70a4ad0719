//! The arguments of a converted call, as one JSON object: the request's JSON body (an
//! object), then the query parameters, then the path variables — a later source wins on
//! a name clash. A repeated query parameter becomes an array. Path and query values are
//! text; the caller's `typed` turns each into the JSON value its target expects.

use serde_json::{Map, Value};

use crate::template::Vars;

/// Why the arguments could not be built; a client error.
#[derive(Debug, PartialEq)]
pub struct Invalid(pub String);

/// Whether a body is empty or only whitespace: no body, as far as conversion goes.
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Builds the arguments. `typed(name, text)` converts one path or query value.
pub fn collect(
    body: Option<&[u8]>,
    query: Option<&str>,
    vars: Vars,
    typed: impl Fn(&str, String) -> Result<Value, Invalid>,
) -> Result<Map<String, Value>, Invalid> {
    let mut params = match body.filter(|b| !is_blank(b)) {
        None => Map::new(),
        Some(body) => match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Invalid("the body must be a JSON object".into())),
            Err(e) => return Err(Invalid(format!("the body is not valid JSON: {e}"))),
        },
    };
    let mut from_query = Map::new();
    for (name, text) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = typed(&name, text.into_owned())?;
        match from_query.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                from_query.insert(name.into_owned(), value);
            }
        }
    }
    params.extend(from_query);
    for (name, text) in vars {
        let value = typed(&name, text)?;
        params.insert(name, value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(_: &str, t: String) -> Result<Value, Invalid> {
        Ok(Value::String(t))
    }

    #[test]
    fn path_wins_over_query_over_body() {
        let params = collect(
            Some(br#"{"id": 1, "name": "a", "x": true}"#),
            Some("name=b&tag=1&tag=2&tag=3"),
            vec![("id".into(), "7".into())],
            text,
        )
        .unwrap();
        assert_eq!(
            Value::Object(params),
            json!({"id": "7", "name": "b", "x": true, "tag": ["1", "2", "3"]})
        );
    }

    #[test]
    fn refuses_a_body_that_is_not_an_object() {
        assert!(collect(Some(b"[1]"), None, vec![], text).is_err());
        assert!(collect(Some(b"{"), None, vec![], text).is_err());
        assert_eq!(collect(Some(b" \n"), None, vec![], text), Ok(Map::new()));
    }
}
