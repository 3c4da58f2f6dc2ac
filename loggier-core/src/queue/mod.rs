//! The disk queue: encoded batches that could not be delivered yet, kept in one
//! SQLite file so they survive network outages, restarts and crashes.
//!
//! One row per encoded batch ([`Payload`](crate::Payload)), namespaced by sink name. The bytes stored
//! are exactly the bytes that go on the wire, so a replay re-sends the same body with
//! the same batch id (`X-Loggier-Batch-Id`), letting a receiver de-duplicate.
//!
//! # File format
//! SQLite 3 in WAL mode, schema version 1 (`PRAGMA user_version`). The file can be
//! inspected with the `sqlite3` shell:
//!
//! ```sql
//! CREATE TABLE batches (
//!     seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order = replay order
//!     sink          TEXT    NOT NULL,                  -- Sink::name()
//!     batch_id      TEXT    NOT NULL,                  -- Payload::id, hyphenated UUID
//!     created_at_ms INTEGER NOT NULL,                  -- unix ms when first stored
//!     attempts      INTEGER NOT NULL,                  -- failed delivery attempts so far
//!     bytes         INTEGER NOT NULL,                  -- payload length, bytes
//!     records       INTEGER NOT NULL,                  -- records in the batch
//!     payload       BLOB    NOT NULL,                  -- encoded wire bytes
//!     UNIQUE (sink, batch_id)
//! );
//! CREATE INDEX batches_by_sink ON batches (sink, seq);
//! CREATE INDEX batches_by_age ON batches (created_at_ms);
//! ```
//!
//! # Bounds
//! The sum of stored payload bytes is kept at or below [`QueueConfig::max_bytes`]
//! (default [`DEFAULT_MAX_QUEUE_BYTES`], 256 MiB) by deleting the oldest batches, of
//! any sink, counted as `dropped_cache_full`. Batches older than
//! [`QueueConfig::max_age`] (default [`DEFAULT_MAX_QUEUE_AGE`], 7 days) are deleted
//! when the queue is next written or read, counted as `dropped_expired`. The file on
//! disk is somewhat larger than the payload sum (SQLite pages, the WAL).
//!
//! # Failures never take the host down
//! - A file that is not a database, fails SQLite's `quick_check`, or has an unknown
//!   schema is renamed aside to `<file>.corrupt-<unix-seconds>` (with its `-wal` and
//!   `-shm` companions) and a fresh queue is created; [`DiskQueue::open`] reports it
//!   once as [`OpenReport::recovered`]. Corruption found later (a read or write fails
//!   with `SQLITE_CORRUPT`/`SQLITE_NOTADB`) does the same; the records that were
//!   pending are counted as `dropped_corrupt`.
//! - A single row that cannot be decoded (a payload stored as TEXT, a damaged
//!   record count) is deleted when it is reached and its records are counted as
//!   `dropped_corrupt`; the batches behind it are delivered.
//! - A full disk (`SQLITE_FULL`) or another I/O error while storing a batch drops
//!   that batch and counts it (`dropped_disk_full` / `dropped_io`); nothing panics.
//!
//! # Concurrency
//! A [`DiskQueue`] is one SQLite connection: `Send`, not `Sync`; the pipeline shares
//! it between the network sinks of one client behind a mutex. Counters live in a
//! separate [`QueueStatsHandle`] that any thread can read without touching the file.
//!
//! One queue file belongs to one client. [`DiskQueue::open`] takes an exclusive
//! advisory lock on `<file>.lock` (flock on Unix, `LockFileEx` on Windows; the file
//! holds the owner's pid) and keeps it until the queue is dropped, so a second
//! client on the same file — in another process or in this one — is refused with
//! [`ErrorKind::Locked`](crate::ErrorKind::Locked) naming the holder, instead of
//! delivering and deleting the first one's batches behind its back.
//! [`LoggierBuilder::build`](crate::LoggierBuilder::build) turns that into a
//! [`ConfigError`](crate::ConfigError) for `cache_dir`. To run several instances on
//! one machine (workers of a pre-fork server, replicas sharing a volume), give each
//! its own `cache_dir`, e.g. `LOGGIER_CACHE_DIR=/var/lib/app/queue-$WORKER_ID`.
//!
//! # File modes
//! On Unix the queue file, its `-wal`/`-shm` companions and the lock file are
//! created with mode `0600` (owner only): batches hold log records, which may hold
//! personal data. An existing file keeps its mode.

mod store;

pub use store::{DiskQueue, OpenReport, PushOutcome, QueuedBatch, Recovery};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Default bound on the sum of stored payload bytes: 256 MiB. Large enough for hours
/// of a busy service's compressed logs, small enough not to fill a container's disk.
pub const DEFAULT_MAX_QUEUE_BYTES: u64 = 256 * 1024 * 1024;

