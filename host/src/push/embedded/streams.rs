//! Devices' message streams in the embedded store: a publish appended to each target's
//! stream with its answer, a device's backlog read (expired messages leave), acks, and
//! the answers kept for idempotency.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::tables::{ANSWERS, CURSORS, STREAMS, VENDOR, failed, trim, write};
use crate::push::store::{Backlog, Message, Publication, StoreError, Stored};

/// The answer given when `id` was first published, if it was.
pub(super) fn answer(db: &Database, id: &str) -> Result<Option<String>, StoreError> {
    let tx = db.begin_read().map_err(failed)?;
    let answers = tx.open_table(ANSWERS).map_err(failed)?;
    let answer = answers.get(id).map_err(failed)?;
    Ok(answer.map(|a| a.value().0.to_string()))
}

/// Appends the message to each device's stream (at most `history` kept per device) and
/// keeps its answer, in one transaction; the first answer if the id was published.
pub(super) fn publish(
    db: &Database,
    publication: Publication,
    history: u64,
) -> Result<String, StoreError> {
    let Publication {
        message,
        devices,
        keep_ms,
        answer,
    } = publication;
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
}

/// Up to `max` messages of `device` after `after` live at `now_ms`; the expired ones
/// leave the stream and count as lost.
pub(super) fn backlog(
    db: &Database,
    device: &str,
    after: u64,
    max: usize,
    now_ms: u64,
) -> Result<Backlog, StoreError> {
    let (next, mut lost) = {
        let tx = db.begin_read().map_err(failed)?;
        let cursors = tx.open_table(CURSORS).map_err(failed)?;
        let cursor = cursors.get(device).map_err(failed)?;
        cursor.map_or((1, 0), |c| (c.value().0, c.value().2))
    };
    let mut backlog = Backlog::default();
    let mut expired = Vec::new();
    {
        let tx = db.begin_read().map_err(failed)?;
        let streams = tx.open_table(STREAMS).map_err(failed)?;
        let range = (device, after + 1)..(device, next);
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
                streams.remove((device, *offset))?;
            }
            let mut cursors = tx.open_table(CURSORS)?;
            let cursor = cursors.get(device)?.map(|c| c.value());
            if let Some((next, acked, was_lost)) = cursor {
                cursors.insert(device, (next, acked, was_lost.max(lost)))?;
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
}

/// Acks `device`'s messages up to `offset` (no further than published); the acked offset.
pub(super) fn ack(db: &Database, device: &str, offset: u64) -> Result<u64, StoreError> {
    // Most acks of a resume move nothing: a read answers them.
    let acked = {
        let tx = db.begin_read().map_err(failed)?;
        let cursors = tx.open_table(CURSORS).map_err(failed)?;
        let cursor = cursors.get(device).map_err(failed)?;
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
        let (next, acked, lost) = cursors.get(device)?.map_or((1, 0, 0), |c| c.value());
        // Only what was published can be acked.
        let offset = offset.min(next - 1);
        if offset <= acked {
            return Ok(acked);
        }
        trim(&mut tx.open_table(STREAMS)?, device, offset)?;
        cursors.insert(device, (next, offset, lost))?;
        Ok(offset)
    })()
    .map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(acked)
}

/// Messages kept in all streams, and vendor sends waiting.
pub(super) fn depths(db: &Database) -> Result<(u64, u64), StoreError> {
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
}

/// Forgets the answers kept past their time at `now_ms`.
pub(super) fn sweep(db: &Database, now_ms: u64) -> Result<(), StoreError> {
    write(db, |tx| {
        tx.open_table(ANSWERS)?
            .retain(|_, (_, until)| until > now_ms)?;
        Ok(())
    })
}
