//! The drainer of one buffered route: claims due requests from the store and delivers them
//! to the route's upstream, at most `concurrency` at once and `rate` started per second;
//! a failed delivery is retried after a jittered exponential back-off, and after
//! `max_attempts` the request is dead. It follows reloads (the route's latest settings and
//! upstream) and ends when its route goes or the gateway stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body::Body as _;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::entry::Entry;
use super::store::{BufferStore, Claimed, Finished};
use super::{BufferRoute, Lane};
use crate::body::held_body;
use crate::config::{UpstreamProtocol, millis};

/// The response fields a delivered ticket's status keeps.
const KEPT_FIELDS: [&str; 4] = ["content-type", "location", "etag", "last-modified"];

/// Runs the drainer of route `name` until `plan` says the route is gone (`None`) or
/// `stopping` turns true.
pub(super) async fn run(
    name: String,
    store: Arc<dyn BufferStore>,
    lane: Arc<Lane>,
    mut plan: watch::Receiver<Option<Arc<BufferRoute>>>,
    mut stopping: watch::Receiver<bool>,
    poll: Duration,
) {
    let mut bucket = Bucket::default();
    let mut failures = 0u32;
    let mut depth_read: Option<Instant> = None;
    loop {
        if *stopping.borrow() {
            return;
        }
        let Some(route) = plan.borrow_and_update().clone() else {
            return;
        };
        let config = &route.config;
        let free = config
            .concurrency
            .saturating_sub(lane.in_flight.load(Ordering::Relaxed));
        if free == 0 {
            // A delivery ending wakes the lane.
            wait(&lane, &mut plan, &mut stopping, poll).await;
            continue;
        }
        // Claimed only as the rate allows, so that nothing claimed waits on the rate (a
        // claim waiting unrenewed could lapse).
        let allowed = bucket.take(config.rate, free).await;
        let now = crate::time::now_ms();
        let claimed = match store.claim(&name, allowed, config.lease_ms, now).await {
            Ok(claimed) => {
                failures = 0;
                claimed
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(route = %name, error = %e, "buffer: claiming requests failed");
                }
                Vec::new()
            }
        };
        bucket.give_back(allowed - claimed.len());
        if depth_read.is_none_or(|at| at.elapsed() >= poll)
            && let Ok((pending, dead)) = store.depth(&name).await
        {
            depth_read = Some(Instant::now());
            lane.pending.store(pending, Ordering::Relaxed);
            lane.dead_kept.store(dead, Ordering::Relaxed);
        }
        if claimed.is_empty() {
            wait(&lane, &mut plan, &mut stopping, poll).await;
            continue;
        }
        for claim in claimed {
            lane.in_flight.fetch_add(1, Ordering::Relaxed);
            let (store, lane, route, name) =
                (store.clone(), lane.clone(), route.clone(), name.clone());
            tokio::spawn(async move {
                deliver(&name, store.as_ref(), &route, &lane, claim).await;
                lane.in_flight.fetch_sub(1, Ordering::Relaxed);
                lane.settled.notify_waiters();
                lane.wake.notify_one();
            });
        }
    }
}

/// Waits for new work: a local accept, a delivery's end, a reload, the poll interval.
async fn wait(
    lane: &Lane,
    plan: &mut watch::Receiver<Option<Arc<BufferRoute>>>,
    stopping: &mut watch::Receiver<bool>,
    poll: Duration,
) {
    tokio::select! {
        _ = lane.wake.notified() => {}
        _ = tokio::time::sleep(poll) => {}
        _ = plan.changed() => {}
        _ = stopping.changed() => {}
    }
}

/// The rate's token bucket: `rate` tokens a second, holding at most a tenth of a second's
/// worth (at least one).
#[derive(Default)]
struct Bucket {
    /// Tokens, and when they were counted (`None`: full).
    tokens: Option<(f64, Instant)>,
}

