//! The normaliser against RFC 3986's own examples and the spellings that walk around a
//! route; property tests for what must hold of every path.

use proptest::prelude::*;

use super::*;
use crate::config::{EscapedSlashes, PathParameters};

fn normal(path: &str) -> Result<String, PathError> {
    PathPolicy::default()
        .normalize(path)
        .map(|p| p.into_owned())
}

#[test]
fn rfc3986_dot_segment_examples() {
    // §5.4.2's abnormal examples that apply to a path alone, and §5.2.4's walk-through.
    assert_eq!(normal("/a/b/c/./../../g").unwrap(), "/a/g");
    assert_eq!(normal("/mid/content=5/../6").unwrap(), "/mid/6");
    assert_eq!(normal("/b/c/../../../g").unwrap(), "/g");
    assert_eq!(normal("/./g").unwrap(), "/g");
    assert_eq!(normal("/b/c/g.").unwrap(), "/b/c/g.");
    assert_eq!(normal("/b/c/..g").unwrap(), "/b/c/..g");
    assert_eq!(normal("/b/c/./g/.").unwrap(), "/b/c/g/");
    assert_eq!(normal("/b/c/g/..").unwrap(), "/b/c/");
    assert_eq!(normal("/").unwrap(), "/");
    assert_eq!(normal("/..").unwrap(), "/");
}

#[test]
fn every_spelling_of_a_path_is_one_path() {
    for spelling in [
        "/x/../auth/me",
        "//auth/me",
        "/%61uth/me",
        "/./auth/me",
        "/auth//me",
        "/%2e%2E/auth/me",
        "/auth/./me",
    ] {
        assert_eq!(normal(spelling).unwrap(), "/auth/me", "{spelling}");
    }
    // Escapes of reserved characters stay escaped, hex digits upper-cased.
    assert_eq!(normal("/a%3fb%2a").unwrap(), "/a%3Fb%2A");
    assert_eq!(normal("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    assert!(matches!(
        PathPolicy::default().normalize("/already/normal"),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
}

#[test]
fn ambiguous_spellings_follow_the_policy() {
    for (path, error) in [
        ("/auth;x/me", PathError::Parameter),
        ("/a%2Fb", PathError::EscapedSlash),
        ("/a%5cb", PathError::EscapedSlash),
        ("/a\\b", PathError::EscapedSlash),
        ("/a%zz", PathError::BadEscape),
        ("/a%4", PathError::BadEscape),
        ("a/b", PathError::NotAbsolute),
    ] {
        assert_eq!(normal(path), Err(error), "{path}");
    }
    let decode = PathPolicy {
        escaped_slashes: EscapedSlashes::Decode,
        path_parameters: PathParameters::Strip,
        merge_slashes: true,
    };
    assert_eq!(decode.normalize("/a%2F..%5Cauth\\me").unwrap(), "/auth/me");
    assert_eq!(
        decode.normalize("/x/..;y/auth;jsessionid=1/me").unwrap(),
        "/auth/me"
    );
    let keep = PathPolicy {
        escaped_slashes: EscapedSlashes::Keep,
        path_parameters: PathParameters::Keep,
        merge_slashes: false,
    };
    assert_eq!(keep.normalize("/a%2fb//c;p").unwrap(), "/a%2Fb//c;p");
    assert_eq!(keep.normalize("/a\\b").unwrap(), "/a%5Cb");
}

#[test]
fn the_query_is_kept_and_the_uri_rebuilt() {
    let mut uri: Uri = "/x/../auth/me?apikey=a%2Fb&x=..".parse().unwrap();
    normalize_uri(&mut uri, &PathPolicy::default()).unwrap();
    assert_eq!(uri, "/auth/me?apikey=a%2Fb&x=..");
}

/// Paths made of the characters that matter to normalisation.
fn tricky_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/"),
            Just("."),
            Just(".."),
            Just("a"),
            Just("%2e"),
            Just("%2E"),
            Just("%61"),
            Just("%2f"),
            Just("%5C"),
            Just("\\"),
            Just(";"),
            Just("%"),
            Just("%3b"),
            Just("~"),
        ],
        0..24,
    )
    .prop_map(|parts| format!("/{}", parts.concat()))
}

fn any_policy() -> impl Strategy<Value = PathPolicy> {
    (0..3u8, 0..3u8, any::<bool>()).prop_map(|(s, p, merge_slashes)| PathPolicy {
        escaped_slashes: [
            EscapedSlashes::Reject,
            EscapedSlashes::Keep,
            EscapedSlashes::Decode,
        ][usize::from(s)],
        path_parameters: [
            PathParameters::Reject,
            PathParameters::Keep,
            PathParameters::Strip,
        ][usize::from(p)],
        merge_slashes,
    })
}

proptest! {
    #[test]
    fn normalising_is_idempotent_and_stays_under_the_root(path in tricky_path(), policy in any_policy()) {
        if let Ok(once) = policy.normalize(&path) {
            prop_assert!(once.starts_with('/'));
            let twice = policy.normalize(&once).expect("a normal path is accepted");
            prop_assert_eq!(&*twice, &*once);
            // No dot segment survives, so nothing can climb above the root upstream.
            prop_assert!(!once.split('/').any(|s| s == "." || s == ".."), "{}", once);
            if policy.merge_slashes {
                prop_assert!(!once.contains("//"));
            }
            // What the router matched is what goes upstream: the URI holds the same path.
            let mut uri: Uri = format!("{once}?q=1").parse().expect("a normal path is a valid URI");
            normalize_uri(&mut uri, &policy).expect("accepted");
            prop_assert_eq!(uri.path(), &*once);
        }
    }

    #[test]
    fn junk_never_panics(path in "\\PC*") {
        let _ = PathPolicy::default().normalize(&path);
    }
}
