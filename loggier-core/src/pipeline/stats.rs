//! Counters shared between callers, the worker and the sink tasks, and their public
//! snapshot types.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Counters of the caller side of the pipeline.
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) dispatched: AtomicU64,
    /// Set by the worker once it has shut down and drained the channel; a caller
    /// whose record lands in the channel after that counts it itself.
    pub(crate) worker_done: AtomicBool,
}

/// Counters of one sink task.
#[derive(Debug)]
pub(crate) struct SinkCounters {
    pub(crate) name: String,
    pub(crate) received: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped_backlog: AtomicU64,
    pub(crate) dropped_encode: AtomicU64,
    pub(crate) dropped_rejected: AtomicU64,
    pub(crate) dropped_failed: AtomicU64,
    /// Records stored in the disk queue.
    pub(crate) cached: AtomicU64,
    /// Records delivered from the disk queue after a failure or a restart.
    pub(crate) replayed: AtomicU64,
    /// Records that left the task's memory: delivered or dropped from memory, or
    /// handed to the disk queue (`to_disk`), or counted dropped when the sink was
    /// abandoned at shutdown.
    pub(crate) left_memory: AtomicU64,
    /// Records handed to the disk queue. Until the queue has counted them
    /// (`offered_records`, in the same update as its commit) they are in transit:
    /// pending, neither in memory nor on disk.
    pub(crate) to_disk: AtomicU64,
    /// Records of disk-queue rows this task deleted (acked or removed) and then
    /// counted (`written`/`dropped_*`). Between the delete and that count they
    /// are `acked_records + removed_records` of the queue beyond this: pending.
    pub(crate) settled_disk: AtomicU64,
    /// Set (under `moving`) when the shutdown deadline passed before the sink task
    /// finished: its records in memory were counted `dropped_failed` then, and the
    /// task counts no move after it.
    abandoned: AtomicBool,
    /// The sink failed `max_retries` times in a row and is probed periodically.
    pub(crate) offline: AtomicBool,
    pub(crate) last_error: Mutex<Option<String>>,
    /// The disk queue's counters of this sink.
    pub(crate) queue: QueueView,
    /// Held while records move between counters in more than one step (out of
    /// memory into `written`/`dropped_*`/`to_disk`, out of a deleted disk-queue
    /// row into `written`/`dropped_*`), and by [`SinkCounters::snapshot`], so a
    /// snapshot never sees records counted nowhere or twice. Only counters move
    /// under it: never SQLite work, a report or an `.await`, so `stats()` never
    /// waits on the disk. Lock order: this, then the disk queue's counters; never
    /// taken while holding those.
    moving: Mutex<()>,
}

impl SinkCounters {
    pub(crate) fn new(name: &str) -> Self {
        SinkCounters {
            name: name.to_string(),
            received: AtomicU64::new(0),
            written: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped_backlog: AtomicU64::new(0),
            dropped_encode: AtomicU64::new(0),
            dropped_rejected: AtomicU64::new(0),
            dropped_failed: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            left_memory: AtomicU64::new(0),
            to_disk: AtomicU64::new(0),
            settled_disk: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
            offline: AtomicBool::new(false),
            last_error: Mutex::new(None),
            queue: QueueView::default(),
            moving: Mutex::new(()),
        }
    }

