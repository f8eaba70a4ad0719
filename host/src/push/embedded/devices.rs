//! Devices in the embedded store: registering one (with its user and topics), unbinding
//! it, and the devices a target names.

use redb::{Database, ReadableTable};

use super::tables::{
    CURSORS, DEVICES, STREAMS, TOPIC_DEVICES, USER_DEVICES, VENDOR, device_of, end_vendor_jobs,
    failed, members, read_devices, trim, write,
};
use crate::push::store::{Device, StoreError, Target};

/// Registers `device` (again: its topics are replaced); `Taken` if another user has it.
pub(super) fn register(db: &Database, device: Device) -> Result<(), StoreError> {
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
}

/// Forgets `device` of `user` with its stream and vendor jobs; false if `user` has no
/// such device.
pub(super) fn unbind(db: &Database, user: &str, device: &str) -> Result<bool, StoreError> {
    write(db, |tx| {
        let mut devices = tx.open_table(DEVICES)?;
        let old = devices.get(device)?.and_then(|b| device_of(b.value()));
        let Some(old) = old.filter(|d| d.user == user) else {
            return Ok(false);
        };
        devices.remove(device)?;
        end_vendor_jobs(&mut tx.open_table(VENDOR)?, device)?;
        tx.open_table(USER_DEVICES)?.remove((user, device))?;
        let mut topics = tx.open_table(TOPIC_DEVICES)?;
        for topic in &old.topics {
            topics.remove((topic.as_str(), device))?;
        }
        trim(&mut tx.open_table(STREAMS)?, device, u64::MAX)?;
        // The offsets go on where they were (all acked): a client that kept its
        // last offset never acks a message of a later registration unread.
        let mut cursors = tx.open_table(CURSORS)?;
        let cursor = cursors.get(device)?.map(|c| c.value());
        if let Some((next, _, lost)) = cursor {
            cursors.insert(device, (next, next - 1, lost))?;
        }
        Ok(true)
    })
}

/// The devices bound to `user`.
pub(super) fn of_user(db: &Database, user: &str) -> Result<Vec<Device>, StoreError> {
    read_devices(db, members(db, USER_DEVICES, user)?)
}

/// The registered devices `target` names.
pub(super) fn targets(db: &Database, target: Target) -> Result<Vec<Device>, StoreError> {
    let ids = match target {
        Target::User(user) => members(db, USER_DEVICES, &user)?,
        Target::Topic(topic) => members(db, TOPIC_DEVICES, &topic)?,
        Target::Device(id) => vec![id],
    };
    read_devices(db, ids)
}
