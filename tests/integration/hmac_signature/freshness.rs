//! Freshness: `created` and `expires` against the gateway's clock, within the configured
//! skew and not the default one.

use weir_tests::{Reply, TestClient, TestGateway};

use super::signer::Signer;
use super::{GRANTS, KEYS, assert_refused, now, setup};

#[tokio::test(flavor = "multi_thread")]
async fn stale_future_and_expired_signatures_are_refused() {
    let (upstream, gw) = setup(&[("c", &format!("{KEYS}\nclock_skew_secs = 60"), GRANTS)]).await;
    let send = |signer: Signer<'static>| signed_get(&gw, signer);

    let r = send(Signer::default()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let at = |created: Option<u64>, expires: Option<u64>| Signer {
        created,
        expires,
        ..Signer::default()
    };
    for (signer, code) in [
        (at(Some(now() - 3600), None), "signature_expired"),
        (at(Some(now() + 3600), None), "signature_not_yet_valid"),
        (at(Some(now()), Some(now() - 3600)), "signature_expired"),
        (at(None, None), "malformed_signature"),
    ] {
        assert_refused(&send(signer).await, 401, code);
    }
    assert_eq!(upstream.hits(), 1);
    gw.shutdown().await;
}

/// The configured skew (60 s) is the one applied, not the default (300 s): 30 s either way
/// passes, 120 s either way is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_configured_clock_skew_is_the_one_applied() {
    let (upstream, gw) = setup(&[("c", &format!("{KEYS}\nclock_skew_secs = 60"), GRANTS)]).await;
    let send = |signer: Signer<'static>| signed_get(&gw, signer);
    let created = |at: u64| Signer {
        created: Some(at),
        ..Signer::default()
    };
    let expires = |at: u64| Signer {
        created: Some(now() - 30),
        expires: Some(at),
        ..Signer::default()
    };
    for (what, signer) in [
        ("created 30 s ago", created(now() - 30)),
        ("created 30 s ahead", created(now() + 30)),
        ("expired 30 s ago", expires(now() - 30)),
    ] {
        let r = send(signer).await;
        assert_eq!(r.status, 200, "{what}: {:?}", r.body);
    }
    let r = send(created(now() - 120)).await;
    assert_refused(&r, 401, "signature_expired");
    let r = send(created(now() + 120)).await;
    assert_refused(&r, 401, "signature_not_yet_valid");
    let r = send(expires(now() - 120)).await;
    assert_refused(&r, 401, "signature_expired");
    assert_eq!(upstream.hits(), 3);
    gw.shutdown().await;
}

/// `GET /c`, signed by `signer`.
async fn signed_get(gw: &TestGateway, signer: Signer<'_>) -> Reply {
    signer
        .send(&TestClient::default(), "GET", gw.url("/c"), "")
        .await
}