    /// Attaches the disk queue's counters.
    pub(crate) fn with_queue(mut self, queue: QueueView) -> Self {
        self.queue = queue;
        self
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes the transition lock (see `moving`): hold the guard while updating
    /// every counter of one move. Never held across an `.await` or I/O.
    pub(crate) fn moving(&self) -> MutexGuard<'_, ()> {
        self.moving.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f`, the counter updates of one move of the sink task, under the
    /// transition lock, unless the sink was abandoned at shutdown (its records are
    /// counted already: a late move would count them twice). Returns whether `f`
    /// ran.
    pub(crate) fn settle(&self, f: impl FnOnce(&Self)) -> bool {
        let _moving = self.moving();
        if self.abandoned.load(Ordering::Relaxed) {
            return false;
        }
        f(self);
        true
    }

    /// Marks the sink abandoned (the shutdown deadline passed before its task
    /// finished) and counts the records in its memory as `dropped_failed`, with
    /// the reason in `last_error`, in one move: from then on the task counts
    /// nothing ([`SinkCounters::settle`]), so each record is counted exactly once
    /// and the stats stay as they are. Records in transit to the disk queue or in
    /// it stay pending there (the next start replays them). Idempotent; returns
    /// the records it counted.
    pub(crate) fn abandon(&self) -> u64 {
        let n = {
            let _moving = self.moving();
            if self.abandoned.swap(true, Ordering::Relaxed) {
                return 0;
            }
            let n = self
                .received
                .load(Ordering::Relaxed)
                .saturating_sub(self.left_memory.load(Ordering::Relaxed));
            Self::add(&self.left_memory, n);
            Self::add(&self.dropped_failed, n);
            n
        };
        if n > 0 {
            self.set_last_error(format!(
                "dropped {n} records not delivered before the shutdown deadline (the sink did not finish in time)"
            ));
        }
        n
    }

    /// `true` once [`SinkCounters::abandon`] ran.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    pub(crate) fn set_last_error(&self, msg: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(msg);
        }
    }

    pub(crate) fn snapshot(&self) -> SinkStats {
        let ld = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // No move between counters is half done while this is held (the mutex also
        // orders these loads after the mover's stores). `received` may still grow
        // meanwhile: such records are simply pending.
        let _moving = self.moving();
        let received = ld(&self.received);
        let left_memory = ld(&self.left_memory);
        // One consistent reading of the queue's counters. Records the task handed
        // to the queue that the queue has not counted yet, and records of rows it
        // deleted that it has not counted yet, are pending (in transit).
        let q = self.queue.sink(&self.name);
        let in_transit = ld(&self.to_disk).saturating_sub(q.offered)
            + (q.acked + q.removed).saturating_sub(ld(&self.settled_disk));
        let last_error = self
            .last_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .or(q.last_error);
        SinkStats {
            name: self.name.clone(),
            received,
            written: ld(&self.written),
            batches: ld(&self.batches),
            errors: ld(&self.errors),
            retried: ld(&self.retried),
            cached: ld(&self.cached),
            replayed: ld(&self.replayed),
            restored: q.restored,
            dropped_backlog: ld(&self.dropped_backlog),
            dropped_encode: ld(&self.dropped_encode),
            dropped_rejected: ld(&self.dropped_rejected),
            dropped_failed: ld(&self.dropped_failed),
            dropped_cache_full: q.dropped_cache_full,
            dropped_expired: q.dropped_expired,
            dropped_disk_full: q.dropped_disk_full,
            dropped_queue_io: q.dropped_io,
            dropped_corrupt: q.dropped_corrupt,
            pending_disk: q.pending,
            pending: received.saturating_sub(left_memory) + in_transit + q.pending,
            offline: self.offline.load(Ordering::Relaxed),
            last_error,
        }
    }
}

/// Disk-queue counters of one sink, as the stats need them.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueCounts {
    pub(crate) pending: u64,
    /// Records the queue has counted as handed to it (stored or dropped at once).
    pub(crate) offered: u64,
    /// Records of rows deleted by an ack.
    pub(crate) acked: u64,
    /// Records of rows deleted by a remove (not delivered).
    pub(crate) removed: u64,
    pub(crate) restored: u64,
    pub(crate) dropped_cache_full: u64,
    pub(crate) dropped_expired: u64,
    pub(crate) dropped_disk_full: u64,
    pub(crate) dropped_io: u64,
    pub(crate) dropped_corrupt: u64,
    pub(crate) last_error: Option<String>,
}

/// A read-only view of the disk queue's counters (empty without a queue). Reading
/// it never touches the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueView {
    #[cfg(feature = "disk-queue")]
    pub(crate) handle: Option<crate::queue::QueueStatsHandle>,
    /// Why the queue could not be opened, when it could not.
    pub(crate) open_error: Option<String>,
}

impl QueueView {
    #[cfg(feature = "disk-queue")]
    pub(crate) fn new(handle: Option<crate::queue::QueueStatsHandle>) -> Self {
        QueueView {
            handle,
            open_error: None,
        }
    }

    /// A view of a queue that could not be opened.
    #[cfg(feature = "disk-queue")]
    pub(crate) fn failed(reason: String) -> Self {
        QueueView {
            handle: None,
            open_error: Some(reason),
        }
    }

    #[cfg(feature = "disk-queue")]
    pub(crate) fn sink(&self, name: &str) -> QueueCounts {
        let Some(h) = &self.handle else {
            return QueueCounts::default();
        };
        let all = h.snapshot();
        let s = all.sink(name);
        QueueCounts {
            pending: s.pending_records,
            offered: s.offered_records,
            acked: s.acked_records,
            removed: s.removed_records,
            restored: s.restored_records,
            dropped_cache_full: s.dropped_cache_full,
            dropped_expired: s.dropped_expired,
            dropped_disk_full: s.dropped_disk_full,
            dropped_io: s.dropped_io,
            dropped_corrupt: s.dropped_corrupt,
            last_error: None,
        }
    }

    #[cfg(not(feature = "disk-queue"))]
    pub(crate) fn sink(&self, _name: &str) -> QueueCounts {
        QueueCounts::default()
    }

    /// Times a corrupt queue file was moved aside, and the last queue error.
    #[cfg(feature = "disk-queue")]
    pub(crate) fn health(&self) -> (u64, Option<String>) {
        match &self.handle {
            Some(h) => {
                let s = h.snapshot();
                (s.corrupt_recoveries, s.last_error)
            }
            None => (0, self.open_error.clone()),
        }
    }

    #[cfg(not(feature = "disk-queue"))]
    pub(crate) fn health(&self) -> (u64, Option<String>) {
        (0, self.open_error.clone())
    }
}

/// A snapshot of the client's counters, from [`Loggier::stats`](crate::Loggier::stats).
///
/// Conservation: `enqueued == dropped_queue_full + dropped_closed + in_channel +
/// dispatched`, and for every sink `dispatched == received + dropped_backlog` and
/// `received + restored == written + (dropped() - dropped_backlog) + pending` (see
/// [`SinkStats::balance`]). `pending` counts records in memory and on disk.
///
/// The per-sink balance holds in every snapshot. The first two hold exactly once
/// the client is idle or shut down; while records flow, a snapshot can be off by
/// the records crossing the channel at that instant (a record is counted in
/// `enqueued` just before it enters the channel, and in `dispatched` /
/// `received` just after the worker takes it out).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Records that passed the level filter (accepted or dropped at the channel).
    pub enqueued: u64,
    /// Records dropped because the channel was full ([`FullPolicy::DropNewest`](crate::FullPolicy)).
    pub dropped_queue_full: u64,
    /// Records logged after shutdown.
    pub dropped_closed: u64,
    /// Records waiting in the channel for the worker.
    pub in_channel: u64,
    /// Records the worker has handed to the sinks.
    pub dispatched: u64,
    /// One entry per sink, in the order they were added.
    pub sinks: Vec<SinkStats>,
    /// Times the disk-queue file was found corrupt or unreadable and moved aside to
    /// `<file>.corrupt-<unix-seconds>` (at start or later). Also reported once on
    /// stderr.
    pub disk_queue_recoveries: u64,
    /// The last disk-queue error (could not open, write or read), if any. When the
    /// queue could not be opened at all, network sinks run without it.
    pub disk_queue_error: Option<String>,
}

impl Stats {
    /// Records dropped before reaching any sink: `dropped_queue_full + dropped_closed`.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_closed
    }

