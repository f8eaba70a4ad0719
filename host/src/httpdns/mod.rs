//! HttpDNS: a route with `httpdns = true` answers which addresses serve a name — the
//! healthy targets of the upstream `[httpdns.services]` maps it to (or the fleet's own
//! addresses), per the client's region — in Tencent's text grammar or Aliyun-style JSON
//! (`docs/httpdns.md`). Requests may have to be signed. Built once per snapshot; the
//! answer reads target health live.

mod answer;
mod client;
mod query;
mod sign;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use crate::body::{ProxyBody, full_body};
use crate::config::httpdns::{HttpDnsConfig, fleet_address, network};
use crate::error::{ErrorKind, GatewayError};
use crate::time::now_ms;
use crate::upstream::Upstream;

use answer::Record;
use client::{Regions, TrustedProxies};
use query::Query;
pub use sign::Refusal;
use sign::Signing;

/// Where a service's addresses come from.
#[derive(Debug, Clone)]
enum Source {
    /// The available targets of an upstream.
    Upstream(Arc<Upstream>),
    /// `[httpdns] fleet`.
    Fleet,
}

/// A service: its default source and those of its regions.
#[derive(Debug)]
struct Service {
    default: Source,
    regions: BTreeMap<String, Source>,
}

/// The HttpDNS endpoint of one snapshot.
#[derive(Debug, Default)]
pub struct HttpDns {
    services: BTreeMap<String, Service>,
    fleet: Vec<IpAddr>,
    regions: Regions,
    trusted: TrustedProxies,
    signing: Signing,
    ttl_s: u64,
    max_names: usize,
}

/// What a name was answered with, for metrics.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// At least one address.
    Records,
    /// A service with no available address.
    Empty,
    /// A name that is no service.
    Unknown,
}

