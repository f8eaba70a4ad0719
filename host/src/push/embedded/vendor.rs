//! Vendor sends in the embedded store: claiming the due ones for an attempt, and
//! recording what became of it.

use redb::{Database, ReadableTable};

use super::tables::{DEVICES, STREAMS, VENDOR, device_of, end_vendor_jobs, write};
use crate::push::store::{Device, Message, StoreError, VendorDone, VendorJob};

/// Claims up to `max` jobs due at `now_ms` until `now_ms + lease_ms`; jobs whose message
/// or device token is gone end here.
pub(super) fn claim(
    db: &Database,
    now_ms: u64,
    max: usize,
    lease_ms: u64,
) -> Result<Vec<VendorJob>, StoreError> {
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
}

/// Records the outcome of `device`'s job at `offset`.
pub(super) fn done(
    db: &Database,
    device: &str,
    offset: u64,
    done: VendorDone,
) -> Result<(), StoreError> {
    write(db, |tx| {
        let mut vendor = tx.open_table(VENDOR)?;
        match done {
            VendorDone::Finished => {
                vendor.remove((device, offset))?;
            }
            VendorDone::RetryAt(at) => {
                let attempts = vendor.get((device, offset))?.map_or(0, |v| v.value().0);
                vendor.insert((device, offset), (attempts + 1, at))?;
            }
            VendorDone::Unregistered => {
                end_vendor_jobs(&mut vendor, device)?;
                let mut devices = tx.open_table(DEVICES)?;
                let pruned = (devices.get(device)?)
                    .and_then(|b| device_of(b.value()))
                    .map(|d| Device { token: None, ..d });
                if let Some(pruned) = pruned {
                    let json = serde_json::to_vec(&pruned)
                        .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                    devices.insert(device, json.as_slice())?;
                }
            }
        }
        Ok(())
    })
}
