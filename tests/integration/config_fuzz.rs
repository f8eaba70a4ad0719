//! The config parser against junk: arbitrary text, and the shipped example config mutated
//! (bytes cut, inserted or replaced, numbers swapped for extreme ones). Whatever comes in,
//! parsing returns an error or a config whose numbers are within their documented bounds;
//! it never panics.

use proptest::prelude::*;
use weir::config::Config;
use weir::config::bounds::{MAX_MS, MAX_WEIGHT};

/// The example config, a valid one with every section in use.
const EXAMPLE: &str = include_str!("../../weir.toml");

/// The repository root, where the example config's relative paths resolve.
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Numbers that break naive code: zero, one past the bounds, the integer limits.
const EXTREMES: [&str; 8] = [
    "0",
    "-1",
    "10001",
    "86400001",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "9223372036854775807",
];

/// One way to damage a config.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the bytes `at..at + len`.
    Cut { at: usize, len: usize },
    /// Insert text at `at`.
    Insert { at: usize, text: String },
    /// Replace the `nth` number in the text by an extreme one.
    Number { nth: usize, extreme: usize },
    /// Repeat the line `nth`.
    DuplicateLine { nth: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Cut { at, len }),
        (any::<usize>(), "[\\[\\]{}=\",.#a-z0-9\\n ]{1,12}")
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 0..EXTREMES.len())
            .prop_map(|(nth, extreme)| Mutation::Number { nth, extreme }),
        any::<usize>().prop_map(|nth| Mutation::DuplicateLine { nth }),
    ]
}

/// The largest char boundary of `text` at or below `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, mutation: &Mutation) {
    match mutation {
        Mutation::Cut { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, start.saturating_add(*len).min(text.len()));
            text.replace_range(start..end, "");
        }
        Mutation::Insert { at, text: insert } => text.insert_str(boundary(text, *at), insert),
        Mutation::Number { nth, extreme } => {
            let numbers: Vec<(usize, usize)> = text
                .char_indices()
                .filter(|&(i, c)| {
                    c.is_ascii_digit() && !text[..i].ends_with(|p: char| p.is_ascii_alphanumeric())
                })
                .map(|(i, _)| {
                    let len = text[i..]
                        .find(|c: char| !c.is_ascii_digit() && c != '_')
                        .unwrap_or(text.len() - i);
                    (i, i + len)
                })
                .collect();
            if let Some(&(start, end)) = numbers.get(nth % numbers.len().max(1)) {
                text.replace_range(start..end, EXTREMES[*extreme]);
            }
        }
        Mutation::DuplicateLine { nth } => {
            let lines: Vec<&str> = text.lines().collect();
            let line = lines[nth % lines.len()].to_string();
            let at = text.find(&line).unwrap_or(0);
            text.insert_str(at, &format!("{line}\n"));
        }
    }
}

/// What a config that parsed must satisfy.
fn within_bounds(config: &Config) {
    for upstream in config.upstreams.values() {
        assert!(upstream.targets.iter().all(|t| t.weight() <= MAX_WEIGHT));
        for ms in [upstream.connect_timeout_ms, upstream.request_timeout_ms] {
            assert!((1..=MAX_MS).contains(&ms), "{ms}");
        }
        if let Some(check) = &upstream.health_check {
            assert!((1..=MAX_MS).contains(&check.interval_ms));
            assert!((1..=MAX_MS).contains(&check.timeout_ms));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        // A failure prints its minimal input; no regression file is written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_is_an_error(text in any::<String>()) {
        prop_assert!(Config::parse(&text, ".".into()).is_err());
    }

    #[test]
    fn arbitrary_toml_shaped_text_is_an_error(text in "(\\[[a-z.]{1,12}\\]\n|[a-z_]{1,10} = [0-9\"\\[\\]{}a-z,]{0,12}\n){0,12}") {
        prop_assert!(Config::parse(&text, ".".into()).is_err());
    }

    #[test]
    fn a_mutated_example_never_panics(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut text = EXAMPLE.to_string();
        for m in &mutations {
            apply(&mut text, m);
        }
        if let Ok(config) = Config::parse(&text, root()) {
            within_bounds(&config);
        }
    }
}

#[test]
fn the_example_itself_parses() {
    let config = Config::parse(EXAMPLE, root()).expect("the example config is valid");
    within_bounds(&config);
}
