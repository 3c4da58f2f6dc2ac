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

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::context::ScopeFrame;
use crate::mask::Masker;
use crate::record::value::{FieldKey, FieldValue};
use crate::record::{ContextFields, Exception, Fields, Level, Record, ServiceInfo, now_ns};

pub use stats::{SinkStats, Stats};

/// A record on its way to the worker — an [`EventBody`] (an [`Event`](crate::Event)
/// in its compact form) or a finished [`Record`] (`Loggier::log`, `try_log`, the
/// HTTP middleware) — with the context captured on the caller's thread as cheap
/// `Arc` clones; the merge happens on the worker. One allocation per record.
#[derive(Debug)]
pub(crate) struct Envelope<B> {
    pub(crate) body: B,
    /// The global fields, when there are any.
    pub(crate) global: Option<Arc<Fields>>,
    pub(crate) scope: Option<Arc<ScopeFrame>>,
}

impl<B> Envelope<B> {
    /// `body` without context yet ([`Loggier`](crate::Loggier) adds it when the
    /// record is submitted).
    pub(crate) fn new(body: B) -> Box<Envelope<B>> {
        Box::new(Envelope::unboxed(body))
    }

    /// [`Envelope::new`] not boxed: a finished record travels as
    /// `Envelope<Arc<Record>>` inline in its message, so the `Arc` the sinks share
    /// is the only allocation that carries it.
    pub(crate) fn unboxed(body: B) -> Envelope<B> {
        Envelope {
            body,
            global: None,
            scope: None,
        }
    }
}

/// Most records one sink's queue holds between the worker and the sink's thread.
/// The main channel (`channel_capacity`, compact envelopes) is where records wait
/// when a sink falls behind: with one sink the worker stops taking records while
/// the sink's queue is full; with several, a full queue drops for its own sink only
/// (`dropped_backlog`, [`FullPolicy::DropNewest`](crate::FullPolicy::DropNewest)) so
/// a stalled sink does not hold up the others.
pub(crate) const SINK_QUEUE_MAX: usize = 4096;

/// The capacity of each sink's queue for a main channel of `channel_capacity`.
pub(crate) fn sink_queue_capacity(channel_capacity: usize) -> usize {
    channel_capacity.clamp(1, SINK_QUEUE_MAX)
}

/// Inline capacity of an event's field list: up to this many fields cost no
/// allocation beyond the envelope's.
pub(crate) const INLINE_FIELDS: usize = 4;

/// The compact caller-side form of a log event: no JSON tree and no map for scalar
/// fields, a static message or logger name borrowed instead of copied. Turned into a
/// [`Record`] on the worker by [`finish`].
#[derive(Debug)]
pub(crate) struct EventBody {
    pub(crate) timestamp_ns: u64,
    pub(crate) level: Level,
    pub(crate) message: Cow<'static, str>,
    pub(crate) logger: Cow<'static, str>,
    /// The call's own fields in call order (a later key overwrites an earlier one).
    pub(crate) fields: SmallVec<[(FieldKey, FieldValue); INLINE_FIELDS]>,
    /// Rarely used parts, kept out of line so the common event stays small.
    pub(crate) extra: Option<Box<EventExtra>>,
}

/// Tags, exception and trace ids of an [`EventBody`], when it has any.
#[derive(Debug, Default)]
pub(crate) struct EventExtra {
    pub(crate) tags: Vec<String>,
    pub(crate) exception: Option<Box<Exception>>,
    pub(crate) trace_id: Option<String>,
    pub(crate) span_id: Option<String>,
}

impl EventBody {
    pub(crate) fn new(level: Level, message: Cow<'static, str>) -> Self {
        EventBody {
            timestamp_ns: now_ns(),
            level,
            message,
            logger: Cow::Borrowed("app"),
            fields: SmallVec::new(),
            extra: None,
        }
    }

    pub(crate) fn extra(&mut self) -> &mut EventExtra {
        self.extra.get_or_insert_with(Box::default)
    }
}

/// Wakes callers waiting for room in a full channel ([`FullPolicy::Block`]) once the
/// worker has taken a whole run of messages, instead of one caller per message (a
/// futex wake and a context switch per record), and tells the worker when to stop
/// waiting for full sink queues because a shutdown is under way.
///
/// [`FullPolicy::Block`]: crate::FullPolicy::Block
#[derive(Debug, Default)]
pub(crate) struct Room {
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    /// Set by a shutdown: from this instant the worker stops leaving records in the
    /// channel for full sink queues (half the shutdown's time budget), so the
    /// shutdown message is reached while the sinks still have time to write.
    stop_waiting_at: Mutex<Option<Instant>>,
}

