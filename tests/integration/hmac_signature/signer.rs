//! The independent RFC 9421 signer of the tests (`httpsig-hyper`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Request;
use http_body_util::{BodyExt, Full};
use httpsig_hyper::prelude::message_component::HttpMessageComponentId;
use httpsig_hyper::prelude::{AlgorithmName, HttpSignatureParams, SharedKey};
use httpsig_hyper::{ContentDigestType, MessageSignatureReq, RequestContentDigest};
use weir_tests::{Reply, TestClient, request};

use super::{Body, CLIENT1_KEY, now};

/// How the independent signer signs a request.
pub(super) struct Signer<'a> {
    pub(super) components: &'a [&'a str],
    pub(super) key_id: &'a str,
    pub(super) key: &'a str,
    pub(super) created: Option<u64>,
    pub(super) expires: Option<u64>,
    pub(super) nonce: bool,
    pub(super) digest: Option<ContentDigestType>,
    pub(super) alg: Option<&'a str>,
}

impl Default for Signer<'_> {
    fn default() -> Self {
        Self {
            components: &["@method", "@authority", "@path"],
            key_id: "client-1",
            key: CLIENT1_KEY,
            created: Some(now()),
            expires: None,
            nonce: true,
            digest: None,
            alg: Some("hmac-sha256"),
        }
    }
}

impl Signer<'_> {
    /// `method url` with `headers` and `body`, signed by `httpsig-hyper` as label `sig1`
    /// (with a `Content-Digest` computed by it first, if asked).
    pub(super) async fn sign(
        &self,
        method: &str,
        url: String,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Request<Body> {
        let mut req = request(method, &url, headers, body.to_string());
        if let Some(digest) = &self.digest {
            let digested = req
                .set_content_digest(digest)
                .await
                .expect("content-digest");
            let (parts, body) = digested.into_parts();
            let bytes = body.collect().await.expect("body").to_bytes();
            req = Request::from_parts(parts, Full::new(bytes));
        }
        let ids = self
            .components
            .iter()
            .map(|c| HttpMessageComponentId::try_from(*c).expect("component id"))
            .collect::<Vec<_>>();
        let mut params = HttpSignatureParams::try_new(&ids).expect("params");
        let key = SharedKey::from_base64(&AlgorithmName::HmacSha256, &STANDARD.encode(self.key))
            .expect("shared key");
        params.keyid = Some(self.key_id.to_string());
        params.alg = self.alg.map(str::to_string);
        params.created = self.created;
        params.expires = self.expires;
        if self.nonce {
            params.set_random_nonce();
        }
        req.set_message_signature(&params, &key, Some("sig1"))
            .await
            .expect("sign");
        req
    }

    /// Sends `method url` with no headers and `body`, signed as by [`Self::sign`].
    pub(super) async fn send(
        &self,
        client: &TestClient,
        method: &str,
        url: String,
        body: &str,
    ) -> Reply {
        client.send(self.sign(method, url, &[], body).await).await
    }
}
