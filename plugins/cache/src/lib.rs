//! `cache`: HTTP caching for GET and HEAD by the shared-cache rules of RFC 9111, over the
//! gateway's response cache (grant `cache`, and `clock`). The RFC's storage and freshness
//! rules and the merge of a `304` come from `http-cache-semantics`; this filter adds what
//! a gateway needs around them:
//!
//! - **Coalescing**: concurrent misses on one key send one request upstream; the others
//!   wait for its response (the gateway's `fill`).
//! - **Revalidation**: a stale entry with a validator is revalidated with a conditional
//!   request; a `304` refreshes it. A client's own `If-None-Match` / `If-Modified-Since`
//!   is answered `304` from the cache.
//! - **Stale content** (RFC 5861): within `stale-while-revalidate` one request revalidates
//!   while the others get the stale entry; within `stale-if-error` an upstream's 5xx or
//!   failure is answered with the stale entry.
//! - **Penetration and avalanche**: 404s and 410s are cached briefly (`negative_ttl_ms`);
//!   freshness gets a jitter by key, so entries stored together expire apart.
//! - **Invalidation** (RFC 9111 §4.4): a successful POST, PUT, PATCH or DELETE removes the
//!   entry of its target.
//!
//! Every response says what happened in `x-cache`: `HIT`, `MISS`, `STALE`, `REVALIDATED`
//! or `BYPASS`. See `docs/plugins/cache.md`.

mod config;
mod entry;
mod key;
mod rules;
#[cfg(test)]
mod tests;

use http_cache_semantics::{AfterResponse, CacheOptions, CachePolicy};
use serde::{Deserialize, Serialize};
use weir_plugin_sdk::Header;
use weir_plugin_sdk::host::cache::{self, Turn};
use weir_plugin_sdk::host::clock;
use weir_plugin_sdk::prelude::*;

pub use config::Config;
use entry::Entry;

/// Fields a stored response never keeps: hop-by-hop fields (RFC 9111 §3.1), fields about
/// this one transfer, and `Age`, which is computed on each hit.
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "age",
    "set-cookie",
    "x-cache",
];

/// Fields a `304` carries from the entry (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
];

/// What the request side left for the response side.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    key: String,
    mode: Mode,
    /// The request's fields for the RFC's rules (`Vary`, `Authorization`, `Cache-Control`),
    /// `Cookie` and `Authorization` by presence only.
    fields: Vec<(String, String)>,
    /// The client's own preconditions, kept from the upstream so that a full response
    /// comes back to store.
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

/// Why the request went upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Mode {
    /// It fills the key (nothing was stored).
    Fill,
    /// It revalidates a stale entry (its fill).
    Revalidate,
    /// It goes without filling (another request fills, or the key is passed).
    Pass,
    /// A write: a success removes the entry of its target.
    Invalidate,
}

/// The filter: its config.
pub struct Cache {
    config: Config,
    options: CacheOptions,
}

impl Filter for Cache {
    type Config = Config;
    const NAME: &'static str = "cache";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::ResponseBody];

