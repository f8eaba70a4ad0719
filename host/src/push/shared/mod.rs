//! The push store of a fleet, in Redis (a server, a cluster or a Sentinel-watched
//! master): every gateway instance sharing it sees the same devices, streams, acks,
//! idempotency answers and vendor jobs.
//!
//! Key layout under the configured prefix, `<d>` a device's hash tag `{d<len>:<id>}`:
//!
//! - `push:<d>:dev` the device (JSON); `push:<d>:cur` its cursor (hash: `next`, `acked`,
//!   `lost`); `push:<d>:log` its stream (a Redis Stream, entry id `<offset>-0`, fields
//!   `m` the message and `x` its expiry; capped at `push.history` and expiring with its
//!   longest-lived message); `push:<d>:ids` the offset each message id got there, and
//!   `push:<d>:ids-until` when each of those records goes (kept `push.idempotency_ms`);
//! - `push:{u<len>:<user>}:devices` and `push:{t<len>:<topic>}:devices` the indexes (sets);
//! - `push:{m<len>:<id>}:answer` a publish's answer, kept `push.idempotency_ms`;
//! - `push:{vendor}:due` vendor jobs (`<offset>:<device>` by when due or leased until)
//!   and `push:{vendor}:tries` their attempts.
//!
//! A device's keys share its hash tag, so each script runs in one slot of a cluster. A
//! publish to several devices is one script per device, each idempotent by message id,
//! then one `PUBLISH` of the devices' ids on `push:wake` (see [`super::fleet`]), and the
//! answer is written last: a publisher that does not hear `202` publishes again, no device
//! gets the message twice, and every device is woken. The indexes are written around the device's
//! record and checked against it on every read, so a step that failed half-way leaves at
//! most an entry that reads as absent.

use futures_util::{StreamExt, TryStreamExt};
use redis::{AsyncCommands, Script};

use super::store::{
    Backlog, Device, Message, Publication, PushStore, Reply, StoreError, Stored, Target,
    VendorDone, VendorJob,
};
use crate::redis_link::{RedisClient, RedisFailure};

/// Devices' appends and index writes in flight at once during one publish or register.
const CONCURRENCY: usize = 32;

/// The push store in Redis.
pub struct RedisPushStore {
    redis: RedisClient,
    history: u64,
    scripts: Scripts,
}

struct Scripts {
    append: Script,
    queued: Script,
    retry: Script,
    backlog: Script,
    ack: Script,
    register: Script,
    unbind: Script,
    claim: Script,
    job: Script,
    swap: Script,
}

impl RedisPushStore {
    /// A store in `redis`, keeping at most `history` messages per device.
    pub fn new(redis: RedisClient, history: u64) -> Self {
        let script = |text: &str| Script::new(text);
        Self {
            redis,
            history: history.max(1),
            scripts: Scripts {
                append: script(include_str!("scripts/append.lua")),
                queued: script(include_str!("scripts/queued.lua")),
                retry: script(include_str!("scripts/retry.lua")),
                backlog: script(include_str!("scripts/backlog.lua")),
                ack: script(include_str!("scripts/ack.lua")),
                register: script(include_str!("scripts/register.lua")),
                unbind: script(include_str!("scripts/unbind.lua")),
                claim: script(include_str!("scripts/claim.lua")),
                job: script(include_str!("scripts/job.lua")),
                swap: script(include_str!("scripts/swap.lua")),
            },
        }
    }

    /// The Redis client (the fleet's presence and wake-ups use it too).
    pub fn client(&self) -> &RedisClient {
        &self.redis
    }

    /// `push:<d>:<what>` for device `id`.
    fn device_key(&self, id: &str, what: &str) -> String {
        format!("{}push:{{d{}:{id}}}:{what}", self.redis.prefix(), id.len())
    }

    /// The set of devices of a user or (`kind` `t`) a topic.
    fn index_key(&self, kind: char, owner: &str) -> String {
        let prefix = self.redis.prefix();
        format!("{prefix}push:{{{kind}{}:{owner}}}:devices", owner.len())
    }

    fn answer_key(&self, id: &str) -> String {
        format!("{}push:{{m{}:{id}}}:answer", self.redis.prefix(), id.len())
    }

