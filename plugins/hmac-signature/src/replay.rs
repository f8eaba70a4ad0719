//! Replay protection: each accepted signature is remembered through `kv` `set-if-absent`
//! for as long as it stays acceptable, so that a second use is refused. With the Redis
//! backend the record is shared by every gateway instance.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use weir_plugin_sdk::host::kv;

use crate::config::ReplayUnavailable;
use crate::rejection::Rejection;
use crate::signed::Signed;

/// Records `signed` for `ttl_ms`; refuses it if it was recorded before.
pub fn remember(
    signed: &Signed,
    ttl_ms: u64,
    unavailable: ReplayUnavailable,
) -> Result<(), Rejection> {
    match kv::set_if_absent(&record_key(signed), b"1", Some(ttl_ms)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Rejection::Replayed),
        Err(_) if unavailable == ReplayUnavailable::Skip => Ok(()),
        Err(_) => Err(Rejection::ReplayCheckUnavailable),
    }
}

/// The record's key: a hash of the key id and nonce (a nonce is unique per signer), or,
/// without a nonce, of the signature itself. Hashing keeps keys short and unambiguous.
fn record_key(signed: &Signed) -> String {
    let mut hash = Sha256::new();
    match &signed.nonce {
        Some(nonce) => {
            hash.update(b"nonce\0");
            hash.update((signed.key_id.len() as u64).to_be_bytes());
            hash.update(signed.key_id.as_bytes());
            hash.update(nonce.as_bytes());
        }
        None => {
            hash.update(b"signature\0");
            hash.update(&signed.signature);
        }
    }
    format!("replay:{}", URL_SAFE_NO_PAD.encode(hash.finalize()))
}
