//! Routes compiled into a matcher when the config loads: hosts lower-cased, methods and
//! header names parsed, so that matching a request allocates nothing.

use http::{HeaderName, HeaderValue, Method, Request};

use crate::config::RouteConfig;
use crate::hygiene::host_of;

/// How a route matches the path.
#[derive(Debug, Clone)]
enum PathMatch {
    Any,
    Exact(String),
    /// A prefix that ends at a segment boundary; stored without a trailing `/`.
    Prefix(String),
}

/// How a route matches the host.
#[derive(Debug, Clone)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

/// One compiled route's conditions.
#[derive(Debug, Clone)]
struct Matcher {
    host: HostMatch,
    path: PathMatch,
    methods: Option<Vec<Method>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The routes of a snapshot, in config order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    matchers: Vec<Matcher>,
}

impl Router {
    /// Compiles the routes; errors name the route.
    pub fn new(routes: &[RouteConfig]) -> anyhow::Result<Self> {
        let matchers = routes.iter().map(compile).collect::<anyhow::Result<_>>()?;
        Ok(Self { matchers })
    }

    /// The index of the first route that matches, if any. `authority` is the request's
    /// canonical authority (`hygiene::request_authority`) and its path is normal.
    pub fn find<B>(&self, request: &Request<B>, authority: Option<&str>) -> Option<usize> {
        let host = authority.map(host_of);
        let path = request.uri().path();
        self.matchers
            .iter()
            .position(|m| m.matches(request, host, path))
    }
}

impl Matcher {
    fn matches<B>(&self, request: &Request<B>, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(h), Some(got)) => got.eq_ignore_ascii_case(h),
            (HostMatch::Suffix(s), Some(got)) => {
                got.len() > s.len()
                    && got.as_bytes()[got.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            _ => false,
        };
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            }
        };
        host_ok
            && path_ok
            && self
                .methods
                .as_ref()
                .is_none_or(|ms| ms.contains(request.method()))
            && self
                .headers
                .iter()
                .all(|(name, value)| request.headers().get_all(name).iter().any(|v| v == value))
    }
}

fn compile(route: &RouteConfig) -> anyhow::Result<Matcher> {
    let m = &route.matches;
    let host = match m.host.as_deref() {
        None | Some("*") => HostMatch::Any,
        // A trailing dot names the same host (`example.com.`); requests lose theirs too.
        Some(h) => match h.trim_end_matches('.').strip_prefix('*') {
            Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
            None => HostMatch::Exact(h.trim_end_matches('.').to_ascii_lowercase()),
        },
    };
    let path = match (&m.path, &m.path_prefix) {
        (Some(p), _) => PathMatch::Exact(p.clone()),
        (None, Some(p)) if p.trim_end_matches('/').is_empty() => PathMatch::Any,
        (None, Some(p)) => PathMatch::Prefix(p.trim_end_matches('/').to_string()),
        (None, None) => PathMatch::Any,
    };
    let methods = match &m.methods {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|s| Method::from_bytes(s.to_ascii_uppercase().as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("route {:?}: bad method: {e}", route.name))?,
        ),
    };
    let headers = m
        .headers
        .iter()
        .map(|(k, v)| {
            Ok((
                HeaderName::from_bytes(k.as_bytes())?,
                HeaderValue::from_str(v)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("route {:?}: bad header match: {e}", route.name))?;
    Ok(Matcher {
        host,
        path,
        methods,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn router(toml: &str) -> Router {
        let text = format!(
            "[server]\nlisten=[\"127.0.0.1:1\"]\nplugins_dir=\".\"\n[upstreams.u]\ntargets=[\"127.0.0.1:2\"]\n{toml}"
        );
        let config = Config::parse(&text, ".".into()).unwrap();
        Router::new(&config.routes).unwrap()
    }

    fn req(method: &str, host: &str, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .body(())
            .unwrap()
    }

    fn find(r: &Router, request: &Request<()>) -> Option<usize> {
        let authority =
            crate::hygiene::request_authority(request.uri(), request.headers(), request.version())
                .unwrap();
        r.find(request, authority.as_deref())
    }

    #[test]
    fn prefix_respects_segments_and_order() {
        let r = router(
            "[[routes]]\nname=\"a\"\nupstream=\"u\"\nmatch={path_prefix=\"/api\"}\n\
             [[routes]]\nname=\"b\"\nupstream=\"u\"\n",
        );
        assert_eq!(find(&r, &req("GET", "x", "/api")), Some(0));
        assert_eq!(find(&r, &req("GET", "x", "/api/v1")), Some(0));
        assert_eq!(find(&r, &req("GET", "x", "/apix")), Some(1));
    }

    #[test]
    fn host_method_exact_path_and_header() {
        let r = router(
            "[[routes]]\nname=\"a\"\nupstream=\"u\"\nmatch={host=\"*.example.com\", path=\"/x\", methods=[\"post\"], headers={x-env=\"canary\"}}\n",
        );
        let mut ok = req("POST", "a.example.com:8080", "/x");
        ok.headers_mut()
            .insert("x-env", HeaderValue::from_static("canary"));
        assert_eq!(find(&r, &ok), Some(0));
        // Case and a trailing dot do not make another host.
        let mut dotted = req("POST", "A.Example.COM.:8080", "/x");
        dotted
            .headers_mut()
            .insert("x-env", HeaderValue::from_static("canary"));
        assert_eq!(find(&r, &dotted), Some(0));
        assert_eq!(find(&r, &req("POST", "a.example.com", "/x")), None);
        let mut wrong_host = req("POST", "example.org", "/x");
        wrong_host
            .headers_mut()
            .insert("x-env", HeaderValue::from_static("canary"));
        assert_eq!(find(&r, &wrong_host), None);
    }
}
