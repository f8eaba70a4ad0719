//! The embedded push store: one `redb` file next to the config. Every write is one
//! transaction committed with an fsync (redb's immediate durability) before it returns,
//! so a message is on disk before its publisher hears `202 Accepted`. redb is blocking:
//! each call runs on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::store::{
    Answer, Backlog, Device, Message, PushStore, StoreError, StoreFuture, Stored, Target,
    VendorDone, VendorJob,
};

/// Device id → the device, as JSON.
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// (user, device) → nothing: the user's devices.
const USER_DEVICES: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_devices");
/// (topic, device) → nothing: a topic's followers.
const TOPIC_DEVICES: TableDefinition<(&str, &str), ()> = TableDefinition::new("topic_devices");
/// (device, offset) → the message, as JSON.
const STREAMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("streams");
/// Device → (next offset, acked offset, last offset lost unread).
const CURSORS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("cursors");
/// (device, offset) → (attempts so far, not before ms): vendor sends to make.
const VENDOR: TableDefinition<(&str, u64), (u32, u64)> = TableDefinition::new("vendor");
/// Message id → (the answer, kept until ms).
const ANSWERS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("answers");

/// The embedded store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The most messages kept per device; older unacked ones are lost (and said so).
    history: u64,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, keeping at most `history` messages per
    /// device.
    pub fn open(path: &Path, history: u64) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(failed)?;
        // Create every table, so that reads never meet a missing one.
        let tx = db.begin_write().map_err(failed)?;
        {
            tx.open_table(DEVICES).map_err(failed)?;
            tx.open_table(USER_DEVICES).map_err(failed)?;
            tx.open_table(TOPIC_DEVICES).map_err(failed)?;
            tx.open_table(STREAMS).map_err(failed)?;
            tx.open_table(CURSORS).map_err(failed)?;
            tx.open_table(ANSWERS).map_err(failed)?;
            tx.open_table(VENDOR).map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
        Ok(Self {
            db: Arc::new(db),
            history: history.max(1),
        })
    }

    /// Runs `work` on the blocking pool.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&db))
                .await
                .map_err(failed)?
        })
    }
}

/// Runs `work` in one write transaction and commits it (fsync'd).
fn write<T>(
    db: &Database,
    work: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
) -> Result<T, StoreError> {
    let tx = db.begin_write().map_err(failed)?;
    let value = work(&tx).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(value)
}

fn device_of(bytes: &[u8]) -> Option<Device> {
    serde_json::from_slice(bytes).ok()
}

fn read_devices(db: &Database, ids: Vec<String>) -> Result<Vec<Device>, StoreError> {
    let tx = db.begin_read().map_err(failed)?;
    let devices = tx.open_table(DEVICES).map_err(failed)?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(bytes) = devices.get(id.as_str()).map_err(failed)? {
            found.extend(device_of(bytes.value()));
        }
    }
    Ok(found)
}