impl Room {
    /// Waits (at most `timeout`) until the worker has made room, unless `full()` is
    /// already `false`. Spurious returns are fine: the caller retries its send.
    pub(crate) fn wait(&self, timeout: Duration, full: impl Fn() -> bool) {
        let Ok(guard) = self.lock.lock() else {
            std::thread::sleep(Duration::from_millis(1));
            return;
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Checked after announcing the wait: a worker that drained before this
        // point is seen here; one that drains after it sees the waiter and notifies
        // under the lock, which this thread holds until it waits.
        if full() {
            let _ = self.cv.wait_timeout(guard, timeout);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called by the worker after taking messages from the channel.
    pub(crate) fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// A shutdown with `deadline` is about to be sent.
    pub(crate) fn shutdown_started(&self, deadline: Instant) {
        let now = Instant::now();
        let half = deadline.saturating_duration_since(now) / 2;
        if let Ok(mut at) = self.stop_waiting_at.lock() {
            let t = instant_plus(now, half);
            *at = Some(at.map_or(t, |old| old.min(t)));
        }
    }

    /// `true` once a shutdown has used up half its time: records are then taken
    /// (and dropped for full sink queues) so the shutdown message is reached.
    pub(crate) fn stop_waiting(&self) -> bool {
        self.stop_waiting_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| Instant::now() >= at)
    }
}

/// Messages from the client to the worker.
#[derive(Debug)]
pub(crate) enum Msg {
    Event(Box<Envelope<EventBody>>),
    Record(Envelope<Arc<Record>>),
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

impl Msg {
    /// `true` for a record (event or finished record), `false` for a control message.
    pub(crate) fn is_record(&self) -> bool {
        matches!(self, Msg::Event(_) | Msg::Record(_))
    }
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

/// Builds the record from an event: merges global ⊕ scope ⊕ call context (later
/// ones winning; a key keeps the position it first had), adds the scope's request
/// and trace ids and the tags, and masks it (worker side).
pub(crate) fn finish_event(
    env: Box<Envelope<EventBody>>,
    settings: &PipelineSettings,
    keys: &mut KeyCache,
) -> Arc<Record> {
    // Taken apart straight out of the box: each part is moved once, the envelope is
    // not copied out whole first.
    let Envelope {
        body:
            EventBody {
                timestamp_ns,
                level,
                message,
                logger,
                fields,
                extra,
            },
        global,
        scope,
    } = *env;
    let masker = &settings.masker;
    let scope = scope.as_deref();
    // Masked part by part (inherited, then each call field): masking is per key and
    // value, so this equals masking the merged map.
    let mut ctx = inherited_context(global.as_deref(), scope, fields.len());
    masker.mask_context(&mut ctx);
    // A few distinct call fields and nothing inherited (the common call): append
    // them without looking each key up again. Otherwise a repeated key overwrites
    // the earlier value in its first position.
    let append = ctx.is_empty() && fields.len() <= INLINE_FIELDS && distinct_keys(&fields);
    for (k, v) in fields {
        let v = if keys.is_sensitive(masker, &k) {
            serde_json::Value::String(crate::mask::FILTERED.to_string())
        } else {
            let mut v = v.into_json();
            masker.mask_value(&mut v);
            v
        };
        if append {
            ctx.push_new(k, v);
        } else {
            ctx.insert(k, v);
        }
    }
    let extra = extra.map(|x| *x).unwrap_or_default();
    // Built in its `Arc` and finished there, not built and then moved into one.
    let mut record = Arc::new(Record {
        timestamp_ns,
        level,
        message,
        logger,
        context: ctx,
        tags: extra.tags,
        exception: extra.exception,
        http: None,
        timing: None,
        trace_id: extra.trace_id,
        span_id: extra.span_id,
        request_id: None,
    });
    // Only this function holds the record yet: no copy is made.
    complete(Arc::make_mut(&mut record), scope, settings);
    record
}

/// `true` when no key of `fields` appears twice (pairwise: meant for a few).
fn distinct_keys(fields: &[(FieldKey, FieldValue)]) -> bool {
    fields
        .iter()
        .enumerate()
        .all(|(i, (k, _))| fields[..i].iter().all(|(earlier, _)| earlier != k))
}

/// [`finish_event`] for a finished record: its context is the call's. The record is
/// finished in place in its `Arc` (only the caller held it, so nothing is copied).
pub(crate) fn finish_record(
    env: Envelope<Arc<Record>>,
    settings: &PipelineSettings,
) -> Arc<Record> {
    let Envelope {
        body: mut shared,
        global,
        scope,
    } = env;
    let record = Arc::make_mut(&mut shared);
    let scope = scope.as_deref();
    let global = global.as_deref();
    if global.is_some() || scope.is_some() {
        let call = std::mem::take(&mut record.context);
        let mut ctx = inherited_context(global, scope, call.len());
        ctx.extend(call);
        record.context = ctx;
    }
    settings.masker.mask_context(&mut record.context);
    complete(record, scope, settings);
    shared
}

/// Request and trace ids and tags from the scope and the settings; masking of
/// everything but the context (already masked).
fn complete(record: &mut Record, scope: Option<&ScopeFrame>, settings: &PipelineSettings) {
    if let Some(s) = scope {
        if record.request_id.is_none() {
            record.request_id = s.request_id().map(str::to_string);
        }
        if record.trace_id.is_none() {
            record.trace_id = s.trace_id().map(str::to_string);
            record.span_id = s.span_id().map(str::to_string);
        }
    }
    if !settings.tags.is_empty() || scope.is_some_and(|s| !s.tags().is_empty()) {
        let mut tags = settings.tags.clone();
        if let Some(s) = scope {
            tags.extend(s.tags().iter().cloned());
        }
        tags.append(&mut record.tags);
        record.tags = tags;
    }
    settings.masker.mask_record_but_context(record);
}

/// Slots of the [`KeyCache`].
const KEY_CACHE_SLOTS: usize = 64;

/// The worker's memory of which `'static` field keys (the macros' `key = value`)
/// are sensitive, by address: a `&'static str` never changes, so its address and
/// length stand for its text. Saves folding and matching the same few keys for
/// every record. Owned keys are always judged afresh.
#[derive(Debug)]
pub(crate) struct KeyCache {
    slots: [(usize, usize, bool); KEY_CACHE_SLOTS],
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: [(0, 0, false); KEY_CACHE_SLOTS],
        }
    }
}

impl KeyCache {
    /// [`Masker::is_sensitive_key`] for `key`, remembered for `'static` keys.
    pub(crate) fn is_sensitive(&mut self, masker: &Masker, key: &FieldKey) -> bool {
        match key {
            Cow::Borrowed(k) => {
                let addr = k.as_ptr() as usize;
                let slot = &mut self.slots[((addr >> 3) ^ k.len()) % KEY_CACHE_SLOTS];
                if slot.0 == addr && slot.1 == k.len() && addr != 0 {
                    return slot.2;
                }
                let sensitive = masker.is_sensitive_key(k);
                *slot = (addr, k.len(), sensitive);
                sensitive
            }
            Cow::Owned(k) => masker.is_sensitive_key(k),
        }
    }
}

/// Global fields, then the scope's (with its route, unless a scope field is called
/// `route`), with room for `more` call fields. Allocates nothing when there is
/// neither global nor scope context and `more` is 0.
fn inherited_context(
    global: Option<&Fields>,
    scope: Option<&ScopeFrame>,
    more: usize,
) -> ContextFields {
    let inherited = global.map_or(0, Fields::len) + scope.map_or(0, |s| s.fields().len() + 1);
    if inherited + more == 0 {
        return ContextFields::new();
    }
    // At its final size (at most this many distinct keys): one exact allocation,
    // not an empty vector grown through `reserve`'s rounding.
    let mut ctx = ContextFields::with_capacity(inherited + more);
    if let Some(g) = global {
        // A map's keys are distinct: no need to look for them.
        for (k, v) in g {
            ctx.push_new(Cow::Owned(k.clone()), v.clone());
        }
    }
    if let Some(s) = scope {
        ctx.extend(s.fields().iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(route) = s.route() {
            ctx.get_or_insert_with("route", || route.into());
        }
    }
    ctx
}
