//! The pipeline between logging calls and sinks (crate-private).
//!
//! ```text
//! caller ── try_send ──► channel ──► worker (own thread, current-thread tokio runtime)
//!                                     merge context, mask, Arc<Record>, try_send
//!                                       ├─► thread "loggier-sink-file"  (batch → encode → send)
//!                                       └─► thread "loggier-sink-loki"  (batch → encode → send)
//! ```
//!
//! Each sink thread has its own current-thread runtime, so blocking I/O in one sink
//! (a stdout nobody reads, a file write on a full disk, a SQLite busy wait) delays
//! neither the worker nor another sink.

pub(crate) mod retry;
pub(crate) mod sink_task;
pub(crate) mod spool;
pub(crate) mod stats;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::ScopeFrame;
use crate::mask::Masker;
use crate::record::{Fields, Record, ServiceInfo};

pub use stats::{SinkStats, Stats};

/// A record on its way to the worker, with the context captured on the caller's
/// thread as cheap `Arc` clones; the merge happens on the worker.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) record: Record,
    pub(crate) global: Arc<Fields>,
    pub(crate) scope: Option<Arc<ScopeFrame>>,
}

/// Messages from the client to the worker.
#[derive(Debug)]
pub(crate) enum Msg {
    Record(Box<Envelope>),
    /// Answer `true` on `ack` once everything sent before is written by every sink.
    /// Not `patient`: answer `false` as soon as a sink cannot make progress right
    /// now (backing off, offline) instead of waiting for it.
    Flush {
        ack: flume::Sender<bool>,
        patient: bool,
    },
    /// Persist barrier ([`Loggier::persist`](crate::Loggier::persist)): answer `true`
    /// on `ack` once every record sent before is safe from a crash of this process —
    /// durable mode: committed to the disk queue of each sink that has one, written
    /// by each sink that has none; offline-cache mode: handed to every sink. `false`
    /// when one of them was dropped (since the previous barrier) or a sink is gone.
    /// Never waits for a network send or a backoff.
    Persist {
        ack: flume::Sender<bool>,
    },
    /// Write what can be written before `deadline`, close the sinks, answer, exit.
    /// Not `patient`: network sinks make only the attempts that can start now and
    /// do not wait out a backoff (what is left goes to the disk queue, or is counted).
    Shutdown {
        deadline: Instant,
        patient: bool,
        ack: flume::Sender<()>,
    },
}

/// Longest wait any deadline in the pipeline is allowed to express: 100 years.
/// `Instant + Duration::MAX` overflows; every deadline saturates to this instead.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    instant_plus(Instant::now(), d)
}

/// `at + d`, saturating far in the future instead of overflowing.
pub(crate) fn instant_plus(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR_FUTURE))
        .or_else(|| at.checked_add(Duration::from_secs(365 * 24 * 60 * 60)))
        .unwrap_or(at)
}

/// Settings the worker and sink tasks need.
#[derive(Debug, Clone)]
pub(crate) struct PipelineSettings {
    pub(crate) service: Arc<ServiceInfo>,
    pub(crate) masker: Masker,
    pub(crate) tags: Vec<String>,
    pub(crate) max_batch_size: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) sink_capacity: usize,
    /// Backoff and `max_retries` of network sinks.
    pub(crate) retry: retry::RetryPolicy,
    /// Probe interval of an offline sink.
    pub(crate) network_check_interval: Duration,
    /// Offline cache or durable.
    pub(crate) delivery: spool::DeliveryMode,
    /// What the worker does when a sink's queue is full: count the record
    /// `dropped_backlog` (`DropNewest`) or wait for room (`Block`, so the
    /// backpressure reaches the callers and nothing is dropped).
    pub(crate) full_policy: crate::config::FullPolicy,
}

/// Merges the captured context into the record and masks it (worker side).
pub(crate) fn finish(env: Envelope, settings: &PipelineSettings) -> Record {
    let Envelope {
        mut record,
        global,
        scope,
    } = env;
    let call = std::mem::take(&mut record.context);
    let mut ctx = Fields::with_capacity(global.len() + call.len());
    ctx.extend(global.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(s) = &scope {
        ctx.extend(s.fields().iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(route) = s.route() {
            ctx.entry("route").or_insert_with(|| route.into());
        }
        if record.request_id.is_none() {
            record.request_id = s.request_id().map(str::to_string);
        }
        if record.trace_id.is_none() {
            record.trace_id = s.trace_id().map(str::to_string);
            record.span_id = s.span_id().map(str::to_string);
        }
    }
    ctx.extend(call);
    record.context = ctx;
    if !settings.tags.is_empty() || scope.as_ref().is_some_and(|s| !s.tags().is_empty()) {
        let mut tags = settings.tags.clone();
        if let Some(s) = &scope {
            tags.extend(s.tags().iter().cloned());
        }
        tags.append(&mut record.tags);
        record.tags = tags;
    }
    settings.masker.mask_record(&mut record);
    record
}