/// Queries and refusals since start, across snapshots.
#[derive(Debug, Default)]
pub struct HttpDnsCounters {
    answers: [AtomicU64; 3],
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl HttpDnsCounters {
    /// Renders `weir_httpdns_*` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP weir_httpdns_answers_total Names answered by HttpDNS, by answer (records: addresses; empty: a service with no healthy target; unknown: no such service).\n# TYPE weir_httpdns_answers_total counter\n");
        for (answer, n) in ["records", "empty", "unknown"].iter().zip(&self.answers) {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "weir_httpdns_answers_total{{answer=\"{answer}\"}} {n}");
        }
        out.push_str("# HELP weir_httpdns_refused_total HttpDNS requests refused for their signature, by reason.\n# TYPE weir_httpdns_refused_total counter\n");
        for (refusal, n) in Refusal::ALL.iter().zip(&self.refused) {
            let (reason, n) = (refusal.label(), n.load(Ordering::Relaxed));
            let _ = writeln!(out, "weir_httpdns_refused_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

impl HttpDns {
    /// Builds the endpoint from a validated config: `upstreams` are the snapshot's,
    /// `secrets` its resolved `[secrets]`.
    pub fn build(
        config: &HttpDnsConfig,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        secrets: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, String> {
        let source = |name: Option<&str>| match name {
            None => Ok(Source::Fleet),
            Some(name) => (upstreams.get(name).cloned())
                .map(Source::Upstream)
                .ok_or_else(|| format!("httpdns: unknown upstream {name:?}")),
        };
        let mut services = BTreeMap::new();
        for (name, service) in &config.services {
            let (default, regions) = service.sources();
            let regions = (regions.into_iter())
                .map(|(region, upstream)| Ok((region.to_string(), source(Some(upstream))?)))
                .collect::<Result<_, String>>()?;
            let default = source(default)?;
            services.insert(name.clone(), Service { default, regions });
        }
        let keys = (config.keys.iter())
            .map(|(id, secret)| match secrets.get(secret) {
                Some(key) => Ok((id.clone(), key.clone())),
                None => Err(format!("httpdns.keys.{id}: unknown secret {secret:?}")),
            })
            .collect::<Result<_, String>>()?;
        let mut fleet: Vec<IpAddr> = config
            .fleet
            .iter()
            .filter_map(|a| fleet_address(a))
            .collect();
        dedup(&mut fleet);
        Ok(Self {
            services,
            fleet,
            regions: Regions::new(
                (config.regions.iter())
                    .filter_map(|(net, region)| Some((network(net)?, region.clone())))
                    .collect(),
            ),
            trusted: TrustedProxies(
                config
                    .trusted_proxies
                    .iter()
                    .filter_map(|e| network(e))
                    .collect(),
            ),
            signing: Signing {
                keys,
                required: config.require_signature,
                max_expiry_s: config.max_expiry_s,
            },
            ttl_s: config.ttl_s,
            max_names: config.max_names,
        })
    }

    /// Answers a request from `peer` (after the route's filters). Malformed requests are
    /// 400s, refused signatures 403s; every well-formed request is a 200, an unknown name
    /// included (it has no record).
    pub fn answer(
        &self,
        parts: &http::request::Parts,
        peer: IpAddr,
        counters: &HttpDnsCounters,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let accepts_json = (parts.headers.get_all(header::ACCEPT).iter())
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json"));
        let query = Query::parse(
            parts.uri.query().unwrap_or(""),
            accepts_json,
            self.max_names,
        )?;
        let now_s = now_ms() / 1000;
        if let Err(refusal) = self.signing.check(&query.dn, &query.signature, now_s) {
            counters.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
            return Err(refused(refusal));
        }
        let client = (query.ip).unwrap_or_else(|| self.trusted.client_ip(peer, &parts.headers));
        let region = self.regions.of(client);
        let records: Vec<Record> = (query.names.iter())
            .map(|name| {
                let (record, kind) = self.resolve(name, region);
                counters.answers[kind as usize].fetch_add(1, Ordering::Relaxed);
                record
            })
            .collect();
        let (body, content_type) = match query.json {
            true => {
                let json = answer::json(&records, &query, self.ttl_s, client);
                (json.to_string(), "application/json")
            }
            false => {
                let text = answer::text(&records, &query, self.ttl_s, client);
                (text, "text/plain; charset=us-ascii")
            }
        };
        let mut response = Response::new(full_body(Bytes::from(body)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // The answer depends on who asks (the region): no shared cache may keep it.
        let cache = format!("private, max-age={}", self.ttl_s);
        if let Ok(value) = HeaderValue::from_str(&cache) {
            headers.insert(header::CACHE_CONTROL, value);
        }
        Ok(response)
    }

    /// A name's available addresses: those of its region's source when it has any, else
    /// of its default source.
    fn resolve(&self, name: &str, region: Option<&str>) -> (Record, Kind) {
        let Some(service) = self.services.get(name) else {
            return (split(name, Vec::new()), Kind::Unknown);
        };
        let regional = region.and_then(|r| service.regions.get(r));
        let ips = regional
            .map(|source| self.addresses(source))
            .filter(|ips| !ips.is_empty())
            .unwrap_or_else(|| self.addresses(&service.default));
        let kind = if ips.is_empty() {
            Kind::Empty
        } else {
            Kind::Records
        };
        (split(name, ips), kind)
    }

    /// A source's available addresses (IPs only: one healthy target on an IP is enough),
    /// in config order, each once.
    fn addresses(&self, source: &Source) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = match source {
            Source::Fleet => self.fleet.clone(),
            Source::Upstream(upstream) => {
                let now = now_ms();
                (upstream.targets.iter())
                    .filter(|t| t.health.is_available(now))
                    .map(|t| t.addr.ip())
                    .collect()
            }
        };
        dedup(&mut ips);
        ips
    }
}

/// Removes repeated addresses, keeping the first of each.
fn dedup(ips: &mut Vec<IpAddr>) {
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(*ip));
}

/// A record of `ips` split by family.
fn split(name: &str, ips: Vec<IpAddr>) -> Record {
    let (v4, v6) = ips.into_iter().partition(IpAddr::is_ipv4);
    Record {
        name: name.to_string(),
        v4,
        v6,
    }
}

/// The gateway error of a refused signature.
fn refused(refusal: Refusal) -> GatewayError {
    let (kind, detail) = match refusal {
        Refusal::Required => (
            ErrorKind::SignatureRequired,
            "this resolver answers signed requests only",
        ),
        Refusal::Invalid => (
            ErrorKind::InvalidSignature,
            "the signature does not verify, or its key or expiry is not accepted",
        ),
        Refusal::Expired => (ErrorKind::SignatureExpired, "the signature has expired"),
    };
    GatewayError::new(kind, detail)
}