impl Bucket {
    /// Waits for a token, then takes as many as there are, up to `want` (`want` at once
    /// when `rate` is 0: no limit).
    async fn take(&mut self, rate: u32, want: usize) -> usize {
        if rate == 0 {
            return want;
        }
        let rate = f64::from(rate);
        let cap = (rate / 10.0).max(1.0);
        let mut tokens = self.count(rate, cap);
        if tokens < 1.0 {
            tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / rate)).await;
            tokens = self.count(rate, cap);
        }
        let taken = (tokens.floor() as usize).min(want).max(1);
        self.tokens = Some((tokens - taken as f64, Instant::now()));
        taken
    }

    /// Returns tokens taken and not used.
    fn give_back(&mut self, unused: usize) {
        if let Some((tokens, _)) = &mut self.tokens {
            *tokens += unused as f64;
        }
    }

    fn count(&self, rate: f64, cap: f64) -> f64 {
        match self.tokens {
            None => cap,
            Some((tokens, at)) => (tokens + at.elapsed().as_secs_f64() * rate).min(cap),
        }
    }
}

/// What one attempt came to.
enum Attempt {
    /// The upstream answered with a final status: the ticket's status as JSON.
    Delivered(serde_json::Value),
    /// It failed (a retryable status, a connect failure, a timeout): why.
    Failed(String),
}

/// One delivery of `claim`, its lease renewed meanwhile, and its outcome stored.
async fn deliver(
    name: &str,
    store: &dyn BufferStore,
    route: &BufferRoute,
    lane: &Lane,
    claim: Claimed,
) {
    let config = &route.config;
    let Some(entry) = Entry::decode(&claim.entry) else {
        let status = dead_status(
            &claim.ticket,
            claim.attempts,
            "the stored request is unreadable",
            None,
        );
        end(name, store, lane, &claim, true, status, route).await;
        return;
    };
    // The claim is renewed every third of its lease while the attempt runs.
    let every = millis(config.lease_ms / 3).max(Duration::from_millis(100));
    let attempt = attempt(route, &entry, &claim.ticket);
    let mut attempt = std::pin::pin!(attempt);
    let attempt = loop {
        tokio::select! {
            attempt = &mut attempt => break attempt,
            () = tokio::time::sleep(every) => {
                if let Ok(false) = store.renew(name, &claim).await {
                    tracing::warn!(route = %name, ticket = %claim.ticket, "buffer: a claim was taken over while its delivery ran");
                }
            }
        }
    };
    let attempts = claim.attempts + 1;
    match attempt {
        Attempt::Delivered(response) => {
            let status = json!({
                "ticket": claim.ticket,
                "status": "delivered",
                "attempts": attempts,
                "delivered_at_ms": crate::time::now_ms(),
                "response": response,
            });
            end(name, store, lane, &claim, false, status, route).await;
        }
        Attempt::Failed(error) if attempts >= config.max_attempts => {
            tracing::warn!(route = %name, ticket = %claim.ticket, attempts, %error, "buffer: a request is dead");
            let status = dead_status(&claim.ticket, attempts, &error, Some(&entry));
            end(name, store, lane, &claim, true, status, route).await;
        }
        Attempt::Failed(error) => {
            let at = crate::time::now_ms()
                + backoff(config.backoff_base_ms, config.backoff_max_ms, attempts);
            tracing::debug!(route = %name, ticket = %claim.ticket, attempts, %error, "buffer: delivery retried later");
            match store.retry(name, &claim, attempts, at, error).await {
                Ok(()) => drop(lane.count.retried.fetch_add(1, Ordering::Relaxed)),
                Err(e) => {
                    tracing::warn!(route = %name, error = %e, "buffer: recording a retry failed");
                    store.release(name, &claim);
                }
            }
        }
    }
}

/// Stores a final outcome and counts it.
async fn end(
    name: &str,
    store: &dyn BufferStore,
    lane: &Lane,
    claim: &Claimed,
    dead: bool,
    status: serde_json::Value,
    route: &BufferRoute,
) {
    let finished = Finished {
        dead,
        status: status.to_string(),
        ttl_ms: route.config.ticket_ttl_ms,
        max_dead: route.config.max_dead,
    };
    match store.finish(name, claim, finished).await {
        Ok(true) if dead => drop(lane.count.dead.fetch_add(1, Ordering::Relaxed)),
        Ok(true) => drop(lane.count.delivered.fetch_add(1, Ordering::Relaxed)),
        Ok(false) => {
            tracing::warn!(route = %name, ticket = %claim.ticket, "buffer: a claim was taken over before its outcome was stored");
        }
        Err(e) => {
            tracing::warn!(route = %name, error = %e, "buffer: storing an outcome failed");
            store.release(name, claim);
        }
    }
}

