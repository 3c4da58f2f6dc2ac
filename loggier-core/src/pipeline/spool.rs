//! The per-sink view of the disk queue used by the sink task, and the delivery modes.
//!
//! Everything that touches the queue goes through [`Spool`], so the sink task reads
//! the same with or without the `disk-queue` feature (without it, or for local
//! sinks, the spool is disabled and every call is a no-op).

#[cfg(feature = "disk-queue")]
use std::sync::{Arc, Mutex, PoisonError};

use crate::sink::Payload;

/// What a network sink guarantees for a record the client accepted.
///
/// Local sinks (file, stdout) never use the disk queue, whatever the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// Offline cache (default when `enable_caching` is on): batches are sent from
    /// memory; a batch goes to the disk queue when a send fails with a retryable
    /// error (and everything behind it follows, to keep the order), and at
    /// [`shutdown`](crate::Loggier::shutdown) whatever is not delivered yet is written
    /// to disk before the sink closes, within the shutdown budget: records still in
    /// memory when the budget runs out (e.g. the queue file stayed locked) are counted
    /// `dropped_failed` with the reason in `last_error`, never lost silently. A crash
    /// (`kill -9`, power loss) loses the batches that were only in memory: at most the
    /// current batch and the ones waiting for their first send. While the sink is offline (or a backlog is
    /// being replayed), new batches are committed in groups — 16 batches, or what
    /// waited one batch interval (`flush_interval`) — one SQLite transaction per
    /// group; a `flush()` of an offline sink commits what is waiting at once.
    /// `flush()` returns `true` only when every record accepted before it was
    /// delivered.
    #[default]
    OfflineCache,
    /// Durable (write-ahead): every batch is committed to the disk queue before its
    /// first send and deleted when the sink acknowledges it, so a crash loses only
    /// records not yet batched. `flush()` returns `true` when every record accepted
    /// before it is delivered or committed to disk. While a send is in flight, new
    /// batches are still committed (and persist barriers answered) when the sink
    /// has a detached send ([`Sink::send_detached`](crate::Sink::send_detached):
    /// Loki, HTTP, Vector, OTLP over HTTP); other sinks commit them once the send
    /// returns. Costs one SQLite commit per batch (plus an `fsync` with
    /// [`SyncMode::Full`](crate::queue::SyncMode)). Needs the `disk-queue` feature
    /// and `enable_caching`.
    Durable,
}

/// One stored batch handed to the sink task.
#[derive(Debug)]
pub(crate) struct SpoolBatch {
    pub(crate) seq: i64,
    pub(crate) payload: Payload,
    /// Failed attempts recorded on the row, or the row was left by an earlier run:
    /// delivering it is a replay.
    pub(crate) replay: bool,
}

/// The outcome of deleting a delivered batch.
#[cfg_attr(not(feature = "disk-queue"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acked {
    /// The row is deleted.
    Deleted,
    /// The row was already gone (evicted by a bound and counted by the queue).
    Gone,
    /// The delete failed (e.g. the file is locked); the row is still there.
    Failed(String),
}

/// The outcome of storing a batch.
#[cfg_attr(not(feature = "disk-queue"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Committed.
    Yes,
    /// Not stored and counted as dropped by the queue (bound, disk full, I/O).
    Dropped,
}

/// The shared disk queue as seen by one sink.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    #[cfg(feature = "disk-queue")]
    queue: Option<Arc<Mutex<crate::queue::DiskQueue>>>,
    #[cfg(feature = "disk-queue")]
    sink: String,
    /// The queue's counters, read without taking the queue's lock.
    #[cfg(feature = "disk-queue")]
    stats: Option<crate::queue::QueueStatsHandle>,
}

