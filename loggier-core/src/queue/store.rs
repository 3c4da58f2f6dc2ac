//! The SQLite store behind [`DiskQueue`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::{QueueConfig, QueueStats, QueueStatsHandle, SinkQueueStats, SyncMode};
use crate::error::{Error, ErrorKind};
use crate::sink::Payload;

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    sink          TEXT    NOT NULL,
    batch_id      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL,
    records       INTEGER NOT NULL,
    payload       BLOB    NOT NULL,
    UNIQUE (sink, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_by_sink ON batches (sink, seq);
CREATE INDEX IF NOT EXISTS batches_by_age ON batches (created_at_ms);
";

/// A corrupt or unreadable queue file that was moved aside at open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Where the old file now is: `<file>.corrupt-<unix-seconds>`.
    pub moved_to: PathBuf,
    /// Why it was moved, e.g. `"file is not a database"`.
    pub reason: String,
}

/// What [`DiskQueue::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// `Some` when the existing file was corrupt and replaced by a fresh one. Reported
    /// once, here; it is also counted in [`QueueStats::corrupt_recoveries`].
    pub recovered: Option<Recovery>,
    /// Batches left by an earlier run, ready to replay.
    pub restored_batches: u64,
    /// Records in those batches.
    pub restored_records: u64,
}

/// One stored batch, as returned by [`DiskQueue::oldest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedBatch {
    /// Row id; pass it to [`DiskQueue::ack`] / [`DiskQueue::bump_attempts`].
    /// Increases with insertion order.
    pub seq: i64,
    /// The payload with its original batch id.
    pub payload: Payload,
    /// When the batch was first stored, unix milliseconds.
    pub created_at_ms: i64,
    /// Failed delivery attempts recorded so far.
    pub attempts: u32,
}

/// The result of [`DiskQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The batch is committed to disk.
    Stored {
        /// Its row id.
        seq: i64,
    },
    /// A batch with the same sink and id is already stored; nothing changed.
    AlreadyStored {
        /// The existing row id.
        seq: i64,
    },
    /// The batch is not on disk and has been counted as dropped (cache bound,
    /// disk full or I/O error; see [`SinkQueueStats`](super::SinkQueueStats)).
    Dropped,
}

impl PushOutcome {
    /// `true` when the batch was committed by the call. With
    /// [`DiskQueue::push_many`] an older payload of the same call may already have been
    /// removed again by the byte bound (counted as `dropped_cache_full`).
    pub fn is_stored(&self) -> bool {
        !matches!(self, PushOutcome::Dropped)
    }
}

/// A SQLite-backed queue of encoded batches. See the [module docs](crate::queue).
///
/// # Example
/// ```
/// use loggier_core::queue::{DiskQueue, QueueConfig};
/// use loggier_core::Payload;
///
/// # fn main() -> Result<(), loggier_core::Error> {
/// let dir = tempfile::tempdir()?;
/// let (mut q, report) = DiskQueue::open(dir.path().join("queue.db"), QueueConfig::default())?;
/// assert!(report.recovered.is_none());
/// q.push("loki", &Payload::new(&b"[...]"[..], 3));
/// let batch = q.oldest("loki", 1)?.remove(0);
/// assert_eq!(batch.payload.records, 3);
/// q.ack(batch.seq)?;
/// assert_eq!(q.pending("loki"), (0, 0));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DiskQueue {
    /// Holds the advisory lock on `<file>.lock` for as long as the queue is open.
    _lock: fs::File,
    conn: Connection,
    path: PathBuf,
    config: QueueConfig,
    stats: QueueStatsHandle,
    /// Sum of the `bytes` column.
    total_bytes: u64,
    /// Largest row id present when the file was opened.
    restored_upto: i64,
    /// No row was created before this (unix ms): a lower bound of the oldest
    /// `created_at_ms`, so [`DiskQueue::expire`] skips its `DELETE` while nothing can
    /// have expired. `None`: unknown (look).
    oldest_created_ms: Option<i64>,
}

/// `DELETE … RETURNING` statements of [`DiskQueue::delete_where`] (`?1`: the argument).
const DELETE_BY_SEQ: &str = "DELETE FROM batches WHERE seq = ?1 RETURNING sink, records, bytes";
const DELETE_OLDER: &str =
    "DELETE FROM batches WHERE created_at_ms < ?1 RETURNING sink, records, bytes";