    fn new(config: Config) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            config,
            options: CacheOptions {
                shared: true,
                ..CacheOptions::default()
            },
        })
    }

    fn on_request(&self, request: &Request<'_>) -> RequestDecision {
        let key = key::of(request, &self.config.key);
        match request.method() {
            "GET" | "HEAD" => {}
            "POST" | "PUT" | "PATCH" | "DELETE" => return self.invalidate(key),
            _ => return bypass(),
        }
        let cc = request.header_all("cache-control");
        let authorized = request.header("authorization").is_some();
        if (authorized && !self.config.cache_authorized)
            || rules::directive(&cc, "no-store").is_some()
        {
            return bypass();
        }
        let now = clock::now_ms();
        let forced = self.config.honour_request_no_cache && rules::request_no_cache(request);
        let stored = cache::get(&key)
            .and_then(|bytes| Entry::decode(&bytes))
            .filter(|e| rules::vary_matches(e, request));
        if let Some(entry) = &stored
            && !forced
        {
            if now < entry.fresh_until_ms {
                return RequestDecision::Respond(answer(entry, request, now, "HIT"));
            }
            let revalidating = now < entry.fresh_until_ms + entry.stale_while_revalidate_ms;
            if revalidating && !matches!(cache::fill(&key, 0), Turn::Lead) {
                // Another request revalidates it: this one gets the stale entry now.
                return RequestDecision::Respond(answer(entry, request, now, "STALE"));
            }
            if revalidating {
                return self.upstream(request, key, Mode::Revalidate, stored.as_ref());
            }
        }
        // HEAD is never stored (no body): a HEAD that missed goes on alone.
        if request.method() == "HEAD" {
            return self.upstream(request, key, Mode::Pass, None);
        }
        match cache::fill(&key, self.config.wait_ms) {
            Turn::Lead if stored.is_some() => {
                self.upstream(request, key, Mode::Revalidate, stored.as_ref())
            }
            Turn::Lead => self.upstream(request, key, Mode::Fill, None),
            Turn::Filled(bytes) => match Entry::decode(&bytes)
                .filter(|e| rules::vary_matches(e, request) && now < e.fresh_until_ms)
            {
                Some(entry) => RequestDecision::Respond(answer(&entry, request, now, "HIT")),
                None => self.upstream(request, key, Mode::Pass, None),
            },
            Turn::Pass => self.upstream(request, key, Mode::Pass, None),
        }
    }

    fn on_response(&self, request: &Request<'_>, response: &ResponseView<'_>) -> ResponseDecision {
        let Some(pending) = request.context::<Pending>() else {
            return ResponseDecision::proceed();
        };
        let now = clock::now_ms();
        let status = response.status();
        match pending.mode {
            Mode::Invalidate => {
                if (200..400).contains(&status) {
                    // A failure to reach Redis leaves the entry to expire.
                    let _ = cache::delete(&pending.key);
                }
                ResponseDecision::proceed()
            }
            Mode::Pass if status >= 500 => self.stale_if_error(&pending, request, now, false),
            Mode::Pass => miss(),
            Mode::Revalidate if status == 304 => self.refresh(&pending, request, response, now),
            Mode::Fill | Mode::Revalidate if status >= 500 => {
                self.stale_if_error(&pending, request, now, true)
            }
            Mode::Fill | Mode::Revalidate => self.store(&pending, request, response, now),
        }
    }
}

/// A request the cache does not take part in.
fn bypass() -> RequestDecision {
    RequestDecision::Continue(RequestChanges::new().set_response_header("x-cache", "BYPASS"))
}

/// A response from the upstream that was not answered from the cache.
fn miss() -> ResponseDecision {
    ResponseDecision::Continue(ResponseChanges::new().set_header("x-cache", "MISS"))
}

/// The answer from `entry` to `request`: the stored response with its `Age`, or `304` when
/// the request's preconditions say the client has it.
fn answer(entry: &Entry, request: &Request<'_>, now_ms: u64, x_cache: &str) -> Response {
    let inm = request.header("if-none-match");
    let ims = request.header("if-modified-since");
    respond_from(
        entry,
        (inm.as_deref(), ims.as_deref()),
        request.method() == "HEAD",
        now_ms,
        x_cache,
    )
}

/// The response from `entry`, given the client's preconditions.
fn respond_from(
    entry: &Entry,
    (inm, ims): (Option<&str>, Option<&str>),
    head: bool,
    now_ms: u64,
    x_cache: &str,
) -> Response {
    let not_modified = rules::not_modified(inm, ims, entry);
    let mut response = Response::new(if not_modified { 304 } else { entry.status });
    for (name, value) in &entry.headers {
        if !not_modified || NOT_MODIFIED_FIELDS.contains(&name.as_str()) {
            response = response.header(name, value.clone());
        }
    }
    response = response
        .header("age", entry.age_s(now_ms).to_string())
        .header("x-cache", x_cache);
    if !not_modified && !head {
        response = response.body(entry.body.clone());
    }
    response
}

impl Cache {
    /// A write on its way: on success its target's entry is removed (RFC 9111 §4.4).
    fn invalidate(&self, key: String) -> RequestDecision {
        let pending = Pending {
            key,
            mode: Mode::Invalidate,
            fields: Vec::new(),
            if_none_match: None,
            if_modified_since: None,
        };
        let changes = RequestChanges::new()
            .set_context(&pending)
            .set_response_header("x-cache", "BYPASS");
        RequestDecision::Continue(changes)
    }

