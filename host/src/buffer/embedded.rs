//! The embedded buffer store: one `redb` file next to the config (one process holds it).
//! Every write is committed with an fsync (redb's immediate durability) before its reply,
//! so a request is on disk before its client hears `202 Accepted`.
//!
//! Writes go to one writer thread, which commits the writes waiting for it together (group
//! commit): one fsync serves every request that arrived during the one before, so accepted
//! writes per second are not capped at the disk's fsyncs per second. Claims are local:
//! a claimed request is marked in memory, never on disk, so that a crash (which forgets the
//! marks) leaves every undelivered request due again at the restart.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::store::{BufferStore, Claimed, Finished, Reply, StoreError, TicketState};

/// (route, ticket) → the stored request (pending, or dead and kept).
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("buffer_entries");
/// (route, due ms, ticket) → nothing: pending requests in the order they are due.
const QUEUE: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("buffer_queue");
/// (route, ticket) → (due ms, attempts so far, the last attempt's error or "").
const PENDING: TableDefinition<(&str, &str), (u64, u32, &str)> =
    TableDefinition::new("buffer_pending");
/// (route, ticket) → (kept until ms, the status as JSON): delivered and dead tickets.
const DONE: TableDefinition<(&str, &str), (u64, &str)> = TableDefinition::new("buffer_done");
/// (kept until ms, route, ticket) → nothing: when each status goes.
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("buffer_expiry");
/// (route, died at ms, ticket) → nothing: the dead letters, oldest first.
const DEAD: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("buffer_dead");
/// Route → (pending requests, dead requests kept).
const COUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("buffer_counts");

/// Writes committed together, at most.
const MAX_BATCH: usize = 512;

/// What the writer thread calls once a batch is committed (or not).
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// One write: applied within the batch's transaction.
type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<Completion, redb::Error> + Send>;

/// Claims held by this process: (route, ticket).
type Claims = Arc<Mutex<HashSet<(String, String)>>>;

/// The embedded store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    jobs: std::sync::mpsc::Sender<Job>,
    claims: Claims,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Arc::new(Database::create(path).map_err(failed)?);
        let tx = db.begin_write().map_err(failed)?;
        {
            tx.open_table(ENTRIES).map_err(failed)?;
            tx.open_table(QUEUE).map_err(failed)?;
            tx.open_table(PENDING).map_err(failed)?;
            tx.open_table(DONE).map_err(failed)?;
            tx.open_table(EXPIRY).map_err(failed)?;
            tx.open_table(DEAD).map_err(failed)?;
            tx.open_table(COUNTS).map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let writer = db.clone();
        std::thread::Builder::new()
            .name("weir-buffer-writer".into())
            .spawn(move || write_batches(&writer, &queue))
            .map_err(failed)?;
        Ok(Self {
            db,
            jobs,
            claims: Arc::default(),
        })
    }

    /// Applies `work` in the writer's next batch; the reply comes once it is committed.
    /// `after` runs on the writer thread once the batch is committed or not.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, redb::Error> + Send + 'static,
        after: impl FnOnce() + Send + 'static,
    ) -> Reply<'static, T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let value = work(tx)?;
            Ok(Box::new(move |committed: Result<(), StoreError>| {
                after();
                let _ = reply.send(committed.map(|()| value));
            }))
        });
        let sent = self.jobs.send(job).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError("the writer has stopped".into()));
            }
            answer
                .await
                .map_err(|_| StoreError("the write was not applied".into()))?
        })
    }

    /// Runs `work` on the blocking pool.
    fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Reply<'static, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&db).map_err(failed))
                .await
                .map_err(failed)?
        })
    }

    /// What forgets the claim on `ticket` of `route` once its outcome is committed.
    fn forget(&self, route: &str, ticket: &str) -> impl FnOnce() + Send + 'static {
        let (claims, key) = (self.claims.clone(), (route.to_string(), ticket.to_string()));
        move || {
            if let Ok(mut claims) = claims.lock() {
                claims.remove(&key);
            }
        }
    }
}