#[cfg(feature = "disk-queue")]
impl Spool {
    pub(crate) fn new(queue: Option<Arc<Mutex<crate::queue::DiskQueue>>>, sink: &str) -> Self {
        let stats = queue.as_ref().map(|q| {
            q.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stats_handle()
        });
        Spool {
            queue,
            sink: sink.to_string(),
            stats,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut crate::queue::DiskQueue) -> R) -> Option<R> {
        let q = self.queue.as_ref()?;
        let mut g = q.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut g))
    }

    /// `true` when this sink has a disk queue.
    pub(crate) fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// `true` when this sink has batches on disk.
    pub(crate) fn has_backlog(&self) -> bool {
        self.pending_batches() > 0
    }

    /// Batches of this sink on disk. From the counters: never waits for the queue.
    pub(crate) fn pending_batches(&self) -> u64 {
        self.stats
            .as_ref()
            .map_or(0, |h| h.sink(&self.sink).pending_batches)
    }

    /// Commits `payloads` in order, in one transaction; one outcome each. `None`
    /// when the spool is disabled.
    pub(crate) fn store_all(&self, payloads: &[Payload]) -> Option<Vec<Stored>> {
        self.with(|q| {
            q.push_many(&self.sink, payloads)
                .into_iter()
                .map(|o| {
                    if o.is_stored() {
                        Stored::Yes
                    } else {
                        Stored::Dropped
                    }
                })
                .collect()
        })
    }

    /// Recounts this queue's pending gauges from the file (they drifted from the
    /// rows on disk). Errors are recorded by the queue.
    pub(crate) fn resync(&self) {
        let _ = self.with(|q| q.resync());
    }

    /// The oldest stored batch of this sink with a row id above `after` (rows up
    /// to `after` are delivered, waiting for their delete). Corrupt rows met on the
    /// way are quarantined and counted by the queue.
    ///
    /// # Errors
    /// The queue's error text when it cannot be read.
    pub(crate) fn oldest_after(&self, after: i64) -> Result<Option<SpoolBatch>, String> {
        self.with(|q| {
            let upto = q.restored_upto();
            q.oldest_after(&self.sink, after, 1)
                .map(|mut v| {
                    v.pop().map(|b| SpoolBatch {
                        seq: b.seq,
                        replay: b.attempts > 0 || b.seq <= upto,
                        payload: b.payload,
                    })
                })
                .map_err(|e| e.to_string())
        })
        .unwrap_or(Ok(None))
    }

    /// Deletes a delivered batch.
    pub(crate) fn ack(&self, seq: i64) -> Acked {
        self.with(|q| match q.ack(seq) {
            Ok(true) => Acked::Deleted,
            Ok(false) => Acked::Gone,
            Err(e) => Acked::Failed(e.to_string()),
        })
        .unwrap_or(Acked::Gone)
    }

    /// Deletes a batch that was not delivered (refused, or the sink panicked);
    /// returns its records (0 when already gone: evicted by a bound and counted by
    /// the queue, or no spool).
    ///
    /// # Errors
    /// The queue's error text when the row cannot be deleted (it is still there).
    pub(crate) fn remove(&self, seq: i64) -> Result<u64, String> {
        self.with(|q| q.remove(seq).map_err(|e| e.to_string()))
            .unwrap_or(Ok(0))
    }

    /// Records one more failed attempt on the row (nothing when it is gone).
    ///
    /// # Errors
    /// The queue's error text when the row cannot be updated (its count stays as
    /// it was; the batch itself is unharmed).
    pub(crate) fn bump(&self, seq: i64) -> Result<(), String> {
        self.with(|q| q.bump_attempts(seq).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap_or(Ok(()))
    }
}

#[cfg(not(feature = "disk-queue"))]
impl Spool {
    pub(crate) fn disabled() -> Self {
        Spool {}
    }
    pub(crate) fn enabled(&self) -> bool {
        false
    }
    pub(crate) fn has_backlog(&self) -> bool {
        false
    }
    pub(crate) fn store_all(&self, _payloads: &[Payload]) -> Option<Vec<Stored>> {
        None
    }
    pub(crate) fn resync(&self) {}
    pub(crate) fn pending_batches(&self) -> u64 {
        0
    }
    pub(crate) fn oldest_after(&self, _after: i64) -> Result<Option<SpoolBatch>, String> {
        Ok(None)
    }
    pub(crate) fn ack(&self, _seq: i64) -> Acked {
        Acked::Gone
    }
    pub(crate) fn remove(&self, _seq: i64) -> Result<u64, String> {
        Ok(0)
    }
    pub(crate) fn bump(&self, _seq: i64) -> Result<(), String> {
        Ok(())
    }
}