    /// Sends the request upstream to fill, revalidate or pass `key`. A fill asks for the
    /// full response (the client's preconditions are kept back and applied to it after);
    /// a revalidation asks with the stored entry's validators.
    fn upstream(
        &self,
        request: &Request<'_>,
        key: String,
        mode: Mode,
        stored: Option<&Entry>,
    ) -> RequestDecision {
        let mut changes = RequestChanges::new();
        let mut pending = Pending {
            key,
            mode,
            // A pass stores nothing: the rules' fields are read for fills only.
            fields: if mode == Mode::Pass { Vec::new() } else { fields(request) },
            if_none_match: None,
            if_modified_since: None,
        };
        if mode != Mode::Pass {
            pending.if_none_match = request.header("if-none-match");
            pending.if_modified_since = request.header("if-modified-since");
            changes = changes
                .remove_header("if-none-match")
                .remove_header("if-modified-since");
        }
        if let (Mode::Revalidate, Some(entry)) = (mode, stored) {
            if let Some(etag) = entry.header("etag") {
                changes = changes.set_header("if-none-match", etag.to_vec());
            }
            if let Some(modified) = entry.header("last-modified") {
                changes = changes.set_header("if-modified-since", modified.to_vec());
            }
        }
        RequestDecision::Continue(changes.set_context(&pending))
    }

    /// The upstream failed: the stale entry, when `stale-if-error` still allows it;
    /// otherwise the failure goes on (and a fill is released, so the next request tries).
    fn stale_if_error(
        &self,
        pending: &Pending,
        request: &Request<'_>,
        now: u64,
        filling: bool,
    ) -> ResponseDecision {
        if filling {
            cache::release(&pending.key, 0);
        }
        let stale = cache::get(&pending.key)
            .and_then(|bytes| Entry::decode(&bytes))
            .filter(|e| now < e.fresh_until_ms + e.stale_if_error_ms);
        match stale {
            Some(entry) => {
                let preconditions = (
                    pending.if_none_match.as_deref(),
                    pending.if_modified_since.as_deref(),
                );
                let head = request.method() == "HEAD";
                ResponseDecision::Replace(respond_from(&entry, preconditions, head, now, "STALE"))
            }
            None => miss(),
        }
    }

