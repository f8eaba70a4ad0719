//! Protocol upgrades passed through (RFC 9110 §7.8; WebSocket, RFC 6455 §4): a request with
//! `Connection: upgrade` and `Upgrade` is forwarded with both, and when the upstream answers
//! `101 Switching Protocols` the two connections are spliced byte for byte. HTTP/1.1 only,
//! on both sides: upgrades do not exist in HTTP/2.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// An upgrade a client asked for, waiting for the upstream's answer.
pub struct Upgrade {
    protocol: HeaderValue,
    downstream: OnUpgrade,
}

impl Upgrade {
    /// Takes the upgrade `request` asks for, if any.
    pub fn take(request: &mut Request<Incoming>) -> Option<Self> {
        let connection_upgrade = request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        let protocol = request.headers().get(header::UPGRADE)?.clone();
        if !connection_upgrade || request.version() != http::Version::HTTP_11 {
            return None;
        }
        Some(Self {
            protocol,
            downstream: hyper::upgrade::on(request),
        })
    }

    /// Puts the upgrade headers (removed with the other hop-by-hop headers) back on a
    /// message.
    pub fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// When the upstream switched protocols, puts the upgrade headers back on its (already
    /// cleaned) response and splices the two connections once both sides have upgraded.
    pub fn splice(self, response: &mut Response<Incoming>) {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        self.restore(response.headers_mut());
        let upstream = hyper::upgrade::on(response);
        tokio::spawn(async move {
            match tokio::try_join!(self.downstream, upstream) {
                Ok((downstream, upstream)) => {
                    let (mut downstream, mut upstream) =
                        (TokioIo::new(downstream), TokioIo::new(upstream));
                    if let Err(e) =
                        tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await
                    {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
    }
}
