//! The embedded backend: kv, quotas, expiry and rate limits.

use super::*;
use crate::state::{Algorithm, RatePolicy, StateBackend};

fn backend(max_entries: usize, max_per_namespace: u64) -> Arc<LocalBackend> {
    let config = LocalStateConfig {
        max_entries,
        max_limiters: max_entries,
        ..LocalStateConfig::default()
    };
    LocalBackend::new(&config, max_per_namespace)
}

#[tokio::test]
async fn kv_semantics() {
    let b = backend(100, 100);
    let k = |name| Key::new("ns", name);
    assert_eq!(b.get(k("k")).await, Ok(None));
    assert_eq!(b.incr(k("n"), 2, None).await, Ok(2));
    assert_eq!(b.incr(k("n"), 3, None).await, Ok(5));
    assert_eq!(
        b.set_if_absent(k("once"), b"a".to_vec(), None).await,
        Ok(true)
    );
    assert_eq!(
        b.set_if_absent(k("once"), b"b".to_vec(), None).await,
        Ok(false)
    );
    assert_eq!(b.get(k("once")).await, Ok(Some(b"a".to_vec())));
    b.set(k("t"), b"x".to_vec(), Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(b.get(k("t")).await, Ok(None));
    assert_eq!(b.set_if_absent(k("t"), b"y".to_vec(), None).await, Ok(true));
    assert_eq!(b.delete(k("t")).await, Ok(true));
    assert!(matches!(
        b.incr(k("once"), 1, None).await,
        Err(StateError::Invalid(_))
    ));
    // The same name in another namespace is another key.
    assert_eq!(b.get(Key::new("other", "once")).await, Ok(None));
}

#[tokio::test]
async fn a_full_map_evicts_the_keys_closest_to_expiry() {
    let b = backend(64, 1_000);
    let soon = Some(Duration::from_millis(60_000));
    let late = Some(Duration::from_secs(3600));
    for n in 0..32 {
        b.set(Key::new("a", &format!("soon{n}")), vec![0], soon)
            .await
            .unwrap();
    }
    for n in 0..1_000 {
        b.set(Key::new("a", &format!("late{n}")), vec![0], late)
            .await
            .unwrap();
        assert!(b.kv_len() <= 64, "the map stays bounded");
    }
    assert_eq!(b.get(Key::new("a", "soon0")).await, Ok(None));
    assert_eq!(b.get(Key::new("a", "late999")).await, Ok(Some(vec![0])));
    // The namespace count follows the evictions.
    assert_eq!(b.namespace_len("a") as usize, b.kv_len());
}

#[tokio::test]
async fn expired_keys_are_swept_without_being_read() {
    let config = LocalStateConfig {
        sweep_interval_ms: 10,
        ..LocalStateConfig::default()
    };
    let b = LocalBackend::new(&config, 100);
    let ttl = Some(Duration::from_millis(5));
    for n in 0..50 {
        b.set(Key::new("a", &n.to_string()), vec![0], ttl)
            .await
            .unwrap();
    }
    let policy = RatePolicy {
        algorithm: Algorithm::FixedWindow,
        limit: 1,
        window_ms: 1,
    };
    b.take(Key::new("a", "l"), policy, 1).await.unwrap();
    assert_eq!(b.kv_len(), 50);
    // Limiters idle for two windows (at least a second) go too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (b.kv_len() > 0 || b.limiters_len() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((b.kv_len(), b.limiters_len()), (0, 0));
    assert_eq!(b.namespace_len("a"), 0);
    assert_eq!(b.bytes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_limiter_map_stays_bounded() {
    let b = backend(16, 100);
    let policy = RatePolicy {
        algorithm: Algorithm::TokenBucket,
        limit: 10,
        window_ms: 60_000,
    };
    for n in 0..500 {
        b.take(Key::new("a", &n.to_string()), policy, 1)
            .await
            .unwrap();
        assert!(b.limiters_len() <= 16);
    }
}
