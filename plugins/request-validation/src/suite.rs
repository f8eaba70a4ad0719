//! Cases of the official JSON-Schema-Test-Suite (draft 2020-12), copied unchanged into
//! `testdata/` with their source: for each keyword the filter's docs promise (`type`,
//! `required`, `properties`, `items`, `minimum`, `maximum`, `pattern`, `enum`,
//! `additionalProperties`, `$ref`, `$defs`), the body schema must accept the valid
//! instances and refuse the invalid ones with at least one violation.

use serde::Deserialize;
use serde_json::Value;

use crate::body::BodySchema;

const SUITE: &str = include_str!("../testdata/json-schema-test-suite-2020-12.json");

#[derive(Deserialize)]
struct Suite {
    files: std::collections::BTreeMap<String, Vec<Group>>,
}

#[derive(Deserialize)]
struct Group {
    description: String,
    schema: Value,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    description: String,
    data: Value,
    valid: bool,
}

#[test]
fn the_suite_cases_pass() {
    let suite: Suite = serde_json::from_str(SUITE).unwrap();
    let mut cases = 0;
    for (file, groups) in &suite.files {
        for group in groups {
            let schema = BodySchema::compile(group.schema.clone(), false)
                .unwrap_or_else(|e| panic!("{file} / {}: {e}", group.description));
            for case in &group.tests {
                let mut violations = Vec::new();
                schema.validate(&case.data, 10, &mut violations);
                let what = format!("{file} / {} / {}", group.description, case.description);
                assert_eq!(violations.is_empty(), case.valid, "{what}: {violations:?}");
                for v in &violations {
                    assert!(!v.rule.is_empty() && !v.message.is_empty(), "{what}: {v:?}");
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 100, "the whole selection ran: {cases}");
}