/// The disk queue shared by the network sinks of one client, when there is one.
#[cfg(feature = "disk-queue")]
pub(crate) type SharedQueue = Option<Arc<Mutex<crate::queue::DiskQueue>>>;
/// Without the `disk-queue` feature there is never a queue.
#[cfg(not(feature = "disk-queue"))]
pub(crate) type SharedQueue = Option<std::convert::Infallible>;

/// Opens the client's disk queue when `needed`.
///
/// A corrupt file is moved aside by the queue and reported here once on stderr. A
/// queue that cannot be opened at all is an error in durable mode (its guarantee
/// would not hold); in offline-cache mode it is reported on stderr and in
/// [`Stats::disk_queue_error`](crate::Stats::disk_queue_error), and the sinks run
/// without it.
///
/// # Errors
/// [`ConfigError::Invalid`](crate::ConfigError) for `cache_dir` when another client
/// (this process or another) holds the queue, naming its pid; and in durable mode
/// when the queue cannot be opened.
#[cfg(feature = "disk-queue")]
pub(crate) fn open_queue(
    config: &crate::config::Config,
    needed: bool,
) -> Result<(SharedQueue, super::stats::QueueView), crate::ConfigError> {
    use crate::queue::{DiskQueue, QueueConfig, SyncMode};
    use std::io::Write;

    if !needed {
        return Ok((None, super::stats::QueueView::default()));
    }
    let path = config.queue_file();
    let qc = QueueConfig::default()
        .max_bytes(config.cache_max_bytes)
        .max_age(config.cache_max_age)
        .sync(if config.cache_fsync {
            SyncMode::Full
        } else {
            SyncMode::Normal
        });
    match DiskQueue::open(&path, qc) {
        Ok((q, report)) => {
            if let Some(r) = &report.recovered {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "loggier: disk queue {} was unusable ({}); moved to {} and started a fresh one",
                    path.display(),
                    r.reason,
                    r.moved_to.display()
                );
            }
            let view = super::stats::QueueView::new(Some(q.stats_handle()));
            Ok((Some(Arc::new(Mutex::new(q))), view))
        }
        Err(e) if e.kind() == crate::error::ErrorKind::Locked => Err(crate::ConfigError::invalid(
            "cache_dir",
            config.queue_dir().display(),
            format!(
                "{e}; each Loggier client needs a cache_dir of its own (run several instances with one cache_dir each)"
            ),
        )),
        Err(e) => {
            if config.delivery_mode == DeliveryMode::Durable {
                return Err(crate::ConfigError::invalid(
                    "cache_dir",
                    config.queue_dir().display(),
                    format!("durable delivery needs a disk queue: {e}"),
                ));
            }
            let msg = format!("{e}; network sinks run without a disk queue");
            let _ = writeln!(std::io::stderr().lock(), "loggier: {msg}");
            Ok((None, super::stats::QueueView::failed(msg)))
        }
    }
}

/// Without the `disk-queue` feature: durable mode is refused, caching is a no-op.
///
/// # Errors
/// [`ConfigError::Invalid`](crate::ConfigError) for `delivery_mode` when it is durable.
#[cfg(not(feature = "disk-queue"))]
pub(crate) fn open_queue(
    config: &crate::config::Config,
    _needed: bool,
) -> Result<(SharedQueue, super::stats::QueueView), crate::ConfigError> {
    if config.delivery_mode == DeliveryMode::Durable {
        return Err(crate::ConfigError::invalid(
            "delivery_mode",
            "durable",
            "needs the `disk-queue` cargo feature of loggier-core",
        ));
    }
    Ok((None, super::stats::QueueView::default()))
}

/// The spool of one sink: the shared queue for network sinks, none for local ones.
pub(crate) fn spool_for(queue: &SharedQueue, sink: &dyn crate::sink::Sink) -> Spool {
    #[cfg(feature = "disk-queue")]
    {
        let q = if sink.is_local() { None } else { queue.clone() };
        Spool::new(q, sink.name())
    }
    #[cfg(not(feature = "disk-queue"))]
    {
        let _ = (queue, sink);
        Spool::disabled()
    }
}
