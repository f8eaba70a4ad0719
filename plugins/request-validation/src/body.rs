//! The body schema: compiled once by `boon` (JSON Schema draft 2020-12), and its errors
//! turned into violations that name a JSON pointer (RFC 6901) and a keyword.

use std::error::Error;

use boon::{Compiler, Draft, ErrorKind, SchemaIndex, Schemas, UrlLoader, ValidationError};
use serde_json::Value;

use crate::refusal::Violation;

/// Where the schema sits for `boon`: relative references (`#/$defs/item`) resolve against
/// it; nothing is ever fetched from it.
const SCHEMA_URL: &str = "urn:weir:request-validation:body-schema";

/// The loader for every reference outside the schema: none is fetched, so a schema that
/// needs one is refused when the filter is configured.
struct NoRemote;

impl UrlLoader for NoRemote {
    fn load(&self, url: &str) -> Result<Value, Box<dyn Error>> {
        Err(format!("{url} is outside the schema: references are not fetched").into())
    }
}

/// A compiled body schema.
pub struct BodySchema {
    schemas: Schemas,
    index: SchemaIndex,
}

impl BodySchema {
    /// Compiles `schema` (a JSON object or boolean, or a string of JSON text) as draft
    /// 2020-12 unless it names another draft in `$schema`; the schema itself is checked
    /// against its meta-schema.
    pub fn compile(schema: Value, format_assertions: bool) -> Result<Self, String> {
        let schema = match schema {
            Value::String(text) => {
                serde_json::from_str(&text).map_err(|e| format!("the text is not JSON: {e}"))?
            }
            schema => schema,
        };
        if !(schema.is_object() || schema.is_boolean()) {
            return Err("a schema is an object or a boolean".into());
        }
        let mut compiler = Compiler::new();
        compiler.set_default_draft(Draft::V2020_12);
        compiler.use_loader(Box::new(NoRemote));
        if format_assertions {
            compiler.enable_format_assertions();
        }
        let mut schemas = Schemas::new();
        let fail = |e: boon::CompileError| format!("{e:#}");
        compiler.add_resource(SCHEMA_URL, schema).map_err(fail)?;
        let index = compiler.compile(SCHEMA_URL, &mut schemas).map_err(fail)?;
        Ok(Self { schemas, index })
    }

    /// Validates `body`, adding its violations to `into` ordered by field (`boon` walks
    /// properties in no fixed order), stopping past `max` of them.
    pub fn validate(&self, body: &Value, max: usize, into: &mut Vec<Violation>) {
        if let Err(error) = self.schemas.validate(body, self.index) {
            let mut found = Vec::new();
            collect(&error, max, &mut found);
            found.sort_by(|a, b| a.field.cmp(&b.field));
            into.append(&mut found);
        }
    }
}

/// The leaves of `boon`'s error tree, as violations. The tree is walked through the
/// nodes that only group (`$ref`, `allOf`, the schema itself); an `anyOf`, `oneOf` or
/// `not` that failed is reported as itself, as its branches' errors would mislead.
/// `required` and `additionalProperties` name each property, not the object.
fn collect(error: &ValidationError, max: usize, into: &mut Vec<Violation>) {
    if into.len() > max {
        return;
    }
    let at = error.instance_location.to_string();
    let groups = matches!(
        error.kind,
        ErrorKind::Group
            | ErrorKind::Schema { .. }
            | ErrorKind::Reference { .. }
            | ErrorKind::AllOf
    );
    match &error.kind {
        _ if groups && !error.causes.is_empty() => {
            for cause in &error.causes {
                collect(cause, max, into);
            }
        }
        ErrorKind::Required { want } => {
            for property in want {
                let field = child(&at, property);
                into.push(Violation::new(&field, "required", "is required".into()));
            }
        }
        ErrorKind::AdditionalProperties { got } => {
            for property in got {
                let field = child(&at, property);
                let message = "is not allowed".into();
                into.push(Violation::new(&field, "additionalProperties", message));
            }
        }
        kind => into.push(Violation::new(&at, keyword(kind), kind.to_string())),
    }
}

/// The keyword an error kind broke.
fn keyword(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::FalseSchema => "false",
        ErrorKind::RefCycle { .. } => "$ref",
        kind => kind.keyword_path().map_or("schema", |path| path.keyword),
    }
}

/// The pointer to `property` of the object at `parent` (RFC 6901 section 3: `~` is
/// written `~0`, `/` is written `~1`).
fn child(parent: &str, property: &str) -> String {
    format!(
        "{parent}/{}",
        property.replace('~', "~0").replace('/', "~1")
    )
}