/// A dead ticket's status.
fn dead_status(
    ticket: &str,
    attempts: u32,
    error: &str,
    entry: Option<&Entry>,
) -> serde_json::Value {
    json!({
        "ticket": ticket,
        "status": "dead",
        "attempts": attempts,
        "error": error,
        "dead_at_ms": crate::time::now_ms(),
        "method": entry.map(|e| e.method.as_str()),
        "path": entry.map(|e| e.uri.as_str()),
    })
}

/// The back-off before attempt `attempts + 1`: `base · 2^(attempts-1)` up to `max`, less a
/// random part of up to half (so that requests that failed together do not return
/// together).
fn backoff(base_ms: u64, max_ms: u64, attempts: u32) -> u64 {
    let full = base_ms
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(max_ms);
    full - fastrand::u64(0..=full / 2)
}

/// Sends `entry` to the route's upstream once, within the route's timeout (the response's
/// head and the kept part of its body).
async fn attempt(route: &BufferRoute, entry: &Entry, ticket: &str) -> Attempt {
    let upstream = &route.upstream;
    let mut request = Request::new(held_body(entry.body.clone(), None));
    *request.method_mut() = entry.method.clone();
    match entry.uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(e) => return Attempt::Failed(format!("the stored path does not parse: {e}")),
    }
    *request.version_mut() = match upstream.protocol() {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => http::Version::HTTP_2,
    };
    *request.headers_mut() = entry.headers.clone();
    if let Ok(key) = HeaderValue::from_str(ticket) {
        request.headers_mut().insert("idempotency-key", key);
    }
    let target = match upstream.pick(Vec::new) {
        Ok(target) => target,
        Err(e) => return Attempt::Failed(e.detail),
    };
    let deadline = Instant::now() + route.timeout;
    let sent = match upstream.send(&target, request, route.timeout, None).await {
        Ok(sent) => sent,
        Err(e) => return Attempt::Failed(e.detail),
    };
    let status = sent.response.status().as_u16();
    if route.failures.iter().any(|f| f.matches(status)) {
        return Attempt::Failed(format!("the upstream answered {status}"));
    }
    let (parts, body) = sent.response.into_parts();
    let max = route.config.max_response_bytes;
    let (body, truncated) = match tokio::time::timeout_at(deadline, read_capped(body, max)).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return Attempt::Failed(format!("reading the upstream's body: {e}")),
        Err(_) => return Attempt::Failed("reading the upstream's body: timed out".into()),
    };
    let headers: serde_json::Map<String, serde_json::Value> = KEPT_FIELDS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_string(), value.into()))
        })
        .collect();
    let text = std::str::from_utf8(&body).ok();
    Attempt::Delivered(json!({
        "status": status,
        "headers": headers,
        "body": text,
        "binary": text.is_none() && !body.is_empty(),
        "truncated": truncated,
    }))
}

/// Up to `max` bytes of `body`, and whether there was more (the rest is not read).
async fn read_capped(
    body: crate::upstream::UpstreamBody,
    max: usize,
) -> Result<(Bytes, bool), String> {
    let body = body.streamed(Duration::from_secs(3600));
    let mut body = std::pin::pin!(body);
    let mut kept = bytes::BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if kept.len() + data.len() > max {
                return Ok((Bytes::new(), true));
            }
            kept.extend_from_slice(&data);
        }
    }
    Ok((kept.freeze(), false))
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        for _ in 0..100 {
            let first = backoff(1000, 60_000, 1);
            assert!((500..=1000).contains(&first));
            let third = backoff(1000, 60_000, 3);
            assert!((2000..=4000).contains(&third));
            let late = backoff(1000, 60_000, 40);
            assert!((30_000..=60_000).contains(&late));
        }
    }
}