impl DiskQueue {
    /// Opens (or creates) the queue file at `path`, creating parent directories.
    ///
    /// A file that exists but is not a usable queue (not a database, fails
    /// `PRAGMA quick_check`, unknown schema version) is renamed to
    /// `<file>.corrupt-<unix-seconds>` and a fresh queue is created; the returned
    /// [`OpenReport::recovered`] says so.
    ///
    /// One queue file belongs to one client: `open` takes an exclusive advisory lock
    /// on `<file>.lock` (which holds the owner's pid) and keeps it until the queue
    /// is dropped. The file and its lock file are created with mode `0600` on Unix.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] when another client (this process or another) has the
    /// queue open; the message names its pid. [`ErrorKind::Queue`] when no queue
    /// can be opened at all: the directory cannot be created or written, or the
    /// fresh file cannot be created either. Callers then run without a disk queue.
    pub fn open(
        path: impl Into<PathBuf>,
        config: QueueConfig,
    ) -> Result<(Self, OpenReport), Error> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                Error::with_source(
                    ErrorKind::Queue,
                    format!("cannot create disk queue directory {}", dir.display()),
                    e,
                )
            })?;
        }
        let lock = lock_queue(&path)?;
        let stats = QueueStatsHandle::default();
        let mut report = OpenReport::default();
        let conn = match open_checked(&path, config.sync) {
            Ok(conn) => conn,
            Err(OpenError::Corrupt(reason)) => {
                let moved_to = move_aside(&path)?;
                stats.update(|s| {
                    s.corrupt_recoveries += 1;
                    s.last_error = Some(format!(
                        "disk queue {} was unusable ({reason}); moved to {}",
                        path.display(),
                        moved_to.display()
                    ));
                });
                report.recovered = Some(Recovery { moved_to, reason });
                open_checked(&path, config.sync).map_err(|e| e.into_error(&path))?
            }
            Err(e) => return Err(e.into_error(&path)),
        };
        let mut q = DiskQueue {
            _lock: lock,
            conn,
            path,
            config,
            stats,
            total_bytes: 0,
            restored_upto: 0,
            oldest_created_ms: None,
        };
        let (batches, records) = q.load_totals().map_err(|e| q.queue_error("read", &e))?;
        q.restored_upto = q
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM batches", [], |r| {
                r.get(0)
            })
            .map_err(|e| q.queue_error("read", &e))?;
        report.restored_batches = batches;
        report.restored_records = records;
        // Expired leftovers go now, so the report matches what will be replayed.
        q.expire(now_ms());
        Ok((q, report))
    }

    /// The queue file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings in use.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// A thread-safe handle on the counters (shared, stays valid after `self` drops).
    pub fn stats_handle(&self) -> QueueStatsHandle {
        self.stats.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> QueueStats {
        self.stats.snapshot()
    }

    /// `(batches, records)` stored for `sink`. From memory; no disk access.
    pub fn pending(&self, sink: &str) -> (u64, u64) {
        let s = self.stats.sink(sink);
        (s.pending_batches, s.pending_records)
    }

    /// Rows with a `seq` up to this value were left by an earlier run (0 when the
    /// file was empty at open).
    pub fn restored_upto(&self) -> i64 {
        self.restored_upto
    }

    /// Sum of stored payload bytes, all sinks.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Stores `payload` for `sink` and commits it. Afterwards enforces the bounds:
    /// expired batches and, past [`QueueConfig::max_bytes`], the oldest batches are
    /// deleted and counted.
    ///
    /// A payload larger than `max_bytes` on its own is not stored (counted as
    /// `dropped_cache_full`). `SQLITE_FULL` and other I/O errors drop the batch and
    /// count it (`dropped_disk_full`, `dropped_io`); corruption moves the file aside,
    /// starts a fresh one and stores the batch there. Never panics.
    pub fn push(&mut self, sink: &str, payload: &Payload) -> PushOutcome {
        self.push_at(sink, payload, now_ms())
    }

    pub(crate) fn push_at(&mut self, sink: &str, payload: &Payload, now_ms: i64) -> PushOutcome {
        self.push_many_at(sink, std::slice::from_ref(payload), now_ms)
            .pop()
            .unwrap_or(PushOutcome::Dropped)
    }

    /// Stores `payloads` for `sink`, in order, in one transaction (one commit, one
    /// WAL sync point instead of one per batch), then enforces the bounds like
    /// [`DiskQueue::push`]. Returns one outcome per payload, in order.
    ///
    /// Failures are as for [`DiskQueue::push`]; an error while storing drops (and
    /// counts) every payload of the call. A bound enforced afterwards may evict the
    /// older payloads of this very call (counted as `dropped_cache_full`), never the
    /// last one.
    pub fn push_many(&mut self, sink: &str, payloads: &[Payload]) -> Vec<PushOutcome> {
        self.push_many_at(sink, payloads, now_ms())
    }

    pub(crate) fn push_many_at(
        &mut self,
        sink: &str,
        payloads: &[Payload],
        now_ms: i64,
    ) -> Vec<PushOutcome> {
        let mut out = vec![PushOutcome::Dropped; payloads.len()];
        let mut fits: Vec<&Payload> = Vec::with_capacity(payloads.len());
        let mut slots: Vec<usize> = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            if p.bytes.len() as u64 > self.config.max_bytes {
                let records = u64::from(p.records);
                self.stats.update(|s| {
                    let st = s.sinks.entry(sink.to_owned()).or_default();
                    st.dropped_cache_full += records;
                    st.offered_records += records;
                });
            } else {
                fits.push(p);
                slots.push(i);
            }
        }
        if fits.is_empty() {
            return out;
        }
        self.expire(now_ms);
        let mut result = self.insert(sink, &fits, now_ms);
        if let Err(e) = &result
            && is_corruption(e)
        {
            self.recover_from_corruption(e);
            result = self.insert(sink, &fits, now_ms);
        }
        match result {
            Ok(inserted) => {
                let mut newest = None;
                let (mut batches, mut records, mut bytes) = (0u64, 0u64, 0u64);
                let offered: u64 = fits.iter().map(|p| u64::from(p.records)).sum();
                for ((p, slot), ins) in fits.iter().zip(&slots).zip(inserted) {
                    out[*slot] = match ins {
                        Inserted::New(seq) => {
                            batches += 1;
                            records += u64::from(p.records);
                            bytes += p.bytes.len() as u64;
                            newest = Some(seq);
                            PushOutcome::Stored { seq }
                        }
                        Inserted::Existing(seq) => PushOutcome::AlreadyStored { seq },
                    };
                }
                self.stats.update(|s| {
                    let st = s.sinks.entry(sink.to_owned()).or_default();
                    st.pending_batches += batches;
                    st.pending_records += records;
                    st.pending_bytes += bytes;
                    st.stored_records += records;
                    st.offered_records += offered;
                });
                if let Some(seq) = newest {
                    self.total_bytes += bytes;
                    // Unknown stays unknown (a failed expiry left rows of unknown
                    // age: `now_ms` is no lower bound for them), so the next expiry
                    // looks instead of skipping for a whole `max_age`.
                    self.oldest_created_ms = self.oldest_created_ms.map(|o| o.min(now_ms));
                    // The newest batch is never evicted by its own push (it fits on
                    // its own), so the last payload is still stored.
                    self.enforce_bytes(seq);
                }
            }
            Err(e) => {
                let full = e.sqlite_error_code() == Some(ErrorCode::DiskFull);
                let records: u64 = fits.iter().map(|p| u64::from(p.records)).sum();
                let ids = match fits.as_slice() {
                    [one] => format!("batch {}", one.id),
                    many => format!("{} batches", many.len()),
                };
                let msg = format!(
                    "disk queue {}: cannot store {ids} of sink {sink}: {e}",
                    self.path.display(),
                );
                self.stats.update(|s| {
                    let st = s.sinks.entry(sink.to_owned()).or_default();
                    if full {
                        st.dropped_disk_full += records;
                    } else {
                        st.dropped_io += records;
                    }
                    st.offered_records += records;
                    s.last_error = Some(msg);
                });
            }
        }
        out
    }

    /// Recounts the pending gauges of every sink from the file, for when they may
    /// have drifted from the rows actually stored (rows deleted by another program).
    ///
    /// # Errors
    /// [`ErrorKind::Queue`] when the file cannot be read.
    pub fn resync(&mut self) -> Result<(), Error> {
        let counted = (|| -> rusqlite::Result<Vec<(String, u64, u64, u64)>> {
            let mut st = self.conn.prepare(
                "SELECT sink, COUNT(*), COALESCE(SUM(records), 0), COALESCE(SUM(bytes), 0)
                 FROM batches GROUP BY sink",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                ))
            })?;
            rows.collect()
        })();
        let counted = match counted {
            Ok(c) => c,
            Err(e) => return Err(self.handle_error("read", &e)),
        };
        self.total_bytes = counted.iter().map(|c| c.3).sum();
        self.stats.update(|s| {
            for st in s.sinks.values_mut() {
                st.pending_batches = 0;
                st.pending_records = 0;
                st.pending_bytes = 0;
            }
            for (sink, b, r, by) in counted {
                let st = s.sinks.entry(sink).or_default();
                st.pending_batches = b;
                st.pending_records = r;
                st.pending_bytes = by;
            }
        });
        Ok(())
    }

    /// Up to `n` of `sink`'s batches, oldest first (insertion order). Expired
    /// batches are deleted (and counted) first.
    ///
    /// A row that cannot be decoded (a payload that is not a BLOB, a negative or
    /// non-numeric record count) is quarantined: deleted and counted as
    /// `dropped_corrupt`, with the reason in [`QueueStats::last_error`], so it can
    /// never stall the batches behind it.
    ///
    /// # Errors
    /// [`ErrorKind::Queue`] when the file cannot be read. Corruption is handled
    /// (file moved aside, pending records counted as `dropped_corrupt`) and then
    /// reported as this error, with an empty queue left behind.
    pub fn oldest(&mut self, sink: &str, n: usize) -> Result<Vec<QueuedBatch>, Error> {
        self.oldest_after(sink, 0, n)
    }

    /// [`DiskQueue::oldest`] among the rows with a `seq` greater than `after`.
    ///
    /// # Errors
    /// As [`DiskQueue::oldest`].
    pub fn oldest_after(
        &mut self,
        sink: &str,
        after: i64,
        n: usize,
    ) -> Result<Vec<QueuedBatch>, Error> {
        self.expire(now_ms());
        // Bounded: each round quarantines at least one row or returns.
        for _ in 0..1000 {
            let (good, bad) = match self.select_oldest(sink, after, n) {
                Ok(v) => v,
                Err(e) => return Err(self.handle_error("read", &e)),
            };
            if bad.is_empty() {
                return Ok(good);
            }
            for (seq, reason) in bad {
                self.quarantine(seq, &reason)?;
            }
            if !good.is_empty() {
                return Ok(good);
            }
        }
        Ok(Vec::new())
    }

    /// Deletes an undecodable row, counting its records as `dropped_corrupt`.
    fn quarantine(&mut self, seq: i64, reason: &str) -> Result<(), Error> {
        match self.delete_row(seq, Fate::Corrupt) {
            Ok(Some(row)) => {
                let msg = format!(
                    "disk queue {}: batch row {seq} of sink {} is unreadable ({reason}); deleted, {} records counted as dropped_corrupt",
                    self.path.display(),
                    row.sink,
                    row.records
                );
                self.stats.update(|s| s.last_error = Some(msg));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.handle_error("quarantine", &e)),
        }
    }

    /// Deletes the batch `seq` after its sink acknowledged it. Returns `false` when
    /// the row was already gone (evicted by a bound meanwhile, and counted there).
    ///
    /// # Errors
    /// [`ErrorKind::Queue`] when the row cannot be deleted (the batch stays and will
    /// be sent again: at-least-once).
    pub fn ack(&mut self, seq: i64) -> Result<bool, Error> {
        match self.delete_row(seq, Fate::Acked) {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) => Err(self.handle_error("delete", &e)),
        }
    }

    /// Deletes the batch `seq` without delivering it (e.g. the receiver rejected
    /// it); the queue counts its records as `removed_records`, the caller in its own
    /// drop counters. Returns the number of records removed (0 when the row was
    /// already gone).
    ///
    /// # Errors
    /// [`ErrorKind::Queue`] when the row cannot be deleted.
    pub fn remove(&mut self, seq: i64) -> Result<u64, Error> {
        match self.delete_row(seq, Fate::Removed) {
            Ok(Some(row)) => Ok(row.records),
            Ok(None) => Ok(0),
            Err(e) => Err(self.handle_error("delete", &e)),
        }
    }

    /// Adds one to the batch's `attempts` column and returns the new value (0 when
    /// the row is gone).
    ///
    /// # Errors
    /// [`ErrorKind::Queue`] when the row cannot be updated.
    pub fn bump_attempts(&mut self, seq: i64) -> Result<u32, Error> {
        let r = self
            .conn
            .prepare_cached(
                "UPDATE batches SET attempts = attempts + 1 WHERE seq = ?1 RETURNING attempts",
            )
            .and_then(|mut st| {
                let mut rows = st.query(params![seq])?;
                match rows.next()? {
                    Some(row) => row.get::<_, i64>(0),
                    None => Ok(0),
                }
            });
        match r {
            Ok(a) => Ok(u32::try_from(a).unwrap_or(u32::MAX)),
            Err(e) => Err(self.handle_error("update", &e)),
        }
    }

    /// Deletes every batch older than `max_age` (relative to `now_ms`), counting them
    /// as `dropped_expired`. Errors are recorded in `last_error`.
    pub(crate) fn expire(&mut self, now_ms: i64) {
        let max_age_ms = i64::try_from(self.config.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        if self
            .oldest_created_ms
            .is_some_and(|oldest| oldest >= cutoff)
        {
            // No row is older than the cutoff: nothing to delete (no statement run).
            return;
        }
        let r = self.delete_where(DELETE_OLDER, cutoff, Fate::Expired);
        match r {
            Ok(_) => {
                // Rows created before the cutoff are gone; MIN over the index is
                // cheap. An empty table: nothing can expire before a new insert.
                self.oldest_created_ms = self
                    .conn
                    .query_row("SELECT MIN(created_at_ms) FROM batches", [], |r| {
                        r.get::<_, Option<i64>>(0)
                    })
                    .ok()
                    .map(|m| m.unwrap_or(i64::MAX));
            }
            Err(e) => {
                let _ = self.handle_error("expire", &e);
            }
        }
    }

    /// Deletes the oldest batches (any sink, never `keep`) until the stored bytes fit
    /// `max_bytes`, counting them as `dropped_cache_full`.
    fn enforce_bytes(&mut self, keep: i64) {
        let mut guard = 0usize;
        while self.total_bytes > self.config.max_bytes && guard < 1_000_000 {
            guard += 1;
            let victim: rusqlite::Result<Option<i64>> = self
                .conn
                .prepare_cached("SELECT seq FROM batches WHERE seq <> ?1 ORDER BY seq LIMIT 1")
                .and_then(|mut st| {
                    let mut rows = st.query(params![keep])?;
                    match rows.next()? {
                        Some(r) => Ok(Some(r.get(0)?)),
                        None => Ok(None),
                    }
                });
            match victim {
                Ok(Some(seq)) => match self.delete_row(seq, Fate::Evicted) {
                    Ok(_) => {}
                    Err(e) => {
                        let _ = self.handle_error("evict", &e);
                        return;
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    let _ = self.handle_error("evict", &e);
                    return;
                }
            }
        }
    }

    /// Inserts `payloads` in one transaction (all or none), skipping a batch id the
    /// sink already stored.
    fn insert(
        &mut self,
        sink: &str,
        payloads: &[&Payload],
        now_ms: i64,
    ) -> rusqlite::Result<Vec<Inserted>> {
        // IMMEDIATE: take the write lock first (waiting out another writer with the
        // busy timeout). A deferred transaction would read first and then fail at
        // once with SQLITE_BUSY when upgrading while another connection writes.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(payloads.len());
        {
            let mut find =
                tx.prepare_cached("SELECT seq FROM batches WHERE sink = ?1 AND batch_id = ?2")?;
            let mut add = tx.prepare_cached(
                "INSERT INTO batches (sink, batch_id, created_at_ms, attempts, bytes, records, payload)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)",
            )?;
            let mut id_buf = uuid::Uuid::encode_buffer();
            for payload in payloads {
                let id: &str = payload.id.hyphenated().encode_lower(&mut id_buf);
                let existing: Option<i64> = {
                    let mut rows = find.query(params![sink, id])?;
                    match rows.next()? {
                        Some(r) => Some(r.get(0)?),
                        None => None,
                    }
                };
                if let Some(seq) = existing {
                    out.push(Inserted::Existing(seq));
                    continue;
                }
                add.execute(params![
                    sink,
                    id,
                    now_ms,
                    payload.bytes.len() as i64,
                    i64::from(payload.records),
                    &payload.bytes[..]
                ])?;
                out.push(Inserted::New(tx.last_insert_rowid()));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Up to `n` decodable rows of `sink` after `after`, and the undecodable rows met
    /// before them (row id, reason).
    #[allow(clippy::type_complexity)]
    fn select_oldest(
        &mut self,
        sink: &str,
        after: i64,
        n: usize,
    ) -> rusqlite::Result<(Vec<QueuedBatch>, Vec<(i64, String)>)> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let mut st = self.conn.prepare_cached(
            "SELECT seq, batch_id, created_at_ms, attempts, records, payload
             FROM batches WHERE sink = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = st.query(params![sink, after, limit])?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            match decode_row(r) {
                Ok(b) => out.push(b),
                Err(reason) => bad.push((seq, reason)),
            }
        }
        Ok((out, bad))
    }

    /// Deletes one row, moving its records from the pending gauges to `fate`'s
    /// counter; `None` when it was not there.
    fn delete_row(&mut self, seq: i64, fate: Fate) -> rusqlite::Result<Option<DeletedRow>> {
        let mut rows = self.delete_where(DELETE_BY_SEQ, seq, fate)?;
        Ok(rows.pop())
    }

    /// Runs one of the `DELETE … RETURNING sink, records, bytes` statements above
    /// with `arg` as `?1`, then moves the deleted records from the pending gauges to
    /// `fate`'s counter in one update of the counters, so no [`QueueStats`] snapshot
    /// sees them in neither (or in both).
    fn delete_where(
        &mut self,
        sql: &'static str,
        arg: i64,
        fate: Fate,
    ) -> rusqlite::Result<Vec<DeletedRow>> {
        let deleted: Vec<DeletedRow> = {
            let mut st = self.conn.prepare_cached(sql)?;
            // Tolerant of damaged values: a row must be deletable whatever it holds.
            let rows = st.query_map(params![arg], |r| {
                Ok(DeletedRow {
                    sink: value_text(r.get_ref(0)?),
                    records: value_count(r.get_ref(1)?),
                    bytes: value_count(r.get_ref(2)?),
                })
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if deleted.is_empty() {
            return Ok(deleted);
        }
        for row in &deleted {
            self.total_bytes = self.total_bytes.saturating_sub(row.bytes);
        }
        self.stats.update(|s| {
            for row in &deleted {
                let st = s.sinks.entry(row.sink.clone()).or_default();
                st.pending_batches = st.pending_batches.saturating_sub(1);
                st.pending_records = st.pending_records.saturating_sub(row.records);
                st.pending_bytes = st.pending_bytes.saturating_sub(row.bytes);
                *fate.counter(st) += row.records;
            }
        });
        Ok(deleted)
    }

    /// Loads per-sink totals into the gauges; returns (batches, records) overall.
    fn load_totals(&mut self) -> rusqlite::Result<(u64, u64)> {
        let mut st = self.conn.prepare(
            "SELECT sink, COUNT(*), COALESCE(SUM(records), 0), COALESCE(SUM(bytes), 0)
             FROM batches GROUP BY sink",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut totals = Vec::new();
        for row in rows {
            totals.push(row?);
        }
        drop(st);
        let (mut batches, mut records, mut bytes) = (0u64, 0u64, 0u64);
        self.stats.update(|s| {
            for (sink, b, r, by) in totals {
                let (b, r, by) = (
                    u64::try_from(b).unwrap_or(0),
                    u64::try_from(r).unwrap_or(0),
                    u64::try_from(by).unwrap_or(0),
                );
                let st = s.sinks.entry(sink).or_default();
                st.pending_batches = b;
                st.pending_records = r;
                st.pending_bytes = by;
                st.restored_records += r;
                batches += b;
                records += r;
                bytes += by;
            }
        });
        self.total_bytes = bytes;
        Ok((batches, records))
    }

    /// Records a failed operation; on corruption moves the file aside and starts a
    /// fresh one. Returns the error to hand to the caller.
    fn handle_error(&mut self, op: &str, e: &rusqlite::Error) -> Error {
        if is_corruption(e) {
            self.recover_from_corruption(e);
        }
        self.queue_error(op, e)
    }

    fn queue_error(&self, op: &str, e: &rusqlite::Error) -> Error {
        let msg = format!("disk queue {}: {op} failed: {e}", self.path.display());
        self.stats.update(|s| s.last_error = Some(msg.clone()));
        Error::new(ErrorKind::Queue, msg)
    }

    /// Replaces a file found corrupt while running: every pending record is counted
    /// as `dropped_corrupt`, the file is moved aside, a fresh one opened. If even
    /// that fails the connection is pointed at an in-memory database so the process
    /// keeps running (batches then survive only until exit).
    fn recover_from_corruption(&mut self, cause: &rusqlite::Error) {
        // Release the old connection's handle on the file before renaming it.
        let fresh = Connection::open_in_memory();
        let Ok(placeholder) = fresh else { return };
        let old = std::mem::replace(&mut self.conn, placeholder);
        drop(old);
        let moved = move_aside(&self.path);
        let reopened = open_checked(&self.path, self.config.sync);
        let note = match (&moved, reopened) {
            (Ok(to), Ok(conn)) => {
                self.conn = conn;
                format!("moved to {}", to.display())
            }
            (_, Err(e)) => {
                let _ = self.conn.execute_batch(SCHEMA);
                format!(
                    "cannot reopen ({}); using memory until restart",
                    e.into_error(&self.path)
                )
            }
            (Err(e), Ok(conn)) => {
                self.conn = conn;
                format!("cannot move aside: {e}")
            }
        };
        self.total_bytes = 0;
        self.oldest_created_ms = None;
        let msg = format!(
            "disk queue {} is corrupt ({cause}); {note}",
            self.path.display()
        );
        self.stats.update(|s| {
            s.corrupt_recoveries += 1;
            s.last_error = Some(msg);
            for st in s.sinks.values_mut() {
                st.dropped_corrupt += st.pending_records;
                st.pending_batches = 0;
                st.pending_records = 0;
                st.pending_bytes = 0;
            }
        });
    }

    /// Test hook: caps the file at `pages` pages so the next growth fails with
    /// `SQLITE_FULL`.
    #[cfg(test)]
    fn set_max_page_count(&self, pages: i64) -> rusqlite::Result<()> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
    }
}

/// Decodes one `batches` row (`seq, batch_id, created_at_ms, attempts, records,
/// payload`); the reason when it cannot be delivered as stored.
fn decode_row(r: &rusqlite::Row<'_>) -> Result<QueuedBatch, String> {
    use rusqlite::types::ValueRef;
    let seq: i64 = r.get(0).map_err(|e| e.to_string())?;
    let payload = match r.get_ref(5).map_err(|e| e.to_string())? {
        ValueRef::Blob(b) => Bytes::copy_from_slice(b),
        other => {
            return Err(format!("payload is {:?}, not a BLOB", other.data_type()));
        }
    };
    let records = match r.get_ref(4).map_err(|e| e.to_string())? {
        ValueRef::Integer(i) => u32::try_from(i).map_err(|_| format!("records is {i}"))?,
        other => {
            return Err(format!(
                "records is {:?}, not an INTEGER",
                other.data_type()
            ));
        }
    };
    // A row whose id does not parse is still delivered, under a fresh id.
    let id = match r.get_ref(1).map_err(|e| e.to_string())? {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| uuid::Uuid::parse_str(t).ok())
            .unwrap_or_else(uuid::Uuid::now_v7),
        _ => uuid::Uuid::now_v7(),
    };
    let created_at_ms = r.get_ref(2).ok().and_then(|v| v.as_i64().ok()).unwrap_or(0);
    let attempts = r.get_ref(3).ok().and_then(|v| v.as_i64().ok()).unwrap_or(0);
    Ok(QueuedBatch {
        seq,
        payload: Payload {
            id,
            bytes: payload,
            records,
        },
        created_at_ms,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
    })
}

/// A column value as text, lossily (a damaged `sink` column).
fn value_text(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

/// A count column as `u64`; 0 when it is not a non-negative integer.
fn value_count(v: rusqlite::types::ValueRef<'_>) -> u64 {
    v.as_i64()
        .ok()
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0)
}

/// Takes the exclusive advisory lock `<path>.lock` (created `0600` on Unix) and
/// writes this process's pid into it.
///
/// # Errors
/// [`ErrorKind::Locked`] naming the holder's pid when another client has it;
/// [`ErrorKind::Queue`] when the lock file cannot be created.
fn lock_queue(path: &Path) -> Result<fs::File, Error> {
    use std::io::{Read, Seek, Write};
    let lock_path = sibling(path, ".lock");
    let mut file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Queue,
                format!("cannot create disk queue lock {}", lock_path.display()),
                e,
            )
        })?;
    let locked = fs4::fs_std::FileExt::try_lock_exclusive(&file).map_err(|e| {
        Error::with_source(
            ErrorKind::Queue,
            format!("cannot lock disk queue {}", lock_path.display()),
            e,
        )
    })?;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = if holder.is_empty() {
            "another Loggier client".to_string()
        } else {
            format!("another Loggier client (pid {holder})")
        };
        return Err(Error::new(
            ErrorKind::Locked,
            format!(
                "disk queue {} is in use by {who}; lock file {}",
                path.display(),
                lock_path.display()
            ),
        ));
    }
    // Best effort: the pid only helps the error message of a second client.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    Ok(file)
}

/// `OpenOptions` that create files readable and writable by the owner only
/// (`0600`) on Unix.
fn private_options() -> fs::OpenOptions {
    #[allow(unused_mut)]
    let mut o = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

enum Inserted {
    New(i64),
    Existing(i64),
}

struct DeletedRow {
    sink: String,
    records: u64,
    bytes: u64,
}

/// Why rows are deleted: names the counter their records move to.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// The sink acknowledged the batch: `acked_records`.
    Acked,
    /// Deleted undelivered for the caller, who counts it: `removed_records`.
    Removed,
    /// Older than `max_age`: `dropped_expired`.
    Expired,
    /// Evicted by the byte bound: `dropped_cache_full`.
    Evicted,
    /// Undecodable: `dropped_corrupt`.
    Corrupt,
}

impl Fate {
    fn counter(self, st: &mut SinkQueueStats) -> &mut u64 {
        match self {
            Fate::Acked => &mut st.acked_records,
            Fate::Removed => &mut st.removed_records,
            Fate::Expired => &mut st.dropped_expired,
            Fate::Evicted => &mut st.dropped_cache_full,
            Fate::Corrupt => &mut st.dropped_corrupt,
        }
    }
}

enum OpenError {
    /// The file exists but is not a usable queue: move it aside.
    Corrupt(String),
    /// Anything else (permissions on the directory, locked, out of memory).
    Other(rusqlite::Error),
    /// The file could not be created.
    Create(std::io::Error),
}

impl OpenError {
    fn into_error(self, path: &Path) -> Error {
        match self {
            OpenError::Corrupt(reason) => Error::new(
                ErrorKind::Queue,
                format!("disk queue {} is unusable: {reason}", path.display()),
            ),
            OpenError::Other(e) => Error::with_source(
                ErrorKind::Queue,
                format!("cannot open disk queue {}", path.display()),
                e,
            ),
            OpenError::Create(e) => Error::with_source(
                ErrorKind::Queue,
                format!("cannot create disk queue {}", path.display()),
                e,
            ),
        }
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Opens the file, switches it to WAL, creates the schema and checks it.
fn open_checked(path: &Path, sync: SyncMode) -> Result<Connection, OpenError> {
    let classify = |e: rusqlite::Error| {
        if is_corruption(&e) {
            OpenError::Corrupt(e.to_string())
        } else {
            OpenError::Other(e)
        }
    };
    // Create the file ourselves so it is private (0600 on Unix); SQLite gives its
    // `-wal` and `-shm` companions the same mode.
    if !path.exists() {
        private_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(OpenError::Create)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(Duration::from_secs(2))
        .map_err(classify)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Corrupt(format!(
            "cannot switch to WAL mode (journal_mode is {mode})"
        )));
    }
    let sync_value = match sync {
        SyncMode::Normal => "NORMAL",
        SyncMode::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync_value)
        .map_err(classify)?;
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(classify)?;
    if check != "ok" {
        return Err(OpenError::Corrupt(format!("quick_check: {check}")));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(classify)?;
    match version {
        0 => {
            let tables: i64 = conn
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(classify)?;
            if tables > 0 {
                return Err(OpenError::Corrupt(
                    "not a loggier queue: unexpected table layout (foreign tables, no schema version)"
                        .to_owned(),
                ));
            }
            conn.execute_batch(SCHEMA).map_err(classify)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(classify)?;
        }
        SCHEMA_VERSION => {
            // A table named `batches` with another shape (a foreign file) fails here.
            conn.prepare(
                "SELECT seq, sink, batch_id, created_at_ms, attempts, bytes, records, payload
                 FROM batches LIMIT 0",
            )
            .map_err(|e| OpenError::Corrupt(format!("unexpected table layout: {e}")))?;
            conn.execute_batch(SCHEMA).map_err(classify)?;
        }
        other => {
            return Err(OpenError::Corrupt(format!(
                "unknown schema version {other} (this build knows {SCHEMA_VERSION})"
            )));
        }
    }
    Ok(conn)
}

/// Renames `path` (and its `-wal` / `-shm` companions) to `<path>.corrupt-<unix-ts>`.
fn move_aside(path: &Path) -> Result<PathBuf, Error> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = sibling(path, &format!(".corrupt-{ts}"));
    let mut n = 1;
    while target.exists() && n < 1000 {
        target = sibling(path, &format!(".corrupt-{ts}-{n}"));
        n += 1;
    }
    if path.exists() {
        fs::rename(path, &target).map_err(|e| {
            Error::with_source(
                ErrorKind::Queue,
                format!("cannot move corrupt disk queue {} aside", path.display()),
                e,
            )
        })?;
    }
    for suffix in ["-wal", "-shm"] {
        let companion = sibling(path, suffix);
        if companion.exists() {
            let to = sibling(&target, suffix);
            if fs::rename(&companion, &to).is_err() {
                // A stale WAL must not be applied to the fresh file.
                let _ = fs::remove_file(&companion);
            }
        }
    }
    Ok(target)
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn payload(tag: u8, len: usize, records: u32) -> Payload {
        Payload::new(vec![tag; len], records)
    }

    fn open(dir: &Path, config: QueueConfig) -> (DiskQueue, OpenReport) {
        DiskQueue::open(dir.join("queue.db"), config).expect("open")
    }

    #[test]
    fn push_oldest_ack_round_trip_keeps_order_and_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, report) = open(dir.path(), QueueConfig::default());
        assert_eq!(report, OpenReport::default());
        let a = payload(1, 10, 2);
        let b = payload(2, 20, 3);
        let c = payload(3, 5, 1);
        assert!(q.push("http", &a).is_stored());
        assert!(q.push("loki", &c).is_stored());
        assert!(q.push("http", &b).is_stored());
        assert_eq!(q.pending("http"), (2, 5));
        assert_eq!(q.pending("loki"), (1, 1));
        assert_eq!(q.total_bytes(), 35);

        let got = q.oldest("http", 10).expect("oldest");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, a);
        assert_eq!(got[1].payload, b);
        assert!(got[0].seq < got[1].seq);
        assert_eq!(got[0].attempts, 0);

        assert_eq!(q.bump_attempts(got[0].seq).expect("bump"), 1);
        assert_eq!(q.bump_attempts(got[0].seq).expect("bump"), 2);
        assert_eq!(q.oldest("http", 1).expect("oldest")[0].attempts, 2);

        assert!(q.ack(got[0].seq).expect("ack"));
        assert!(!q.ack(got[0].seq).expect("ack twice"));
        assert_eq!(q.pending("http"), (1, 3));
        let st = q.stats().sink("http");
        assert_eq!(st.stored_records, 5);
        assert_eq!(st.acked_records, 2);
        assert_eq!(q.total_bytes(), 25);
    }

    #[test]
    fn pushing_the_same_batch_twice_stores_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(dir.path(), QueueConfig::default());
        let a = payload(1, 10, 4);
        let PushOutcome::Stored { seq } = q.push("http", &a) else {
            panic!("not stored")
        };
        assert_eq!(q.push("http", &a), PushOutcome::AlreadyStored { seq });
        assert_eq!(q.pending("http"), (1, 4));
        // Same id under another sink is another batch.
        assert!(matches!(q.push("loki", &a), PushOutcome::Stored { .. }));
    }

    #[test]
    fn batches_survive_reopen_and_are_reported_as_restored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = payload(7, 100, 9);
        {
            let (mut q, _) = open(dir.path(), QueueConfig::default());
            q.push("http", &a);
            q.push("http", &payload(8, 1, 1));
            let first = q.oldest("http", 1).expect("oldest")[0].seq;
            q.ack(first).expect("ack");
        }
        let (mut q, report) = open(dir.path(), QueueConfig::default());
        assert!(report.recovered.is_none());
        assert_eq!((report.restored_batches, report.restored_records), (1, 1));
        assert_eq!(q.pending("http"), (1, 1));
        assert_eq!(q.stats().sink("http").restored_records, 1);
        let left = q.oldest("http", 5).expect("oldest")[0].seq;
        assert_eq!(q.restored_upto(), left);
        let PushOutcome::Stored { seq } = q.push("http", &payload(9, 1, 1)) else {
            panic!("not stored")
        };
        assert!(seq > q.restored_upto());
        assert_eq!(
            q.oldest("http", 5).expect("oldest")[0].payload.bytes[..],
            [8]
        );
    }

    #[test]
    fn byte_bound_drops_oldest_batches_and_counts_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(dir.path(), QueueConfig::default().max_bytes(250));
        let batches: Vec<Payload> = (0..5).map(|i| payload(i, 100, u32::from(i) + 1)).collect();
        for (i, p) in batches.iter().enumerate() {
            let sink = if i % 2 == 0 { "a" } else { "b" };
            assert!(q.push(sink, p).is_stored());
            assert!(q.total_bytes() <= 250);
        }
        // Only the two newest (ids 3 and 4) fit.
        assert_eq!(q.oldest("a", 10).expect("a")[0].payload, batches[4]);
        assert_eq!(q.oldest("b", 10).expect("b")[0].payload, batches[3]);
        let st = q.stats();
        // a lost batches 0 and 2 (1 + 3 records), b lost batch 1 (2 records).
        assert_eq!(st.sink("a").dropped_cache_full, 4);
        assert_eq!(st.sink("b").dropped_cache_full, 2);
        for sink in ["a", "b"] {
            let s = st.sink(sink);
            assert_eq!(
                s.stored_records,
                s.pending_records + s.dropped_total() + s.acked_records
            );
        }
    }

    #[test]
    fn a_batch_larger_than_the_bound_is_dropped_without_evicting_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(dir.path(), QueueConfig::default().max_bytes(50));
        q.push("a", &payload(1, 40, 1));
        assert_eq!(q.push("a", &payload(2, 51, 7)), PushOutcome::Dropped);
        assert_eq!(q.pending("a"), (1, 1));
        assert_eq!(q.stats().sink("a").dropped_cache_full, 7);
    }

    #[test]
    fn push_many_stores_in_order_and_reports_each_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(dir.path(), QueueConfig::default().max_bytes(25));
        let first = payload(1, 10, 1);
        q.push("a", &first);
        // Already stored, new, too large on its own, new: one transaction.
        let batch = vec![
            first.clone(),
            payload(2, 10, 2),
            payload(3, 30, 3),
            payload(4, 10, 4),
        ];
        let out = q.push_many("a", &batch);
        assert!(
            matches!(out[0], PushOutcome::AlreadyStored { .. }),
            "{out:?}"
        );
        assert!(matches!(out[1], PushOutcome::Stored { .. }), "{out:?}");
        assert_eq!(out[2], PushOutcome::Dropped);
        assert!(matches!(out[3], PushOutcome::Stored { .. }), "{out:?}");
        // 30 bytes stored against a bound of 25: the oldest (the first push) went.
        let st = q.stats().sink("a");
        assert_eq!(st.dropped_cache_full, 3 + 1, "{st:?}");
        let left: Vec<u32> = q
            .oldest("a", 10)
            .expect("oldest")
            .iter()
            .map(|b| b.payload.records)
            .collect();
        assert_eq!(left, vec![2, 4], "order kept");
        assert_eq!(q.pending("a"), (2, 6));
    }

    #[test]
    fn expiry_still_runs_after_rows_come_and_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(
            dir.path(),
            QueueConfig::default().max_age(Duration::from_secs(60)),
        );
        let now = now_ms();
        q.push_at("a", &payload(1, 10, 1), now);
        let b = q.oldest("a", 1).expect("oldest").remove(0);
        q.ack(b.seq).expect("ack");
        // Nothing old now; a row older than any seen before still expires.
        q.expire(now);
        q.push_at("a", &payload(2, 10, 2), now - 120_000);
        q.push_at("a", &payload(3, 10, 3), now);
        assert_eq!(q.pending("a"), (1, 3));
        assert_eq!(q.stats().sink("a").dropped_expired, 2);
    }

    /// A failed expiry leaves the age of the oldest row unknown. A batch stored
    /// meanwhile must not make the queue believe its oldest row is that new one: the
    /// old rows go as soon as a delete works again, not a whole `max_age` later.
    #[test]
    fn a_failed_expiry_is_retried_after_the_next_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = QueueConfig::default().max_age(Duration::from_secs(60));
        let now = now_ms();
        {
            let (mut q, _) = open(dir.path(), config);
            // Stored two minutes ago (nothing expires relative to its own push).
            assert!(
                q.push_at("a", &payload(1, 10, 3), now - 120_000)
                    .is_stored()
            );
        }
        // The fault: every DELETE on the queue file fails (as a locked or damaged
        // file would make it), injected from a second connection on the real file.
        let other = Connection::open(dir.path().join("queue.db")).expect("second connection");
        other
            .execute_batch(
                "CREATE TRIGGER refuse_delete BEFORE DELETE ON batches
                 BEGIN SELECT RAISE(ABORT, 'injected: delete refused'); END;",
            )
            .expect("install fault");
        // The expiry at open fails: the old row is still there, the error recorded.
        let (mut q, report) = open(dir.path(), config);
        assert_eq!(report.restored_records, 3);
        assert!(
            q.stats()
                .last_error
                .is_some_and(|e| e.contains("expire") && e.contains("injected")),
            "{:?}",
            q.stats()
        );
        // A new batch is stored (its push's expiry fails again).
        assert!(q.push_at("a", &payload(2, 10, 4), now).is_stored());
        assert_eq!(q.pending("a"), (2, 7));
        assert_eq!(q.stats().sink("a").dropped_expired, 0);

        other
            .execute_batch("DROP TRIGGER refuse_delete;")
            .expect("remove fault");
        // The next expiry deletes the old row at once.
        q.expire(now);
        assert_eq!(q.pending("a"), (1, 4));
        assert_eq!(q.stats().sink("a").dropped_expired, 3);
        assert_eq!(
            q.oldest("a", 10).expect("oldest")[0].payload.bytes[..],
            [2; 10]
        );
    }

    /// Every snapshot a concurrent reader takes balances: records leave the pending
    /// gauges and reach `acked`/`removed`/`dropped_*` in the same update.
    #[test]
    fn every_stats_snapshot_balances_while_rows_are_deleted() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(
            dir.path(),
            QueueConfig::default()
                .max_age(Duration::from_secs(60))
                .max_bytes(2_000),
        );
        let handle = q.stats_handle();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let reader = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut unbalanced = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let snap = handle.snapshot();
                    for (sink, s) in &snap.sinks {
                        // No push in this test is refused, so offered == stored.
                        let inflow = s.restored_records + s.stored_records;
                        let outflow = s.pending_records
                            + s.acked_records
                            + s.removed_records
                            + s.dropped_total();
                        if inflow != outflow && unbalanced.len() < 5 {
                            unbalanced.push(format!("{sink}: {s:?}"));
                        }
                    }
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                unbalanced
            })
        };
        let now = now_ms();
        let mut tag = 0u8;
        let mut next = |records: u32| {
            tag = tag.wrapping_add(1);
            payload(tag, 100, records)
        };
        let mut rounds = 0u32;
        // At least 200 rounds, and until the reader took 2000 snapshots meanwhile.
        while rounds < 200 || (seen.load(Ordering::Relaxed) < 2_000 && rounds < 20_000) {
            rounds += 1;
            // Old batches, then one expiry deleting all of them in one statement.
            let old: Vec<Payload> = (0..6).map(|i| next(i + 1)).collect();
            q.push_many_at("a", &old, now - 120_000);
            q.expire(now);
            // Enough fresh batches of two sinks to pass max_bytes (evictions).
            for i in 0..12u32 {
                let sink = if i % 2 == 0 { "a" } else { "b" };
                assert!(q.push_at(sink, &next(i % 5 + 1), now).is_stored());
            }
            // One acknowledged and one removed per sink.
            for sink in ["a", "b"] {
                let batches = q.oldest(sink, 2).expect("oldest");
                if let Some(b) = batches.first() {
                    assert!(q.ack(b.seq).expect("ack"));
                }
                if let Some(b) = batches.get(1) {
                    assert_eq!(
                        q.remove(b.seq).expect("remove"),
                        u64::from(b.payload.records)
                    );
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let unbalanced = reader.join().expect("reader thread");
        assert!(
            unbalanced.is_empty(),
            "{} snapshots over {rounds} rounds; unbalanced: {unbalanced:#?}",
            seen.load(Ordering::Relaxed)
        );
        // The final state balances too, and every kind of deletion happened.
        let st = q.stats();
        for sink in ["a", "b"] {
            let s = st.sink(sink);
            assert_eq!(
                s.stored_records,
                s.pending_records + s.acked_records + s.removed_records + s.dropped_total(),
                "{sink}: {s:?}"
            );
            assert!(s.acked_records > 0 && s.removed_records > 0, "{s:?}");
            assert!(s.dropped_cache_full > 0, "{s:?}");
        }
        assert!(st.sink("a").dropped_expired > 0, "{:?}", st.sink("a"));
    }

    #[test]
    fn expired_batches_are_deleted_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(
            dir.path(),
            QueueConfig::default().max_age(Duration::from_secs(60)),
        );
        let now = now_ms();
        q.push_at("a", &payload(1, 10, 3), now - 120_000);
        q.push_at("a", &payload(2, 10, 4), now - 1_000);
        // The second push already expired the first.
        assert_eq!(q.pending("a"), (1, 4));
        assert_eq!(q.stats().sink("a").dropped_expired, 3);
        q.expire(now + 60_000);
        assert_eq!(q.pending("a"), (0, 0));
        assert_eq!(q.stats().sink("a").dropped_expired, 7);
        assert!(q.oldest("a", 10).expect("oldest").is_empty());
    }

    #[test]
    fn garbage_file_is_moved_aside_and_a_fresh_queue_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db");
        {
            let (mut q, _) = open(dir.path(), QueueConfig::default());
            q.push("a", &payload(1, 10, 1));
        }
        // Overwrite the whole database (and drop the WAL) with garbage.
        let _ = fs::remove_file(sibling(&path, "-wal"));
        let _ = fs::remove_file(sibling(&path, "-shm"));
        let garbage: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(&path, &garbage).expect("write garbage");

        let (mut q, report) = DiskQueue::open(&path, QueueConfig::default()).expect("open");
        let rec = report.recovered.expect("recovered");
        let name = rec
            .moved_to
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("queue.db.corrupt-"), "{name}");
        assert_eq!(fs::read(&rec.moved_to).expect("moved file"), garbage);
        assert_eq!(q.stats().corrupt_recoveries, 1);
        assert!(q.stats().last_error.is_some());
        assert_eq!(q.pending("a"), (0, 0));
        let p = payload(2, 10, 2);
        assert!(q.push("a", &p).is_stored());
        assert_eq!(q.oldest("a", 1).expect("oldest")[0].payload, p);
        drop(q);
        // The fresh file is healthy: no recovery the next time.
        let (_, report) = DiskQueue::open(&path, QueueConfig::default()).expect("reopen");
        assert!(report.recovered.is_none());
        assert_eq!(report.restored_records, 2);
    }

    #[test]
    fn damaged_pages_inside_a_real_database_are_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db");
        {
            let (mut q, _) = open(dir.path(), QueueConfig::default());
            for i in 0..50 {
                q.push("a", &payload(i, 3000, 1));
            }
            // Fold the WAL into the main file so the damage below hits real pages.
            q.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
        }
        // Keep the 100-byte header intact, scribble over the b-tree pages.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(4096)).expect("seek");
        f.write_all(&[0xA5; 4096 * 4]).expect("scribble");
        drop(f);
        let (mut q, report) = DiskQueue::open(&path, QueueConfig::default()).expect("open");
        assert!(report.recovered.is_some(), "{report:?}");
        assert!(q.push("a", &payload(1, 10, 1)).is_stored());
    }

    #[test]
    fn a_foreign_sqlite_file_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch("CREATE TABLE batches (x INTEGER); PRAGMA user_version = 1;")
                .expect("foreign schema");
        }
        let (mut q, report) = DiskQueue::open(&path, QueueConfig::default()).expect("open");
        assert!(
            report
                .recovered
                .expect("recovered")
                .reason
                .contains("layout")
        );
        assert!(q.push("a", &payload(1, 10, 1)).is_stored());
    }

    #[test]
    fn a_newer_schema_version_is_moved_aside_not_misread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch("PRAGMA user_version = 99;")
                .expect("version");
        }
        let (_, report) = DiskQueue::open(&path, QueueConfig::default()).expect("open");
        assert!(report.recovered.expect("recovered").reason.contains("99"));
    }

    #[test]
    fn unopenable_location_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").expect("write");
        // The parent "directory" is a regular file.
        let err = DiskQueue::open(blocker.join("queue.db"), QueueConfig::default())
            .expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::Queue);
    }

    #[test]
    fn disk_full_drops_and_counts_without_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut q, _) = open(dir.path(), QueueConfig::default());
        let small = payload(1, 100, 1);
        assert!(q.push("a", &small).is_stored());
        let pages: i64 = q
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page_count");
        q.set_max_page_count(pages).expect("cap");
        let big = payload(2, 64 * 1024, 5);
        assert_eq!(q.push("a", &big), PushOutcome::Dropped);
        let st = q.stats();
        assert_eq!(st.sink("a").dropped_disk_full, 5);
        assert!(
            st.last_error.as_deref().unwrap_or("").contains("full"),
            "{:?}",
            st.last_error
        );
        // What was stored before is intact, and the queue keeps working.
        assert_eq!(q.pending("a"), (1, 1));
        assert_eq!(q.oldest("a", 5).expect("oldest")[0].payload, small);
        q.set_max_page_count(1_000_000).expect("uncap");
        assert!(q.push("a", &big).is_stored());
    }

    #[test]
    fn corruption_found_while_running_is_recovered_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.db");
        let (mut q, _) = open(dir.path(), QueueConfig::default());
        q.push("a", &payload(1, 10, 3));
        q.push("b", &payload(2, 10, 2));
        q.recover_from_corruption(&rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        ));
        let st = q.stats();
        assert_eq!(st.corrupt_recoveries, 1);
        assert_eq!(st.sink("a").dropped_corrupt, 3);
        assert_eq!(st.sink("b").dropped_corrupt, 2);
        assert_eq!(q.pending("a"), (0, 0));
        assert_eq!(q.total_bytes(), 0);
        let aside: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("queue.db.corrupt-")
            })
            .collect();
        assert!(!aside.is_empty());
        assert!(path.exists());
        let p = payload(3, 10, 1);
        assert!(q.push("a", &p).is_stored());
        assert_eq!(q.oldest("a", 5).expect("oldest")[0].payload, p);
    }

    #[test]
    fn wal_mode_is_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (q, _) = open(dir.path(), QueueConfig::default().sync(SyncMode::Full));
        let mode: String = q
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = q
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2);
    }

    #[test]
    fn disk_queue_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<DiskQueue>();
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<QueueStatsHandle>();
    }
}
