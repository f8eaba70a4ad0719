//! The buffer store of a fleet, in Redis (a server, a cluster or a Sentinel-watched
//! master), as Redis Streams with a consumer group: every instance sharing it drains the
//! same queues, and no two deliver one ticket at once.
//!
//! Key layout under the configured prefix, `<r>` a route's hash tag `{r<len>:<name>}` (so
//! that each script runs in one slot of a cluster):
//!
//! - `buffer:<r>:stream` the tickets due (a Stream, field `t`), read by the group `weir`,
//!   each instance a consumer of its own;
//! - `buffer:<r>:delayed` tickets backing off before a retry (a sorted set by when due);
//! - `buffer:<r>:t:<ticket>` a ticket (a hash: `e` the stored request, `a` attempts, `x`
//!   the last error, `s` the final status), which expires `ticket_ttl_ms` after it ends;
//! - `buffer:<r>:dead` the dead letters' statuses, newest first, capped at `max_dead`.
//!
//! A claim is a Stream entry in the consumer's pending list. A delivering instance renews
//! it (`XCLAIM … JUSTID`, resetting its idle time) every third of the lease, and an entry
//! is taken over (`XAUTOCLAIM`) only once idle past the lease: its instance died. Every
//! outcome is written only by the consumer that still holds the entry.

use bytes::Bytes;
use redis::Script;

use super::store::{BufferStore, Claimed, Finished, Reply, StoreError, TicketState};
use crate::redis_link::{RedisClient, RedisFailure};

/// The consumer group every instance reads in.
const GROUP: &str = "weir";

/// The buffer store in Redis.
pub struct RedisBufferStore {
    redis: RedisClient,
    /// This instance's consumer name (unique per process start).
    consumer: String,
    scripts: Scripts,
}

struct Scripts {
    accept: Script,
    claim: Script,
    renew: Script,
    retry: Script,
    finish: Script,
    depth: Script,
}

impl RedisBufferStore {
    /// A store in `redis`, reading as a consumer of its own.
    pub fn new(redis: RedisClient) -> Self {
        let consumer = format!(
            "{}-{}",
            std::process::id(),
            super::entry::new_ticket().unwrap_or_else(|| fastrand::u64(..).to_string())
        );
        Self {
            redis,
            consumer,
            scripts: Scripts {
                accept: Script::new(include_str!("scripts/accept.lua")),
                claim: Script::new(include_str!("scripts/claim.lua")),
                renew: Script::new(include_str!("scripts/renew.lua")),
                retry: Script::new(include_str!("scripts/retry.lua")),
                finish: Script::new(include_str!("scripts/finish.lua")),
                depth: Script::new(include_str!("scripts/depth.lua")),
            },
        }
    }

    /// `buffer:<r>:<what>` for `route`.
    fn key(&self, route: &str, what: &str) -> String {
        let prefix = self.redis.prefix();
        format!("{prefix}buffer:{{r{}:{route}}}:{what}", route.len())
    }

    /// Runs one script; `idempotent` ones are tried again after a failover.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        idempotent: bool,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let result = self.redis.script(script, idempotent, (keys, args)).await;
        result.map_err(|e| match e {
            RedisFailure::Data(detail) | RedisFailure::Unavailable(detail) => StoreError(detail),
        })
    }
}