    /// A `304` to a revalidation: the stored entry, its headers updated and its freshness
    /// renewed (RFC 9111 §4.3.4).
    fn refresh(
        &self,
        pending: &Pending,
        request: &Request<'_>,
        response: &ResponseView<'_>,
        now: u64,
    ) -> ResponseDecision {
        let stored = cache::get(&pending.key).and_then(|bytes| Entry::decode(&bytes));
        let Some((stored, policy)) = stored.and_then(|e| e.policy().map(|p| (e, p))) else {
            cache::release(&pending.key, 0);
            return miss();
        };
        let req = policy_request(pending, request);
        let res = policy_response(response.status(), &response.headers());
        let AfterResponse::NotModified(policy, parts) =
            policy.after_response(&req, &res, rules::at(now))
        else {
            cache::release(&pending.key, 0);
            return miss();
        };
        let headers: Vec<(String, Vec<u8>)> = (parts.headers.iter())
            .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()))
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let refreshed = self.admit(pending, stored.status, headers, stored.body, (policy, now));
        let entry = match refreshed {
            Some((entry, keep_ms)) => {
                let _ = cache::put(&pending.key, &entry.encode(), keep_ms);
                entry
            }
            None => {
                cache::release(&pending.key, self.config.pass_ms);
                return miss();
            }
        };
        let preconditions = (
            pending.if_none_match.as_deref(),
            pending.if_modified_since.as_deref(),
        );
        ResponseDecision::Replace(respond_from(
            &entry,
            preconditions,
            false,
            now,
            "REVALIDATED",
        ))
    }

    /// A full response to a fill: stored when the RFC and the config allow it, the fill
    /// released otherwise; `304` to a client whose preconditions it meets.
    fn store(
        &self,
        pending: &Pending,
        request: &Request<'_>,
        response: &ResponseView<'_>,
        now: u64,
    ) -> ResponseDecision {
        let mut headers = response.headers();
        let set_cookie = headers.iter().any(|h| h.name == "set-cookie");
        if self.config.cache_set_cookie {
            // Stored without its cookies, the response is judged without them.
            headers.retain(|h| h.name != "set-cookie");
        }
        let req = policy_request(pending, request);
        let res = policy_response(response.status(), &headers);
        let policy = CachePolicy::new_options(&req, &res, rules::at(now), self.options);
        let kept: Vec<(String, Vec<u8>)> = (headers.iter())
            .filter(|h| !NOT_STORED.contains(&h.name.as_str()))
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let body = response.body().map(<[u8]>::to_vec);
        let admitted = match body {
            Some(body) if policy.is_storable() && (!set_cookie || self.config.cache_set_cookie) => {
                self.admit(pending, response.status(), kept, body, (policy, now))
            }
            _ => None,
        };
        let Some((entry, keep_ms)) = admitted else {
            cache::release(&pending.key, self.config.pass_ms);
            return miss();
        };
        let _ = cache::put(&pending.key, &entry.encode(), keep_ms);
        let preconditions = (
            pending.if_none_match.as_deref(),
            pending.if_modified_since.as_deref(),
        );
        if rules::not_modified(preconditions.0, preconditions.1, &entry) {
            return ResponseDecision::Replace(respond_from(
                &entry,
                preconditions,
                false,
                now,
                "MISS",
            ));
        }
        miss()
    }

    /// The entry for a storable response and how long to keep it: freshness from the
    /// policy (or the config's override and defaults), less the key's jitter; kept past
    /// it for the stale windows, and for revalidation when it has a validator. `None` for
    /// what is not worth keeping (`Vary: *`, a `Vary` on credentials, a range, nothing to
    /// keep it for).
    fn admit(
        &self,
        pending: &Pending,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        (policy, now): (CachePolicy, u64),
    ) -> Option<(Entry, u64)> {
        let values = |name: &str| -> Vec<Vec<u8>> {
            (headers.iter())
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let cc = values("cache-control");
        let vary: Vec<String> = (values("vary").iter())
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        let credentials = |n: &String| n == "*" || n == "cookie" || n == "authorization";
        if status == 206 || vary.iter().any(credentials) {
            return None;
        }
        let explicit = ["max-age", "s-maxage"]
            .iter()
            .any(|d| rules::directive(&cc, d).is_some())
            || headers.iter().any(|(n, _)| n == "expires");
        let mut ttl = match self.config.ttl_ms {
            Some(ttl) => ttl,
            None => policy.time_to_live(rules::at(now)).as_millis() as u64,
        };
        if self.config.ttl_ms.is_none()
            && ttl == 0
            && !explicit
            && rules::directive(&cc, "no-cache").is_none()
        {
            ttl = match status {
                404 | 410 => self.config.negative_ttl_ms,
                _ => self.config.default_ttl_ms,
            };
        }
        ttl -= (ttl as f64 * self.config.jitter * key::fraction(&pending.key)) as u64;
        let strict = rules::must_revalidate(&cc);
        let window = |directive: &str, default: u64| match strict {
            true => 0,
            false => rules::seconds_ms(&cc, directive).unwrap_or(default),
        };
        let swr = window(
            "stale-while-revalidate",
            self.config.stale_while_revalidate_ms,
        );
        let sie = window("stale-if-error", self.config.stale_if_error_ms);
        let validated = headers
            .iter()
            .any(|(n, _)| n == "etag" || n == "last-modified");
        let revalidation = if validated {
            self.config.keep_for_revalidation_ms
        } else {
            0
        };
        let keep = ttl + swr.max(sie).max(revalidation);
        if keep == 0 {
            return None;
        }
        let vary = (vary.into_iter())
            .map(|name| {
                let value = (pending.fields.iter())
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_bytes().to_vec());
                (name, value)
            })
            .collect();
        let entry = Entry {
            status,
            headers,
            response_ms: now,
            initial_age_s: policy.age(rules::at(now)).as_secs(),
            fresh_until_ms: now + ttl,
            stale_while_revalidate_ms: swr,
            stale_if_error_ms: sie,
            vary,
            policy: serde_json::to_vec(&policy).ok()?,
            body,
        };
        Some((entry, keep))
    }
}

/// The request's fields the RFC's rules read, as text; `Cookie` and `Authorization` by
/// presence only (they never reach the store).
fn fields(request: &Request<'_>) -> Vec<(String, String)> {
    (request.headers().into_iter())
        .filter_map(|h| {
            let value = match h.name.as_str() {
                "cookie" | "authorization" => "(present)".to_string(),
                _ => String::from_utf8(h.value).ok()?,
            };
            Some((h.name, value))
        })
        .collect()
}

/// The request as the policy reads it: GET of the path, with the kept fields.
fn policy_request(pending: &Pending, request: &Request<'_>) -> http::Request<()> {
    let mut builder = http::Request::get(request.path());
    for (name, value) in &pending.fields {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(()).unwrap_or_default()
}

/// The response as the policy reads it.
fn policy_response(status: u16, headers: &[Header]) -> http::Response<()> {
    let mut builder = http::Response::builder().status(status);
    for h in headers {
        builder = builder.header(h.name.as_str(), h.value.as_slice());
    }
    builder.body(()).unwrap_or_default()
}

export_filter!(Cache);
