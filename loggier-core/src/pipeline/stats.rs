//! Counters shared between callers, the worker and the sink tasks, and their public
//! snapshot types.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the caller side of the pipeline.
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) dispatched: AtomicU64,
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
    pub(crate) last_error: Mutex<Option<String>>,
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
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_last_error(&self, msg: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(msg);
        }
    }

    pub(crate) fn snapshot(&self) -> SinkStats {
        let ld = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let received = ld(&self.received);
        let written = ld(&self.written);
        let dropped_encode = ld(&self.dropped_encode);
        let dropped_rejected = ld(&self.dropped_rejected);
        let dropped_failed = ld(&self.dropped_failed);
        SinkStats {
            name: self.name.clone(),
            received,
            written,
            batches: ld(&self.batches),
            errors: ld(&self.errors),
            retried: ld(&self.retried),
            dropped_backlog: ld(&self.dropped_backlog),
            dropped_encode,
            dropped_rejected,
            dropped_failed,
            pending: received
                .saturating_sub(written + dropped_encode + dropped_rejected + dropped_failed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }
}

/// A snapshot of the client's counters, from [`Loggier::stats`](crate::Loggier::stats).
///
/// Conservation: `enqueued == dropped_queue_full + dropped_closed + in_channel +
/// dispatched`, and for every sink `dispatched == received + dropped_backlog` and
/// `received == written + dropped_encode + dropped_rejected + dropped_failed + pending`.
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
    /// Records dropped after every retry failed.
    pub dropped_failed: u64,
    /// Records received and not yet written or dropped.
    pub pending: u64,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

impl SinkStats {
    /// Records this sink dropped, all reasons.
    pub fn dropped(&self) -> u64 {
        self.dropped_backlog + self.dropped_encode + self.dropped_rejected + self.dropped_failed
    }
}