    /// The stats of the sink named `name`.
    pub fn sink(&self, name: &str) -> Option<&SinkStats> {
        self.sinks.iter().find(|s| s.name == name)
    }
}

/// Counters of one sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SinkStats {
    /// Sink name.
    pub name: String,
    /// Records handed to this sink's task.
    pub received: u64,
    /// Records the sink acknowledged (written to the file, accepted by the receiver).
    pub written: u64,
    /// Batches delivered.
    pub batches: u64,
    /// Failed delivery attempts (each retry counts).
    pub errors: u64,
    /// Delivery attempts that were retries.
    pub retried: u64,
    /// Records dropped because this sink's own backlog was full (a stalled sink).
    pub dropped_backlog: u64,
    /// Records dropped because their batch could not be encoded.
    pub dropped_encode: u64,
    /// Records dropped because the receiver refused them (non-retryable status).
    pub dropped_rejected: u64,
    /// Records dropped after every retry failed (only when the sink has no disk
    /// queue: with one, such batches are parked on disk instead), or not delivered
    /// by the shutdown deadline.
    pub dropped_failed: u64,
    /// Records written to the disk queue (a batch that failed and those behind it in
    /// offline-cache mode, every batch in durable mode, everything left at shutdown).
    pub cached: u64,
    /// Records delivered from the disk queue after a failure or a restart (also
    /// counted in `written`).
    pub replayed: u64,
    /// Records found in the disk queue at start, left by an earlier run.
    pub restored: u64,
    /// Records deleted from the disk queue to respect its byte bound
    /// (`cache_max_bytes`), oldest first.
    pub dropped_cache_full: u64,
    /// Records deleted from the disk queue because they were older than
    /// `cache_max_age`.
    pub dropped_expired: u64,
    /// Records that could not be written to the disk queue because the disk is full.
    pub dropped_disk_full: u64,
    /// Records that could not be written to the disk queue because of another I/O
    /// error.
    pub dropped_queue_io: u64,
    /// Records lost when a corrupt disk-queue file was moved aside while running.
    pub dropped_corrupt: u64,
    /// Records of this sink in the disk queue now.
    pub pending_disk: u64,
    /// Records received (or restored) and not yet written or dropped: in memory plus
    /// `pending_disk`.
    pub pending: u64,
    /// `true` while the sink is considered down (it failed `max_retries` retries in a
    /// row); it is then probed every `network_check_interval` and its batches go to
    /// the disk queue.
    pub offline: bool,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

impl SinkStats {
    /// Records this sink dropped, all reasons.
    pub fn dropped(&self) -> u64 {
        self.dropped_backlog
            + self.dropped_encode
            + self.dropped_rejected
            + self.dropped_failed
            + self.dropped_cache_full
            + self.dropped_expired
            + self.dropped_disk_full
            + self.dropped_queue_io
            + self.dropped_corrupt
    }

    /// Conservation check: `received + restored - (written + dropped() -
    /// dropped_backlog + pending)`. Zero when every record this sink was given is
    /// accounted for, in every snapshot: each move of records between memory, the
    /// disk queue, `written` and the `dropped_*` counters is one update as seen by
    /// [`Loggier::stats`](crate::Loggier::stats). (Not zero after rows were deleted
    /// from the queue file by another program.)
    pub fn balance(&self) -> i128 {
        let inflow = i128::from(self.received) + i128::from(self.restored);
        let outflow = i128::from(self.written)
            + i128::from(self.dropped() - self.dropped_backlog)
            + i128::from(self.pending);
        inflow - outflow
    }
}