/// Default bound on the age of a stored batch: 7 days. Logs older than a week rarely
/// help an investigation, and many backends (Loki's default `reject_old_samples_max_age`
/// is 1 week) refuse them anyway.
pub const DEFAULT_MAX_QUEUE_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How hard each commit is pushed to stable storage (SQLite `PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// `synchronous = NORMAL` (default): a committed batch survives a crash or
    /// `kill -9` of the process; the last commits may be lost if the machine loses
    /// power. No `fsync` per commit.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is `fsync`ed, so a committed batch also
    /// survives power loss. Costs one `fsync` per stored batch (milliseconds on most
    /// disks).
    Full,
}

/// Settings of a [`DiskQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Most payload bytes kept, summed over all sinks. Default
    /// [`DEFAULT_MAX_QUEUE_BYTES`] (256 MiB).
    pub max_bytes: u64,
    /// Oldest batch kept. Default [`DEFAULT_MAX_QUEUE_AGE`] (7 days).
    pub max_age: Duration,
    /// Commit durability. Default [`SyncMode::Normal`].
    pub sync: SyncMode,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_age: DEFAULT_MAX_QUEUE_AGE,
            sync: SyncMode::Normal,
        }
    }
}

impl QueueConfig {
    /// Sets [`QueueConfig::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets [`QueueConfig::max_age`].
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Sets [`QueueConfig::sync`].
    #[must_use]
    pub fn sync(mut self, sync: SyncMode) -> Self {
        self.sync = sync;
        self
    }
}

/// Disk-queue counters of one sink. Record counts unless the name says batches or
/// bytes. Counters only grow, except the `pending_*` gauges.
///
/// Balance, in every snapshot: `restored_records + offered_records ==
/// pending_records + acked_records + removed_records + dropped_total()` (a refused
/// batch, [`PushOutcome::Dropped`], is counted in a `dropped_*` counter without
/// ever being stored; every other one in `stored_records`; a batch pushed again
/// while stored, [`PushOutcome::AlreadyStored`], is offered twice). Each change
/// moves records between these counters in one update, so a reader never sees
/// records counted nowhere or twice. [`DiskQueue::resync`] is the exception: it
/// resets the gauges to what the file holds (rows deleted by another program).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkQueueStats {
    /// Batches stored now.
    pub pending_batches: u64,
    /// Records stored now.
    pub pending_records: u64,
    /// Payload bytes stored now.
    pub pending_bytes: u64,
    /// Records that were already in the file when it was opened (left by an earlier
    /// run); they count as accepted by this run for the conservation law.
    pub restored_records: u64,
    /// Records written to the queue (each batch counted once, however often it is
    /// stored).
    pub stored_records: u64,
    /// Records of every batch handed to [`DiskQueue::push`] /
    /// [`DiskQueue::push_many`], counted in the same update that counts the batch
    /// stored (`stored_records`, `pending_*`) or dropped, or finds it stored
    /// already ([`PushOutcome::AlreadyStored`], which changes nothing else).
    pub offered_records: u64,
    /// Records removed after the sink acknowledged them.
    pub acked_records: u64,
    /// Records deleted undelivered by [`DiskQueue::remove`] (e.g. the receiver
    /// refused them); the caller counts them in its own drop counters, so they are
    /// not in [`SinkQueueStats::dropped_total`].
    pub removed_records: u64,
    /// Records deleted to respect [`QueueConfig::max_bytes`].
    pub dropped_cache_full: u64,
    /// Records deleted because they were older than [`QueueConfig::max_age`].
    pub dropped_expired: u64,
    /// Records that could not be stored because the disk is full (`SQLITE_FULL`).
    pub dropped_disk_full: u64,
    /// Records that could not be stored because of another I/O error.
    pub dropped_io: u64,
    /// Records lost when a corrupt queue file was moved aside.
    pub dropped_corrupt: u64,
}

impl SinkQueueStats {
    /// Sum of every `dropped_*` counter, records.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_cache_full
            + self.dropped_expired
            + self.dropped_disk_full
            + self.dropped_io
            + self.dropped_corrupt
    }
}

/// Counters of the whole queue file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Per-sink counters, by sink name.
    pub sinks: BTreeMap<String, SinkQueueStats>,
    /// Times a corrupt or unreadable file was moved aside and replaced (at open or
    /// later).
    pub corrupt_recoveries: u64,
    /// Last storage error, as text (`None` if there was none).
    pub last_error: Option<String>,
}

impl QueueStats {
    /// Counters of `sink` (zeros when the sink never used the queue).
    pub fn sink(&self, sink: &str) -> SinkQueueStats {
        self.sinks.get(sink).copied().unwrap_or_default()
    }
}

/// A cheap, cloneable, thread-safe view of a queue's counters. Reading it never
/// touches the file, so it is safe to call from the caller's thread.
#[derive(Debug, Clone, Default)]
pub struct QueueStatsHandle {
    inner: Arc<Mutex<QueueStats>>,
}

impl QueueStatsHandle {
    /// A snapshot of all counters.
    pub fn snapshot(&self) -> QueueStats {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A snapshot of one sink's counters.
    pub fn sink(&self, sink: &str) -> SinkQueueStats {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sink(sink)
    }

    /// Records pending on disk, summed over sinks.
    pub fn pending_records(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sinks
            .values()
            .map(|s| s.pending_records)
            .sum()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut QueueStats) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }
}