/// The second parts of the keys in `table` whose first part is `first`.
fn members(
    db: &Database,
    table: TableDefinition<(&str, &str), ()>,
    first: &str,
) -> Result<Vec<String>, StoreError> {
    let tx = db.begin_read().map_err(failed)?;
    let table = tx.open_table(table).map_err(failed)?;
    let mut ids = Vec::new();
    for entry in table.range((first, "")..).map_err(failed)? {
        let (key, ()) = entry.map(|(k, _)| (k, ())).map_err(failed)?;
        let (owner, id) = key.value();
        if owner != first {
            break;
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// Removes every stream entry of `device` up to `offset` (inclusive).
fn trim(
    streams: &mut redb::Table<(&str, u64), &[u8]>,
    device: &str,
    offset: u64,
) -> Result<(), redb::Error> {
    streams.retain_in((device, 0)..=(device, offset), |_, _| false)?;
    Ok(())
}

impl PushStore for EmbeddedStore {
    fn register(&self, device: Device) -> StoreFuture<'_, ()> {
        self.run(move |db| {
            let tx = db.begin_write().map_err(failed)?;
            {
                let mut devices = tx.open_table(DEVICES).map_err(failed)?;
                let old = devices
                    .get(device.id.as_str())
                    .map_err(failed)?
                    .and_then(|b| device_of(b.value()));
                if let Some(old) = &old {
                    if old.user != device.user {
                        return Err(StoreError::Taken);
                    }
                    let mut topics = tx.open_table(TOPIC_DEVICES).map_err(failed)?;
                    for topic in &old.topics {
                        topics
                            .remove((topic.as_str(), old.id.as_str()))
                            .map_err(failed)?;
                    }
                }
                let json = serde_json::to_vec(&device).map_err(failed)?;
                devices
                    .insert(device.id.as_str(), json.as_slice())
                    .map_err(failed)?;
                let mut users = tx.open_table(USER_DEVICES).map_err(failed)?;
                users
                    .insert((device.user.as_str(), device.id.as_str()), ())
                    .map_err(failed)?;
                let mut topics = tx.open_table(TOPIC_DEVICES).map_err(failed)?;
                for topic in &device.topics {
                    topics
                        .insert((topic.as_str(), device.id.as_str()), ())
                        .map_err(failed)?;
                }
            }
            tx.commit().map_err(failed)
        })
    }

    fn unbind(&self, user: String, device: String) -> StoreFuture<'_, bool> {
        self.run(move |db| {
            write(db, |tx| {
                let mut devices = tx.open_table(DEVICES)?;
                let old = devices
                    .get(device.as_str())?
                    .and_then(|b| device_of(b.value()));
                let Some(old) = old.filter(|d| d.user == user) else {
                    return Ok(false);
                };
                devices.remove(device.as_str())?;
                tx.open_table(VENDOR)?.retain_in(
                    (device.as_str(), 0)..=(device.as_str(), u64::MAX),
                    |_, _| false,
                )?;
                tx.open_table(USER_DEVICES)?
                    .remove((user.as_str(), device.as_str()))?;
                let mut topics = tx.open_table(TOPIC_DEVICES)?;
                for topic in &old.topics {
                    topics.remove((topic.as_str(), device.as_str()))?;
                }
                trim(&mut tx.open_table(STREAMS)?, &device, u64::MAX)?;
                // The offsets go on where they were (all acked): a client that kept its
                // last offset never acks a message of a later registration unread.
                let mut cursors = tx.open_table(CURSORS)?;
                let cursor = cursors.get(device.as_str())?.map(|c| c.value());
                if let Some((next, _, lost)) = cursor {
                    cursors.insert(device.as_str(), (next, next - 1, lost))?;
                }
                Ok(true)
            })
        })
    }

    fn devices(&self, user: String) -> StoreFuture<'_, Vec<Device>> {
        self.run(move |db| read_devices(db, members(db, USER_DEVICES, &user)?))
    }

    fn device(&self, id: String) -> StoreFuture<'_, Option<Device>> {
        self.run(move |db| Ok(read_devices(db, vec![id])?.pop()))
    }

    fn targets(&self, target: Target) -> StoreFuture<'_, Vec<Device>> {
        self.run(move |db| {
            let ids = match target {
                Target::User(user) => members(db, USER_DEVICES, &user)?,
                Target::Topic(topic) => members(db, TOPIC_DEVICES, &topic)?,
                Target::Device(id) => vec![id],
            };
            read_devices(db, ids)
        })
    }

    fn answer(&self, id: String) -> StoreFuture<'_, Option<String>> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(failed)?;
            let answers = tx.open_table(ANSWERS).map_err(failed)?;
            let answer = answers.get(id.as_str()).map_err(failed)?;
            Ok(answer.map(|a| a.value().0.to_string()))
        })
    }

    fn publish(
        &self,
        message: Message,
        devices: Vec<(String, bool)>,
        keep_ms: u64,
        answer: Answer,
    ) -> StoreFuture<'_, String> {
        let history = self.history;
        self.run(move |db| {
            let json = serde_json::to_vec(&message).map_err(failed)?;
            write(db, |tx| {
                let mut answers = tx.open_table(ANSWERS)?;
                if let Some(first) = answers.get(message.id.as_str())? {
                    return Ok(first.value().0.to_string());
                }
                let mut streams = tx.open_table(STREAMS)?;
                let mut cursors = tx.open_table(CURSORS)?;
                let mut vendor = tx.open_table(VENDOR)?;
                let mut offsets = Vec::with_capacity(devices.len());
                for (device, by_vendor) in devices {
                    let (next, acked, mut lost) = cursors
                        .get(device.as_str())?
                        .map_or((1, 0, 0), |c| c.value());
                    streams.insert((device.as_str(), next), json.as_slice())?;
                    // Past the history cap the oldest unacked messages go, and are lost.
                    if next > history && next - history > acked.max(lost) {
                        lost = next - history;
                        trim(&mut streams, &device, lost)?;
                    }
                    cursors.insert(device.as_str(), (next + 1, acked, lost))?;
                    if by_vendor {
                        vendor.insert((device.as_str(), next), (0, 0))?;
                    }
                    offsets.push((device, next));
                }
                let text = answer(&offsets);
                let until = message.expires_ms.max(crate::time::now_ms() + keep_ms);
                answers.insert(message.id.as_str(), (text.as_str(), until))?;
                Ok(text)
            })
        })
    }

    fn backlog(
        &self,
        device: String,
        after: u64,
        max: usize,
        now_ms: u64,
    ) -> StoreFuture<'_, Backlog> {
        self.run(move |db| {
            let (next, mut lost) = {
                let tx = db.begin_read().map_err(failed)?;
                let cursors = tx.open_table(CURSORS).map_err(failed)?;
                let cursor = cursors.get(device.as_str()).map_err(failed)?;
                cursor.map_or((1, 0), |c| (c.value().0, c.value().2))
            };
            let mut backlog = Backlog::default();
            let mut expired = Vec::new();
            {
                let tx = db.begin_read().map_err(failed)?;
                let streams = tx.open_table(STREAMS).map_err(failed)?;
                let range = (device.as_str(), after + 1)..(device.as_str(), next);
                for entry in streams.range(range).map_err(failed)? {
                    let (key, value) = entry.map_err(failed)?;
                    let offset = key.value().1;
                    match serde_json::from_slice::<Message>(value.value()) {
                        Ok(message) if message.expires_ms > now_ms => {
                            if backlog.entries.len() < max {
                                backlog.entries.push(Stored { offset, message });
                            }
                        }
                        _ => expired.push(offset),
                    }
                }
            }
            if let Some(&last) = expired.last() {
                // Expired messages leave the stream, and count as lost to whoever had not
                // read them.
                lost = lost.max(last);
                write(db, |tx| {
                    let mut streams = tx.open_table(STREAMS)?;
                    for offset in &expired {
                        streams.remove((device.as_str(), *offset))?;
                    }
                    let mut cursors = tx.open_table(CURSORS)?;
                    let cursor = cursors.get(device.as_str())?.map(|c| c.value());
                    if let Some((next, acked, was_lost)) = cursor {
                        cursors.insert(device.as_str(), (next, acked, was_lost.max(lost)))?;
                    }
                    Ok(())
                })?;
            }
            backlog.expired = expired.len() as u64;
            // Offsets after `after` and before the first message still kept, up to the
            // last one lost, are gone.
            let first_kept = backlog.entries.first().map_or(next, |e| e.offset);
            let to = lost.min(first_kept.saturating_sub(1));
            if to > after {
                backlog.lost = Some((after + 1, to));
            }
            Ok(backlog)
        })
    }

    fn ack(&self, device: String, offset: u64) -> StoreFuture<'_, u64> {
        self.run(move |db| {
            // Most acks of a resume move nothing: a read answers them.
            let acked = {
                let tx = db.begin_read().map_err(failed)?;
                let cursors = tx.open_table(CURSORS).map_err(failed)?;
                let cursor = cursors.get(device.as_str()).map_err(failed)?;
                cursor.map_or(0, |c| c.value().1)
            };
            if offset <= acked {
                return Ok(acked);
            }
            // An ack is written without its own fsync: the next durable commit (a publish)
            // carries it, and an ack lost in a crash only means a resend.
            let mut tx = db.begin_write().map_err(failed)?;
            tx.set_durability(redb::Durability::None).map_err(failed)?;
            let acked = (|| -> Result<u64, redb::Error> {
                let mut cursors = tx.open_table(CURSORS)?;
                let (next, acked, lost) = cursors
                    .get(device.as_str())?
                    .map_or((1, 0, 0), |c| c.value());
                // Only what was published can be acked.
                let offset = offset.min(next - 1);
                if offset <= acked {
                    return Ok(acked);
                }
                trim(&mut tx.open_table(STREAMS)?, &device, offset)?;
                cursors.insert(device.as_str(), (next, offset, lost))?;
                Ok(offset)
            })()
            .map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(acked)
        })
    }

    fn claim_vendor(
        &self,
        now_ms: u64,
        max: usize,
        lease_ms: u64,
    ) -> StoreFuture<'_, Vec<VendorJob>> {
        self.run(move |db| {
            write(db, |tx| {
                let mut vendor = tx.open_table(VENDOR)?;
                let due: Vec<(String, u64, u32)> = vendor
                    .iter()?
                    .filter_map(Result::ok)
                    .filter(|(_, v)| v.value().1 <= now_ms)
                    .map(|(k, v)| (k.value().0.to_string(), k.value().1, v.value().0))
                    .take(max)
                    .collect();
                let (devices, streams) = (tx.open_table(DEVICES)?, tx.open_table(STREAMS)?);
                let mut jobs = Vec::with_capacity(due.len());
                for (id, offset, attempts) in due {
                    let device = devices.get(id.as_str())?.and_then(|b| device_of(b.value()));
                    let message = (streams.get((id.as_str(), offset))?)
                        .and_then(|b| serde_json::from_slice::<Message>(b.value()).ok())
                        .filter(|m| m.expires_ms > now_ms);
                    match (device.filter(|d| d.token.is_some()), message) {
                        (Some(device), Some(message)) => {
                            vendor.insert((id.as_str(), offset), (attempts, now_ms + lease_ms))?;
                            jobs.push(VendorJob {
                                device,
                                offset,
                                message,
                                attempts,
                            });
                        }
                        _ => {
                            vendor.remove((id.as_str(), offset))?;
                        }
                    }
                }
                Ok(jobs)
            })
        })
    }

    fn vendor_done(&self, device: String, offset: u64, done: VendorDone) -> StoreFuture<'_, ()> {
        self.run(move |db| {
            write(db, |tx| {
                let mut vendor = tx.open_table(VENDOR)?;
                match done {
                    VendorDone::Finished => {
                        vendor.remove((device.as_str(), offset))?;
                    }
                    VendorDone::RetryAt(at) => {
                        let attempts = vendor
                            .get((device.as_str(), offset))?
                            .map_or(0, |v| v.value().0);
                        vendor.insert((device.as_str(), offset), (attempts + 1, at))?;
                    }
                    VendorDone::Unregistered => {
                        vendor.retain_in(
                            (device.as_str(), 0)..=(device.as_str(), u64::MAX),
                            |_, _| false,
                        )?;
                        let mut devices = tx.open_table(DEVICES)?;
                        let pruned = (devices.get(device.as_str())?)
                            .and_then(|b| device_of(b.value()))
                            .map(|d| Device { token: None, ..d });
                        if let Some(pruned) = pruned {
                            let json = serde_json::to_vec(&pruned)
                                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                            devices.insert(device.as_str(), json.as_slice())?;
                        }
                    }
                }
                Ok(())
            })
        })
    }

    fn depths(&self) -> StoreFuture<'_, (u64, u64)> {
        self.run(|db| {
            let tx = db.begin_read().map_err(failed)?;
            let streams = tx
                .open_table(STREAMS)
                .map_err(failed)?
                .len()
                .map_err(failed)?;
            let vendor = tx
                .open_table(VENDOR)
                .map_err(failed)?
                .len()
                .map_err(failed)?;
            Ok((streams, vendor))
        })
    }

    fn sweep(&self, now_ms: u64) -> StoreFuture<'_, ()> {
        self.run(move |db| {
            write(db, |tx| {
                tx.open_table(ANSWERS)?
                    .retain(|_, (_, until)| until > now_ms)?;
                Ok(())
            })
        })
    }
}
