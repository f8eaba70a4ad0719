//! `hmac-signature`: verifies HTTP Message Signatures (RFC 9421) made with a shared HMAC
//! key (`hmac-sha256`, `hmac-sha512`), the body's `Content-Digest` (RFC 9530), the
//! signature's age, and that it is not replayed; optionally also legacy
//! draft-cavage-http-signatures-12 signatures with a `Digest` (RFC 3230).
//!
//! ```json
//! { "keys": { "client-1": "client1_key" }, "required_components": ["@method", "@authority", "@path"] }
//! ```
//! Grants: `secrets:<name>` for each key's secret, `clock`, and `kv` for replay protection.
//! The full reference is `docs/plugins/hmac-signature.md`.

#![forbid(unsafe_code)]

mod cavage;
mod components;
mod config;
mod digest;
mod freshness;
mod hints;
mod keys;
mod mac;
mod rejection;
mod replay;
mod rfc9421;
mod signed;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::host::clock;
use weir_plugin_sdk::prelude::*;

use crate::config::{Config, DigestPolicy, Settings};
use crate::freshness::Window;
use crate::keys::KeyCache;
use crate::mac::Algorithm;
use crate::rejection::Rejection;
use crate::signed::{Format, Signed};

/// The configured filter.
struct HmacSignature {
    settings: Settings,
    window: Window,
    /// Headers that tell a refused client how to sign.
    hints: Vec<(&'static str, String)>,
    /// Keys read so far.
    keys: KeyCache,
}

impl Filter for HmacSignature {
    type Config = Config;
    const NAME: &'static str = "hmac-signature";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::RequestBody];

    /// The body is buffered only when digests are checked.
    fn phases(&self) -> Vec<Phase> {
        match self.settings.content_digest {
            DigestPolicy::Off => vec![Phase::RequestHeaders],
            DigestPolicy::WhenBody | DigestPolicy::Always => Self::PHASES.to_vec(),
        }
    }

    fn new(config: Config) -> Result<Self, String> {
        let settings = Settings::try_from(config)?;
        let window = Window {
            skew_secs: i64::try_from(settings.clock_skew_secs).map_err(|e| e.to_string())?,
            require_created: settings.require_created,
        };
        let hints = hints::for_settings(&settings);
        let keys = KeyCache::preloaded(&settings.keys)?;
        Ok(Self {
            settings,
            window,
            hints,
            keys,
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        match self.verify(request) {
            Ok(signed) => RequestDecision::Continue(self.accepted(&signed)),
            Err(rejection) => RequestDecision::Respond(rejection.response(request, &self.hints)),
        }
    }
}

impl HmacSignature {
    /// The verification steps of RFC 9421 §3.2, cheapest and stateless first; the replay
    /// record is written only for a signature that is otherwise valid.
    fn verify(&self, request: &Request) -> Result<Signed, Rejection> {
        // Parse the signature and build its signature base.
        let signed = self.find(request)?;
        // The algorithm must be accepted (and, if named, one we know).
        let algorithm = self.algorithm(&signed)?;
        // The components the config requires must be covered.
        self.check_coverage(&signed, request)?;
        // `created` and `expires` must be within the skew window.
        if self.window.require_created || signed.created.is_some() || signed.expires.is_some() {
            let now = i64::try_from(clock::now_ms() / 1000).unwrap_or(i64::MAX);
            self.window.check(now, signed.created, signed.expires)?;
        }
        // The MAC must match, under the key id's key.
        let key = self.keys.get(&self.settings.keys, &signed.key_id)?;
        if !algorithm.verify(&key, &signed.base, &signed.signature) {
            return Err(Rejection::InvalidSignature);
        }
        // A covered digest must match the body.
        if self.settings.content_digest != DigestPolicy::Off
            && signed.covers(signed.format.digest_component())
        {
            digest::check(signed.format, request, request.body().unwrap_or_default())?;
        }
        // The signature must not have been used before.
        if let Some(unavailable) = self.settings.replay {
            replay::remember(&signed, self.window.lifetime_ms(), unavailable)?;
        }
        Ok(signed)
    }

    /// The request's signature: RFC 9421 first, then, when enabled, the legacy format.
    fn find(&self, request: &Request) -> Result<Signed, Rejection> {
        if let Some(signed) = rfc9421::parse(request, self.settings.label.as_deref())? {
            return Ok(signed);
        }
        if self.settings.legacy.is_some()
            && let Some(signed) = cavage::parse(request)?
        {
            return Ok(signed);
        }
        Err(Rejection::MissingSignature)
    }

    /// The algorithm named by the signature, or the configured default; either must be
    /// accepted.
    fn algorithm(&self, signed: &Signed) -> Result<Algorithm, Rejection> {
        let accepted = &self.settings.algorithms;
        match &signed.algorithm {
            None => accepted.first().copied().ok_or(Rejection::InvalidSignature),
            Some(name) => Algorithm::from_name(name)
                .filter(|a| accepted.contains(a))
                .ok_or_else(|| Rejection::UnsupportedAlgorithm(name.clone())),
        }
    }

    /// Every required component is covered; so is the body digest when the policy asks.
    fn check_coverage(&self, signed: &Signed, request: &Request) -> Result<(), Rejection> {
        let required = match (signed.format, &self.settings.legacy) {
            (Format::Cavage(_), Some(legacy)) => &legacy.required_headers,
            _ => &self.settings.required_components,
        };
        if let Some(missing) = required.iter().find(|name| !signed.covers(name)) {
            return Err(Rejection::MissingComponent(missing.clone()));
        }
        let digest_required = match self.settings.content_digest {
            DigestPolicy::Always => true,
            // Only this policy needs to know whether there is a body.
            DigestPolicy::WhenBody => request.body().is_some_and(|body| !body.is_empty()),
            DigestPolicy::Off => false,
        };
        let digest = signed.format.digest_component();
        if digest_required && !signed.covers(digest) {
            return Err(Rejection::MissingComponent(digest.to_string()));
        }
        Ok(())
    }

    /// The changes for an accepted request: the key id for later filters and the log,
    /// and the signature headers removed if configured.
    fn accepted(&self, signed: &Signed) -> RequestChanges {
        let mut changes = RequestChanges::new().set_variable("signature.keyid", &signed.key_id);
        if self.settings.set_consumer {
            changes = changes.set_variable("consumer", &signed.key_id);
        }
        if self.settings.strip_headers {
            for name in signed.format.signature_headers() {
                changes = changes.remove_header(name);
            }
        }
        changes
    }
}

export_filter!(HmacSignature);
