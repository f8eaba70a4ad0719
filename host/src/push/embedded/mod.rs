//! The embedded push store: one `redb` file next to the config. Every write is one
//! transaction committed with an fsync (redb's immediate durability) before it returns,
//! so a message is on disk before its publisher hears `202 Accepted`. redb is blocking:
//! each call runs on tokio's blocking pool.

mod devices;
mod streams;
mod tables;
mod vendor;

use std::path::Path;
use std::sync::Arc;

use redb::Database;

use super::store::{
    Backlog, Device, Publication, PushStore, Reply, StoreError, Target, VendorDone, VendorJob,
};
use tables::failed;

/// The embedded store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The most messages kept per device; older unacked ones are lost (and said so).
    history: u64,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, keeping at most `history` messages per
    /// device.
    pub fn open(path: &Path, history: u64) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(failed)?;
        tables::create(&db)?;
        Ok(Self {
            db: Arc::new(db),
            history: history.max(1),
        })
    }

    /// Runs `work` on the blocking pool.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Reply<'_, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&db))
                .await
                .map_err(failed)?
        })
    }
}

impl PushStore for EmbeddedStore {
    fn register(&self, device: Device) -> Reply<'_, ()> {
        self.run(move |db| devices::register(db, device))
    }

    fn unbind(&self, user: String, device: String) -> Reply<'_, bool> {
        self.run(move |db| devices::unbind(db, &user, &device))
    }

    fn devices(&self, user: String) -> Reply<'_, Vec<Device>> {
        self.run(move |db| devices::of_user(db, &user))
    }

    fn device(&self, id: String) -> Reply<'_, Option<Device>> {
        self.run(move |db| Ok(tables::read_devices(db, vec![id])?.pop()))
    }

    fn targets(&self, target: Target) -> Reply<'_, Vec<Device>> {
        self.run(move |db| devices::targets(db, target))
    }

    fn answer(&self, id: String) -> Reply<'_, Option<String>> {
        self.run(move |db| streams::answer(db, &id))
    }

    fn publish(&self, publication: Publication) -> Reply<'_, String> {
        let history = self.history;
        self.run(move |db| streams::publish(db, publication, history))
    }

    fn backlog(&self, device: String, after: u64, max: usize, now_ms: u64) -> Reply<'_, Backlog> {
        self.run(move |db| streams::backlog(db, &device, after, max, now_ms))
    }

    fn ack(&self, device: String, offset: u64) -> Reply<'_, u64> {
        self.run(move |db| streams::ack(db, &device, offset))
    }

    fn claim_vendor(&self, now_ms: u64, max: usize, lease_ms: u64) -> Reply<'_, Vec<VendorJob>> {
        self.run(move |db| vendor::claim(db, now_ms, max, lease_ms))
    }

    fn vendor_done(&self, device: String, offset: u64, done: VendorDone) -> Reply<'_, ()> {
        self.run(move |db| vendor::done(db, &device, offset, done))
    }

    fn depths(&self) -> Reply<'_, (Option<u64>, u64)> {
        self.run(|db| streams::depths(db).map(|(kept, vendor)| (Some(kept), vendor)))
    }

    fn sweep(&self, now_ms: u64) -> Reply<'_, ()> {
        self.run(move |db| streams::sweep(db, now_ms))
    }
}
