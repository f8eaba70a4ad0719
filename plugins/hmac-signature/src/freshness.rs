//! The signature's age: `created` and `expires` (RFC 9421 §2.3, §3.2 step 6) against the
//! gateway's clock, with a tolerance for clock skew.

use crate::rejection::Rejection;

/// The accepted window around the gateway's clock.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The skew tolerated either way, in seconds.
    pub skew_secs: i64,
    /// Whether a signature must say when it was created.
    pub require_created: bool,
}

impl Window {
    /// Checks `created` and `expires` (seconds since the Unix epoch) against `now`.
    pub fn check(
        self,
        now: i64,
        created: Option<i64>,
        expires: Option<i64>,
    ) -> Result<(), Rejection> {
        match created {
            Some(created) if created > now.saturating_add(self.skew_secs) => {
                return Err(Rejection::NotYetValid);
            }
            Some(created) if created < now.saturating_sub(self.skew_secs) => {
                return Err(Rejection::Expired);
            }
            Some(_) => {}
            None if self.require_created => {
                return Err(Rejection::Malformed(
                    "the signature must say when it was created".into(),
                ));
            }
            None => {}
        }
        match expires {
            Some(expires) if expires < now.saturating_sub(self.skew_secs) => {
                Err(Rejection::Expired)
            }
            _ => Ok(()),
        }
    }

    /// How long a signature stays acceptable: from `skew` before its `created` to `skew`
    /// after, so replay records must live that long.
    pub fn lifetime_ms(self) -> u64 {
        u64::try_from(self.skew_secs)
            .unwrap_or(0)
            .saturating_mul(2_000)
            .max(1_000)
    }
}