/// The writer thread: takes the writes waiting, applies them in one transaction, commits
/// (one fsync) and answers each; until the store is dropped.
fn write_batches(db: &Database, queue: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A job not run (the transaction could not begin, or an earlier job failed) is
        // dropped, and its caller told the write was not applied.
        let tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, "buffer store: a write transaction did not begin");
                continue;
            }
        };
        let mut done = Vec::with_capacity(batch.len());
        let mut failure = None;
        for job in batch {
            match job(&tx) {
                Ok(completion) => done.push(completion),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        let committed = match failure {
            Some(e) => {
                let _ = tx.abort();
                Err(StoreError(e))
            }
            None => tx.commit().map_err(failed),
        };
        if let Err(e) = &committed {
            tracing::warn!(error = %e, "buffer store: a batch of writes failed");
        }
        for completion in done {
            completion(committed.clone());
        }
    }
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Adds `pending` and `dead` to a route's counts.
fn count(
    counts: &mut redb::Table<&str, (u64, u64)>,
    route: &str,
    pending: i64,
    dead: i64,
) -> Result<(u64, u64), redb::Error> {
    let (p, d) = counts.get(route)?.map_or((0, 0), |c| c.value());
    let now = (
        p.saturating_add_signed(pending),
        d.saturating_add_signed(dead),
    );
    counts.insert(route, now)?;
    Ok(now)
}

impl BufferStore for EmbeddedStore {
    fn accept(&self, route: &str, ticket: &str, entry: Bytes, max_pending: u64) -> Reply<'_, bool> {
        let (route, ticket) = (route.to_string(), ticket.to_string());
        self.write(
            move |tx| {
                let mut counts = tx.open_table(COUNTS)?;
                let (pending, _) = counts.get(route.as_str())?.map_or((0, 0), |c| c.value());
                if pending >= max_pending {
                    return Ok(false);
                }
                let now = crate::time::now_ms();
                let (r, t) = (route.as_str(), ticket.as_str());
                tx.open_table(ENTRIES)?.insert((r, t), entry.as_ref())?;
                tx.open_table(QUEUE)?.insert((r, now, t), ())?;
                tx.open_table(PENDING)?.insert((r, t), (now, 0, ""))?;
                count(&mut counts, r, 1, 0)?;
                Ok(true)
            },
            || {},
        )
    }

    fn claim(
        &self,
        route: &str,
        max: usize,
        _lease_ms: u64,
        now_ms: u64,
    ) -> Reply<'_, Vec<Claimed>> {
        let (route, claims) = (route.to_string(), self.claims.clone());
        self.read(move |db| {
            // The read happens under the claims' lock, and an outcome's claim is forgotten
            // only after its commit: a request finished meanwhile is either still claimed
            // here, or seen finished.
            let Ok(mut held) = claims.lock() else {
                return Ok(Vec::new());
            };
            let tx = db.begin_read()?;
            let queue = tx.open_table(QUEUE)?;
            let (entries, pending) = (tx.open_table(ENTRIES)?, tx.open_table(PENDING)?);
            let mut claimed = Vec::new();
            let r = route.as_str();
            for item in queue.range((r, 0, "")..(r, now_ms.saturating_add(1), ""))? {
                if claimed.len() >= max {
                    break;
                }
                let (key, _) = item?;
                let ticket = key.value().2.to_string();
                let key = (route.clone(), ticket);
                if held.contains(&key) {
                    continue;
                }
                let t = key.1.as_str();
                let (Some(entry), Some(state)) = (entries.get((r, t))?, pending.get((r, t))?)
                else {
                    continue;
                };
                claimed.push(Claimed {
                    ticket: key.1.clone(),
                    handle: String::new(),
                    attempts: state.value().1,
                    entry: Bytes::copy_from_slice(entry.value()),
                });
                held.insert(key);
            }
            Ok(claimed)
        })
    }

    fn renew(&self, _route: &str, _claimed: &Claimed) -> Reply<'_, bool> {
        // Claims are this process's own: they never lapse while it lives.
        Box::pin(async { Ok(true) })
    }

    fn retry(
        &self,
        route: &str,
        claimed: &Claimed,
        attempts: u32,
        at_ms: u64,
        error: String,
    ) -> Reply<'_, ()> {
        let after = self.forget(route, &claimed.ticket);
        let (route, ticket) = (route.to_string(), claimed.ticket.clone());
        self.write(
            move |tx| {
                let (r, t) = (route.as_str(), ticket.as_str());
                let mut pending = tx.open_table(PENDING)?;
                let due = pending.get((r, t))?.map(|p| p.value().0);
                let Some(due) = due else { return Ok(()) };
                let mut queue = tx.open_table(QUEUE)?;
                queue.remove((r, due, t))?;
                queue.insert((r, at_ms, t), ())?;
                pending.insert((r, t), (at_ms, attempts, error.as_str()))?;
                Ok(())
            },
            after,
        )
    }

    fn finish(&self, route: &str, claimed: &Claimed, finished: Finished) -> Reply<'_, bool> {
        let after = self.forget(route, &claimed.ticket);
        let (route, ticket) = (route.to_string(), claimed.ticket.clone());
        self.write(
            move |tx| {
                let (r, t) = (route.as_str(), ticket.as_str());
                let Some(due) = tx.open_table(PENDING)?.remove((r, t))?.map(|p| p.value().0) else {
                    return Ok(false);
                };
                tx.open_table(QUEUE)?.remove((r, due, t))?;
                let now = crate::time::now_ms();
                let until = now.saturating_add(finished.ttl_ms);
                tx.open_table(DONE)?
                    .insert((r, t), (until, finished.status.as_str()))?;
                tx.open_table(EXPIRY)?.insert((until, r, t), ())?;
                let mut counts = tx.open_table(COUNTS)?;
                let mut entries = tx.open_table(ENTRIES)?;
                if !finished.dead {
                    entries.remove((r, t))?;
                    count(&mut counts, r, -1, 0)?;
                    return Ok(true);
                }
                let mut dead = tx.open_table(DEAD)?;
                dead.insert((r, now, t), ())?;
                let (_, kept) = count(&mut counts, r, -1, 1)?;
                // Past the cap, the oldest dead letters go.
                let excess = kept.saturating_sub(finished.max_dead);
                let mut oldest = Vec::new();
                for item in dead
                    .range((r, 0, "")..(r, u64::MAX, ""))?
                    .take(excess as usize)
                {
                    let (key, _) = item?;
                    let (_, at, ticket) = key.value();
                    oldest.push((at, ticket.to_string()));
                }
                for (at, ticket) in &oldest {
                    dead.remove((r, *at, ticket.as_str()))?;
                    entries.remove((r, ticket.as_str()))?;
                }
                count(&mut counts, r, 0, -(oldest.len() as i64))?;
                Ok(true)
            },
            after,
        )
    }

    fn release(&self, route: &str, claimed: &Claimed) {
        self.forget(route, &claimed.ticket)();
    }

    fn state(&self, route: &str, ticket: &str) -> Reply<'_, Option<TicketState>> {
        let (route, ticket) = (route.to_string(), ticket.to_string());
        self.read(move |db| {
            let tx = db.begin_read()?;
            let key = (route.as_str(), ticket.as_str());
            if let Some(done) = tx.open_table(DONE)?.get(key)? {
                return Ok(Some(TicketState::Done(done.value().1.to_string())));
            }
            let pending = tx.open_table(PENDING)?.get(key)?;
            Ok(pending.map(|p| {
                let (_, attempts, error) = p.value();
                TicketState::Pending {
                    attempts,
                    last_error: Some(error.to_string()).filter(|e| !e.is_empty()),
                }
            }))
        })
    }

    fn depth(&self, route: &str) -> Reply<'_, (u64, u64)> {
        let route = route.to_string();
        self.read(move |db| {
            let tx = db.begin_read()?;
            let counts = tx.open_table(COUNTS)?.get(route.as_str())?;
            Ok(counts.map_or((0, 0), |c| c.value()))
        })
    }

    fn sweep(&self, now_ms: u64) -> Reply<'_, ()> {
        self.write(
            move |tx| {
                let mut expiry = tx.open_table(EXPIRY)?;
                let mut gone = Vec::new();
                for item in expiry.range((0, "", "")..(now_ms, "", ""))?.take(10_000) {
                    let (key, _) = item?;
                    let (until, route, ticket) = key.value();
                    gone.push((until, route.to_string(), ticket.to_string()));
                }
                let mut done = tx.open_table(DONE)?;
                for (until, route, ticket) in &gone {
                    expiry.remove((*until, route.as_str(), ticket.as_str()))?;
                    done.remove((route.as_str(), ticket.as_str()))?;
                }
                Ok(())
            },
            || {},
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(dead: bool, max_dead: u64) -> Finished {
        Finished {
            dead,
            status: "{}".into(),
            ttl_ms: 60_000,
            max_dead,
        }
    }

    #[tokio::test]
    async fn accepted_claimed_retried_finished_and_capped() {
        let dir = std::env::temp_dir().join(format!("weir-buffer-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let store = EmbeddedStore::open(&dir).expect("opens");
        let entry = Bytes::from_static(b"entry");
        assert!(store.accept("r", "a", entry.clone(), 2).await.unwrap());
        assert!(store.accept("r", "b", entry.clone(), 2).await.unwrap());
        assert!(
            !store.accept("r", "c", entry.clone(), 2).await.unwrap(),
            "full"
        );
        let now = crate::time::now_ms();
        let claimed = store.claim("r", 10, 0, now).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            store.claim("r", 10, 0, now).await.unwrap().is_empty(),
            "held"
        );
        store
            .retry("r", &claimed[0], 1, now + 60_000, "boom".into())
            .await
            .unwrap();
        assert!(
            store.claim("r", 10, 0, now).await.unwrap().is_empty(),
            "not due"
        );
        let state = store.state("r", &claimed[0].ticket).await.unwrap();
        assert_eq!(
            state,
            Some(TicketState::Pending {
                attempts: 1,
                last_error: Some("boom".into())
            })
        );
        assert!(
            store
                .finish("r", &claimed[1], finished(true, 1))
                .await
                .unwrap()
        );
        let again = store.claim("r", 10, 0, now + 60_000).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        assert!(
            store
                .finish("r", &again[0], finished(true, 1))
                .await
                .unwrap()
        );
        assert_eq!(store.depth("r").await.unwrap(), (0, 1), "one dead kept");
        assert!(
            !store
                .finish("r", &again[0], finished(true, 1))
                .await
                .unwrap()
        );
        store.sweep(now + 120_000).await.unwrap();
        assert_eq!(store.state("r", &claimed[1].ticket).await.unwrap(), None);
        drop(store);
        let _ = std::fs::remove_file(&dir);
    }
}
