//! The embedded store's tables, and the small reads and writes its parts share.

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::push::store::{Device, StoreError};

/// Device id → the device, as JSON.
pub(super) const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// (user, device) → nothing: the user's devices.
pub(super) const USER_DEVICES: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("user_devices");
/// (topic, device) → nothing: a topic's followers.
pub(super) const TOPIC_DEVICES: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("topic_devices");
/// (device, offset) → the message, as JSON.
pub(super) const STREAMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("streams");
/// Device → (next offset, acked offset, last offset lost unread).
pub(super) const CURSORS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("cursors");
/// (device, offset) → (attempts so far, not before ms): vendor sends to make.
pub(super) const VENDOR: TableDefinition<(&str, u64), (u32, u64)> = TableDefinition::new("vendor");
/// Message id → (the answer, kept until ms).
pub(super) const ANSWERS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("answers");

/// A redb failure as the store's.
pub(super) fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

/// Creates every table, so that reads never meet a missing one.
pub(super) fn create(db: &Database) -> Result<(), StoreError> {
    write(db, |tx| {
        tx.open_table(DEVICES)?;
        tx.open_table(USER_DEVICES)?;
        tx.open_table(TOPIC_DEVICES)?;
        tx.open_table(STREAMS)?;
        tx.open_table(CURSORS)?;
        tx.open_table(ANSWERS)?;
        tx.open_table(VENDOR)?;
        Ok(())
    })
}

/// Runs `work` in one write transaction and commits it (fsync'd).
pub(super) fn write<T>(
    db: &Database,
    work: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
) -> Result<T, StoreError> {
    let tx = db.begin_write().map_err(failed)?;
    let value = work(&tx).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(value)
}

/// A device stored as JSON; `None` if it does not parse.
pub(super) fn device_of(bytes: &[u8]) -> Option<Device> {
    serde_json::from_slice(bytes).ok()
}

/// The devices of `ids` that are registered.
pub(super) fn read_devices(db: &Database, ids: Vec<String>) -> Result<Vec<Device>, StoreError> {
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
pub(super) fn members(
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
pub(super) fn trim(
    streams: &mut redb::Table<(&str, u64), &[u8]>,
    device: &str,
    offset: u64,
) -> Result<(), redb::Error> {
    streams.retain_in((device, 0)..=(device, offset), |_, _| false)?;
    Ok(())
}

/// Ends every vendor job of `device`.
pub(super) fn end_vendor_jobs(
    vendor: &mut redb::Table<(&str, u64), (u32, u64)>,
    device: &str,
) -> Result<(), redb::Error> {
    vendor.retain_in((device, 0)..=(device, u64::MAX), |_, _| false)?;
    Ok(())
}
