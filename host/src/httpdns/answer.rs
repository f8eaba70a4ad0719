//! The answer forms. Text is Tencent's `/d` grammar, which its SDKs parse with
//! `(.*),(.*)\|(.*)` and, for a batch line, `(.*)\.:(.*),(.*)\|(.*)`:
//! `ips,ttl[-ips6,ttl6][|clientip]`, addresses joined by `;`, `0` for a family with no
//! record, `<name>.:` before each line of a batch (or with `query=1`), lines joined by
//! `\n`. JSON follows Aliyun's v1 `/d` answer (`host`, `ips`, `ipsv6`, `ttl`,
//! `origin_ttl`, `client_ip`); a batch is `{"dns": [...]}`, one item per name.

use std::fmt::Write;
use std::net::IpAddr;

use super::query::{Family, Query};

/// One name's answer: its addresses of each family (empty for an unknown name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The name as asked (normalised).
    pub name: String,
    /// IPv4 addresses.
    pub v4: Vec<IpAddr>,
    /// IPv6 addresses.
    pub v6: Vec<IpAddr>,
}

/// The text answer. A single name with no record and no `query=1` is the empty body, as
/// Tencent answers a single A query with no record.
pub fn text(records: &[Record], query: &Query, ttl: u64, client: IpAddr) -> String {
    let mut out = String::new();
    if let [record] = records
        && !query.prefixed
        && asked(record, query.family).all(<[IpAddr]>::is_empty)
    {
        return out;
    }
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if query.prefixed {
            let _ = write!(out, "{}.:", record.name);
        }
        for (j, ips) in asked(record, query.family).enumerate() {
            if j > 0 {
                out.push('-');
            }
            part(&mut out, ips, query.ttl.then_some(ttl));
        }
        if query.clientip {
            let _ = write!(out, "|{client}");
        }
    }
    out
}

/// The families asked for, in answer order (IPv4 first).
fn asked(record: &Record, family: Family) -> impl Iterator<Item = &[IpAddr]> {
    let v4 = family.v4().then_some(record.v4.as_slice());
    let v6 = family.v6().then_some(record.v6.as_slice());
    v4.into_iter().chain(v6)
}

/// `a;b,ttl`, or `0` for no record.
fn part(out: &mut String, ips: &[IpAddr], ttl: Option<u64>) {
    if ips.is_empty() {
        out.push('0');
        return;
    }
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        let _ = write!(out, "{ip}");
    }
    if let Some(ttl) = ttl {
        let _ = write!(out, ",{ttl}");
    }
}

/// The JSON answer: one object for one name, `{"dns": [...]}` for a batch.
pub fn json(records: &[Record], query: &Query, ttl: u64, client: IpAddr) -> serde_json::Value {
    let item = |record: &Record| {
        let none = Vec::new();
        let v4 = if query.family.v4() { &record.v4 } else { &none };
        let v6 = if query.family.v6() { &record.v6 } else { &none };
        serde_json::json!({
            "host": record.name,
            "ips": v4,
            "ipsv6": v6,
            "ttl": ttl,
            "origin_ttl": ttl,
            "client_ip": client,
        })
    };
    match records {
        [record] => item(record),
        _ => serde_json::json!({
            "dns": records.iter().map(item).collect::<Vec<_>>(),
            "client_ip": client,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, v4: &[&str], v6: &[&str]) -> Record {
        let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect();
        Record {
            name: name.into(),
            v4: ips(v4),
            v6: ips(v6),
        }
    }

    fn query(q: &str) -> Query {
        Query::parse(q, false, 8).unwrap()
    }

    #[test]
    fn the_tencent_grammar() {
        // The examples of Tencent's HTTPDNS API page (379/54976).
        let client: IpAddr = "1.2.3.4".parse().unwrap();
        let r = [record(
            "cloud.tencent.com",
            &["2.3.3.4", "2.3.3.5"],
            &["2400::1"],
        )];
        let text = |q: &str| text(&r, &query(q), 120, client);
        assert_eq!(text("dn=cloud.tencent.com"), "2.3.3.4;2.3.3.5");
        assert_eq!(text("dn=cloud.tencent.com&ttl=1"), "2.3.3.4;2.3.3.5,120");
        assert_eq!(
            text("dn=cloud.tencent.com&ttl=1&clientip=1"),
            "2.3.3.4;2.3.3.5,120|1.2.3.4"
        );
        assert_eq!(
            text("dn=cloud.tencent.com&ttl=1&clientip=1&type=addrs"),
            "2.3.3.4;2.3.3.5,120-2400::1,120|1.2.3.4"
        );
        assert_eq!(
            text("dn=cloud.tencent.com&ttl=1&clientip=1&query=1"),
            "cloud.tencent.com.:2.3.3.4;2.3.3.5,120|1.2.3.4"
        );
        let none = [record("a.example", &[], &[])];
        let q = query("dn=a.example&ttl=1&clientip=1");
        assert_eq!(
            super::text(&none, &q, 60, client),
            "",
            "single A, no record"
        );
        let q = query("dn=a.example&ttl=1&clientip=1&type=addrs&query=1");
        assert_eq!(super::text(&none, &q, 60, client), "a.example.:0-0|1.2.3.4");
        let half = [record("a.example", &["2.3.4.5", "3.3.3.3"], &[])];
        assert_eq!(
            super::text(&half, &q, 60, client),
            "a.example.:2.3.4.5;3.3.3.3,60-0|1.2.3.4"
        );
    }

    #[test]
    fn a_batch_has_a_line_per_name_each_with_the_client() {
        let client: IpAddr = "1.2.3.4".parse().unwrap();
        let r = [record("a", &["10.0.0.1"], &[]), record("b", &[], &[])];
        let q = query("dn=a,b&ttl=1&clientip=1");
        assert_eq!(
            text(&r, &q, 60, client),
            "a.:10.0.0.1,60|1.2.3.4\nb.:0|1.2.3.4"
        );
        let json = json(&r, &q, 60, client);
        assert_eq!(json["dns"][0]["ips"][0], "10.0.0.1");
        assert_eq!(json["dns"][1]["host"], "b");
        assert_eq!(json["client_ip"], "1.2.3.4");
    }
}