    fn vendor_key(&self, what: &str) -> String {
        format!("{}push:{{vendor}}:{what}", self.redis.prefix())
    }

    /// The key of a device's presence (which connection holds it, for the fleet).
    pub fn presence_key(&self, id: &str) -> String {
        self.device_key(id, "on")
    }

    /// The channel every instance listens on for wake-ups.
    pub fn channel(&self) -> String {
        format!("{}push:wake", self.redis.prefix())
    }

    /// Runs one script (writes: tried again after a failover only when not applied).
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let result = self.redis.script(script, false, (keys, args)).await;
        result.map_err(failed)
    }

    /// The registered devices among `ids`, those that `keep` accepts.
    async fn read_devices(
        &self,
        ids: Vec<String>,
        keep: impl Fn(&Device) -> bool,
    ) -> Result<Vec<Device>, StoreError> {
        let reads = ids.into_iter().map(|id| {
            let key = self.device_key(&id, "dev");
            async move {
                let key = &key;
                let json: Option<String> = (self.redis)
                    .call(true, |mut c| async move { c.get(key).await })
                    .await
                    .map_err(failed)?;
                Ok::<_, StoreError>(json.and_then(|j| serde_json::from_str::<Device>(&j).ok()))
            }
        });
        let found: Vec<Option<Device>> = futures_util::stream::iter(reads)
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().filter(|d| keep(d)).collect())
    }

    /// The members of an index set.
    async fn members(&self, key: String) -> Result<Vec<String>, StoreError> {
        let key = &key;
        let result = self
            .redis
            .call(true, |mut c| async move { c.smembers(key).await })
            .await;
        result.map_err(failed)
    }

    /// Adds (`add`) or removes `device` from the indexes `keys`.
    async fn index(&self, keys: Vec<String>, device: &str, add: bool) -> Result<(), StoreError> {
        let writes = keys.into_iter().map(|key| async move {
            let key = &key;
            (self.redis)
                .call(true, |mut c| async move {
                    match add {
                        true => c.sadd::<_, _, ()>(key, device).await,
                        false => c.srem::<_, _, ()>(key, device).await,
                    }
                })
                .await
                .map_err(failed)
        });
        futures_util::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn publish_now(&self, publication: Publication) -> Result<String, StoreError> {
        let Publication {
            message,
            devices,
            keep_ms,
            answer,
        } = publication;
        let answer_key = self.answer_key(&message.id);
        if let Some(first) = self.answer_at(&answer_key).await? {
            return Ok(first);
        }
        let json = serde_json::to_vec(&message).map_err(|e| StoreError::Failed(e.to_string()))?;
        let now = crate::time::now_ms();
        let keep_ms = keep_ms.max(message.expires_ms.saturating_sub(now)).max(1);
        let (expires, history, keep_until) = (
            message.expires_ms.to_string(),
            self.history.to_string(),
            (now + keep_ms).to_string(),
        );
        let id = message.id.as_bytes();
        let appends = devices.into_iter().map(|(device, by_vendor)| {
            let keys = [
                self.device_key(&device, "cur"),
                self.device_key(&device, "log"),
                self.device_key(&device, "ids"),
                self.device_key(&device, "ids-until"),
            ];
            let args: [&[u8]; 5] = [
                id,
                &json,
                expires.as_bytes(),
                history.as_bytes(),
                keep_until.as_bytes(),
            ];
            async move {
                let (offset, queued): (u64, u8) =
                    self.run(&self.scripts.append, &keys, &args).await?;
                if by_vendor && queued == 0 {
                    self.queue_vendor(&device, offset, now, id, &keys[2])
                        .await?;
                }
                Ok::<_, StoreError>((device, offset))
            }
        });
        let offsets: Vec<(String, u64)> = futures_util::stream::iter(appends)
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        // Every instance hears which devices have news before the answer is kept: a
        // publish cut short before its answer is published again, and wakes them again.
        let channel = &self.channel();
        for line in wake_lines(&offsets) {
            let line = &line;
            (self.redis)
                .call(true, |mut c| async move {
                    c.publish::<_, _, ()>(channel, line).await
                })
                .await
                .map_err(failed)?;
        }
        let text = answer(&offsets);
        let (key, value) = (&answer_key, &text);
        let options = &redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(keep_ms));
        let stored: Option<String> = (self.redis)
            .call(true, |mut c| async move {
                c.set_options(key, value, options.clone()).await
            })
            .await
            .map_err(failed)?;
        match stored {
            Some(_) => Ok(text),
            // Published meanwhile by another instance: its answer stands (the offsets
            // are the same, each device's append being idempotent).
            None => Ok(self.answer_at(&answer_key).await?.unwrap_or(text)),
        }
    }

    /// Queues the vendor send of `device`'s message `offset` (due `now`), then marks it
    /// queued in the device's record of message `id` (the key `ids`): a publish made
    /// again does not queue it again, even once the first send is over.
    async fn queue_vendor(
        &self,
        device: &str,
        offset: u64,
        now: u64,
        id: &[u8],
        ids: &str,
    ) -> Result<(), StoreError> {
        // NX: a publish made again leaves a claimed job's lease alone.
        let (due, job) = (&self.vendor_key("due"), &format!("{offset}:{device}"));
        (self.redis)
            .call(true, |mut c| async move {
                redis::cmd("ZADD")
                    .arg(due)
                    .arg("NX")
                    .arg(now)
                    .arg(job)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .map_err(failed)?;
        let offset = offset.to_string();
        let keys = [ids.to_string()];
        self.run::<u8>(&self.scripts.queued, &keys, &[id, offset.as_bytes()])
            .await
            .map(drop)
    }

    async fn answer_at(&self, key: &str) -> Result<Option<String>, StoreError> {
        let result = self
            .redis
            .call(true, |mut c| async move { c.get(key).await })
            .await;
        result.map_err(failed)
    }

    async fn register_now(&self, device: Device) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&device).map_err(|e| StoreError::Failed(e.to_string()))?;
        let keys = [self.device_key(&device.id, "dev")];
        let (stored, old): (u8, Option<String>) = self
            .run(
                &self.scripts.register,
                &keys,
                &[&json, device.user.as_bytes()],
            )
            .await?;
        if stored == 0 {
            return Err(StoreError::Taken);
        }
        let mut add = vec![self.index_key('u', &device.user)];
        add.extend(device.topics.iter().map(|t| self.index_key('t', t)));
        self.index(add, &device.id, true).await?;
        let old = old.and_then(|o| serde_json::from_str::<Device>(&o).ok());
        let left: Vec<String> = (old.iter().flat_map(|o| &o.topics))
            .filter(|t| !device.topics.contains(t))
            .map(|t| self.index_key('t', t))
            .collect();
        self.index(left, &device.id, false).await
    }

    async fn unbind_now(&self, user: String, device: String) -> Result<bool, StoreError> {
        let keys = [
            self.device_key(&device, "dev"),
            self.device_key(&device, "cur"),
            self.device_key(&device, "log"),
        ];
        let old: Option<String> = self
            .run(&self.scripts.unbind, &keys, &[user.as_bytes()])
            .await?;
        let Some(old) = old else {
            return Ok(false);
        };
        let mut indexes = vec![self.index_key('u', &user)];
        if let Ok(old) = serde_json::from_str::<Device>(&old) {
            indexes.extend(old.topics.iter().map(|t| self.index_key('t', t)));
        }
        self.index(indexes, &device, false).await?;
        Ok(true)
    }

    async fn backlog_now(
        &self,
        device: String,
        after: u64,
        max: usize,
        now_ms: u64,
    ) -> Result<Backlog, StoreError> {
        let keys = [
            self.device_key(&device, "cur"),
            self.device_key(&device, "log"),
        ];
        let args = [after.to_string(), max.to_string(), now_ms.to_string()];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let reply: Vec<redis::Value> = self.run(&self.scripts.backlog, &keys, &args).await?;
        let number = |value: Option<&redis::Value>| -> u64 {
            value
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .unwrap_or(0)
        };
        let (next, lost, expired) = (
            number(reply.first()),
            number(reply.get(1)),
            number(reply.get(2)),
        );
        let mut backlog = Backlog {
            expired,
            ..Backlog::default()
        };
        for pair in reply.get(3..).unwrap_or_default().chunks_exact(2) {
            let offset = number(pair.first());
            let message = redis::from_redis_value_ref::<Vec<u8>>(&pair[1]).ok();
            match message.and_then(|m| serde_json::from_slice::<Message>(&m).ok()) {
                Some(message) => backlog.entries.push(Stored { offset, message }),
                None => tracing::warn!(%device, offset, "push store: an unreadable message"),
            }
        }
        // Offsets after `after` and before the first message still kept, up to the
        // last one lost, are gone.
        let first_kept = backlog.entries.first().map_or(next, |e| e.offset);
        let to = lost.min(first_kept.saturating_sub(1));
        if to > after {
            backlog.lost = Some((after + 1, to));
        }
        Ok(backlog)
    }

    async fn claim_now(
        &self,
        now_ms: u64,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<VendorJob>, StoreError> {
        let keys = [self.vendor_key("due"), self.vendor_key("tries")];
        let args = [now_ms.to_string(), max.to_string(), lease_ms.to_string()];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let claimed: Vec<String> = self.run(&self.scripts.claim, &keys, &args).await?;
        let mut jobs = Vec::with_capacity(claimed.len() / 2);
        for pair in claimed.chunks_exact(2) {
            let (job, attempts) = (&pair[0], pair[1].parse().unwrap_or(0));
            let Some((offset, device)) = job.split_once(':') else {
                self.end_job(job).await?;
                continue;
            };
            let offset: u64 = offset.parse().unwrap_or(0);
            let keys = [
                self.device_key(device, "dev"),
                self.device_key(device, "cur"),
                self.device_key(device, "log"),
            ];
            let offset_text = offset.to_string();
            let found: Vec<String> =
                (self.run(&self.scripts.job, &keys, &[offset_text.as_bytes()])).await?;
            let device = found
                .first()
                .and_then(|d| serde_json::from_str::<Device>(d).ok());
            let message = found
                .get(1)
                .and_then(|m| serde_json::from_str::<Message>(m).ok())
                .filter(|m| m.expires_ms > now_ms);
            match (device.filter(|d| d.token.is_some()), message) {
                (Some(device), Some(message)) => jobs.push(VendorJob {
                    device,
                    offset,
                    message,
                    attempts,
                }),
                _ => self.end_job(job).await?,
            }
        }
        Ok(jobs)
    }

    /// Removes a vendor job and its attempts.
    async fn end_job(&self, job: &str) -> Result<(), StoreError> {
        let (due, tries) = (&self.vendor_key("due"), &self.vendor_key("tries"));
        let result = self
            .redis
            .call(true, |mut c| async move {
                redis::pipe()
                    .atomic()
                    .zrem(due, job)
                    .hdel(tries, job)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        result.map_err(failed)
    }

    async fn vendor_done_now(
        &self,
        device: String,
        offset: u64,
        done: VendorDone,
    ) -> Result<(), StoreError> {
        let job = format!("{offset}:{device}");
        match done {
            VendorDone::Finished => self.end_job(&job).await,
            VendorDone::RetryAt(at) => {
                let keys = [self.vendor_key("due"), self.vendor_key("tries")];
                let at = at.to_string();
                (self.run::<u8>(&self.scripts.retry, &keys, &[job.as_bytes(), at.as_bytes()]))
                    .await
                    .map(drop)
            }
            VendorDone::Unregistered => {
                self.end_job(&job).await?;
                // The device's other jobs end when claimed: it has no token any more.
                let key = self.device_key(&device, "dev");
                let read = (self.redis.call(true, |mut c| {
                    let key = &key;
                    async move { c.get::<_, Option<String>>(key).await }
                }))
                .await
                .map_err(failed)?;
                let Some(read) = read else { return Ok(()) };
                let Ok(old) = serde_json::from_str::<Device>(&read) else {
                    return Ok(());
                };
                let pruned = serde_json::to_vec(&Device { token: None, ..old })
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                // Unless the device registered again meanwhile (a new token).
                let _: u8 =
                    (self.run(&self.scripts.swap, &[key], &[read.as_bytes(), &pruned])).await?;
                Ok(())
            }
        }
    }

    async fn depths_now(&self) -> Result<(Option<u64>, u64), StoreError> {
        let due = &self.vendor_key("due");
        let vendor: u64 = (self.redis)
            .call(true, |mut c| async move { c.zcard(due).await })
            .await
            .map_err(failed)?;
        // Streams spread over a cluster are not counted.
        Ok((None, vendor))
    }
}

impl PushStore for RedisPushStore {
    fn register(&self, device: Device) -> Reply<'_, ()> {
        Box::pin(self.register_now(device))
    }

    fn unbind(&self, user: String, device: String) -> Reply<'_, bool> {
        Box::pin(self.unbind_now(user, device))
    }

    fn devices(&self, user: String) -> Reply<'_, Vec<Device>> {
        Box::pin(async move {
            let ids = self.members(self.index_key('u', &user)).await?;
            self.read_devices(ids, |d| d.user == user).await
        })
    }

    fn device(&self, id: String) -> Reply<'_, Option<Device>> {
        Box::pin(async move { Ok(self.read_devices(vec![id], |_| true).await?.pop()) })
    }

    fn targets(&self, target: Target) -> Reply<'_, Vec<Device>> {
        Box::pin(async move {
            match target {
                Target::User(user) => {
                    let ids = self.members(self.index_key('u', &user)).await?;
                    self.read_devices(ids, |d| d.user == user).await
                }
                Target::Topic(topic) => {
                    let ids = self.members(self.index_key('t', &topic)).await?;
                    self.read_devices(ids, |d| d.topics.contains(&topic)).await
                }
                Target::Device(id) => self.read_devices(vec![id], |_| true).await,
            }
        })
    }

    fn answer(&self, id: String) -> Reply<'_, Option<String>> {
        Box::pin(async move { self.answer_at(&self.answer_key(&id)).await })
    }

    fn publish(&self, publication: Publication) -> Reply<'_, String> {
        Box::pin(self.publish_now(publication))
    }

    fn backlog(&self, device: String, after: u64, max: usize, now_ms: u64) -> Reply<'_, Backlog> {
        Box::pin(self.backlog_now(device, after, max, now_ms))
    }

    fn ack(&self, device: String, offset: u64) -> Reply<'_, u64> {
        Box::pin(async move {
            let keys = [
                self.device_key(&device, "cur"),
                self.device_key(&device, "log"),
            ];
            let offset = offset.to_string();
            self.run(&self.scripts.ack, &keys, &[offset.as_bytes()])
                .await
        })
    }

    fn claim_vendor(&self, now_ms: u64, max: usize, lease_ms: u64) -> Reply<'_, Vec<VendorJob>> {
        Box::pin(self.claim_now(now_ms, max, lease_ms))
    }

    fn vendor_done(&self, device: String, offset: u64, done: VendorDone) -> Reply<'_, ()> {
        Box::pin(self.vendor_done_now(device, offset, done))
    }

    fn depths(&self) -> Reply<'_, (Option<u64>, u64)> {
        Box::pin(self.depths_now())
    }

    fn sweep(&self, _now_ms: u64) -> Reply<'_, ()> {
        // Redis expires answers, id records and streams by their TTLs.
        Box::pin(async { Ok(()) })
    }
}

/// Device ids in one wake-up line at most: a line goes to every instance, and Redis
/// bounds what a subscriber may have waiting (`client-output-buffer-limit pubsub`).
const WAKE_LINE_DEVICES: usize = 1000;

/// The lines that tell every instance of the fleet that messages were stored for the
/// devices of `offsets`: each `w`, then device ids, separated by `\n`.
fn wake_lines(offsets: &[(String, u64)]) -> impl Iterator<Item = String> + '_ {
    offsets.chunks(WAKE_LINE_DEVICES).map(|chunk| {
        let mut line = String::from("w");
        for (device, _) in chunk {
            line.push('\n');
            line.push_str(device);
        }
        line
    })
}

/// A Redis failure as the store's.
fn failed(failure: RedisFailure) -> StoreError {
    StoreError::Failed(failure.to_string())
}