impl BufferStore for RedisBufferStore {
    fn accept(&self, route: &str, ticket: &str, entry: Bytes, max_pending: u64) -> Reply<'_, bool> {
        let keys = [
            self.key(route, "stream"),
            self.key(route, "delayed"),
            self.key(route, &format!("t:{ticket}")),
        ];
        let (max, ticket) = (max_pending.to_string(), ticket.to_string());
        Box::pin(async move {
            let args: [&[u8]; 3] = [&entry, max.as_bytes(), ticket.as_bytes()];
            let stored: i64 = self.run(&self.scripts.accept, false, &keys, &args).await?;
            Ok(stored == 1)
        })
    }

    fn claim(
        &self,
        route: &str,
        max: usize,
        lease_ms: u64,
        now_ms: u64,
    ) -> Reply<'_, Vec<Claimed>> {
        let keys = [
            self.key(route, "stream"),
            self.key(route, "delayed"),
            self.key(route, "t:"),
        ];
        let (max, lease, now) = (max.to_string(), lease_ms.to_string(), now_ms.to_string());
        Box::pin(async move {
            let args: [&[u8]; 5] = [
                GROUP.as_bytes(),
                self.consumer.as_bytes(),
                max.as_bytes(),
                lease.as_bytes(),
                now.as_bytes(),
            ];
            // Not tried again after a failover: a claim applied twice would hold entries
            // this instance never hears of until their lease lapses.
            let flat: Vec<Vec<u8>> = self.run(&self.scripts.claim, false, &keys, &args).await?;
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            Ok(flat
                .chunks_exact(4)
                .map(|c| Claimed {
                    handle: text(&c[0]),
                    ticket: text(&c[1]),
                    attempts: text(&c[2]).parse().unwrap_or(0),
                    entry: Bytes::from(c[3].clone()),
                })
                .collect())
        })
    }

    fn renew(&self, route: &str, claimed: &Claimed) -> Reply<'_, bool> {
        let keys = [self.key(route, "stream")];
        let id = claimed.handle.clone();
        Box::pin(async move {
            let args: [&[u8]; 3] = [GROUP.as_bytes(), self.consumer.as_bytes(), id.as_bytes()];
            let held: i64 = self.run(&self.scripts.renew, true, &keys, &args).await?;
            Ok(held == 1)
        })
    }

    fn retry(
        &self,
        route: &str,
        claimed: &Claimed,
        attempts: u32,
        at_ms: u64,
        error: String,
    ) -> Reply<'_, ()> {
        let keys = [
            self.key(route, "stream"),
            self.key(route, "delayed"),
            self.key(route, &format!("t:{}", claimed.ticket)),
        ];
        let (id, ticket) = (claimed.handle.clone(), claimed.ticket.clone());
        let (attempts, at) = (attempts.to_string(), at_ms.to_string());
        Box::pin(async move {
            let args: [&[u8]; 7] = [
                GROUP.as_bytes(),
                self.consumer.as_bytes(),
                id.as_bytes(),
                ticket.as_bytes(),
                attempts.as_bytes(),
                at.as_bytes(),
                error.as_bytes(),
            ];
            let _: i64 = self.run(&self.scripts.retry, false, &keys, &args).await?;
            Ok(())
        })
    }

    fn finish(&self, route: &str, claimed: &Claimed, finished: Finished) -> Reply<'_, bool> {
        let keys = [
            self.key(route, "stream"),
            self.key(route, &format!("t:{}", claimed.ticket)),
            self.key(route, "dead"),
        ];
        let id = claimed.handle.clone();
        let dead = if finished.dead { "1" } else { "0" };
        let (ttl, max_dead) = (
            finished.ttl_ms.max(1).to_string(),
            finished.max_dead.to_string(),
        );
        Box::pin(async move {
            let args: [&[u8]; 7] = [
                GROUP.as_bytes(),
                self.consumer.as_bytes(),
                id.as_bytes(),
                dead.as_bytes(),
                finished.status.as_bytes(),
                ttl.as_bytes(),
                max_dead.as_bytes(),
            ];
            let held: i64 = self.run(&self.scripts.finish, false, &keys, &args).await?;
            Ok(held == 1)
        })
    }

    fn release(&self, _route: &str, _claimed: &Claimed) {
        // The claim lapses with its lease, and the entry is taken over then.
    }

    fn state(&self, route: &str, ticket: &str) -> Reply<'_, Option<TicketState>> {
        let key = self.key(route, &format!("t:{ticket}"));
        Box::pin(async move {
            let key = &key;
            let fields: (Option<String>, Option<u32>, Option<String>) = self
                .redis
                .call(true, |mut connection| async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg("s")
                        .arg("a")
                        .arg("x")
                        .query_async(&mut connection)
                        .await
                })
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            Ok(match fields {
                (Some(status), _, _) => Some(TicketState::Done(status)),
                (None, Some(attempts), last_error) => Some(TicketState::Pending {
                    attempts,
                    last_error: last_error.filter(|e| !e.is_empty()),
                }),
                (None, None, _) => None,
            })
        })
    }

    fn depth(&self, route: &str) -> Reply<'_, (u64, u64)> {
        let keys = [
            self.key(route, "stream"),
            self.key(route, "delayed"),
            self.key(route, "dead"),
        ];
        Box::pin(async move {
            let (pending, dead): (u64, u64) =
                self.run(&self.scripts.depth, true, &keys, &[]).await?;
            Ok((pending, dead))
        })
    }

    fn sweep(&self, _now_ms: u64) -> Reply<'_, ()> {
        // Statuses expire by their keys' TTL.
        Box::pin(async { Ok(()) })
    }
}
