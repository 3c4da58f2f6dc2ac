//! The [`Loggier`] client, its builder and the [`Event`] builder.

use std::borrow::{BorrowMut, Cow};
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{Config, FullPolicy};
use crate::context::{self, Scope};
use crate::error::ConfigError;
use crate::mask::Masker;
use crate::pipeline::spool::{DeliveryMode, open_queue, spool_for};
use crate::pipeline::stats::{ClientCounters, QueueView, SinkCounters};
use crate::pipeline::{
    Envelope, EventBody, Msg, PipelineSettings, Room, Stats, deadline_after, worker,
};
use crate::record::value::FieldValue;
use crate::record::{Exception, Fields, Level, Record, ServiceInfo};
use crate::sink::Sink;

/// Longest an implicit shutdown (last handle dropped) waits for the sinks.
const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Most of a shutdown's time kept back from the pipeline (at most a tenth of it):
/// the worker and the sinks work to a deadline this much earlier than the caller's,
/// so the worker has given up the sinks that did not finish (counting what they
/// held) and drained the channel when `shutdown` returns. Capped at a tenth of the
/// budget, so a short shutdown (100 ms) keeps back less (10 ms). The balance on
/// return does not depend on it: a sink thread that does not run in time is
/// abandoned and counted by the worker (or, when the worker too is late, by the
/// caller's thread at its own deadline), and counts nothing itself afterwards.
const SHUTDOWN_RESERVE: Duration = Duration::from_millis(200);

/// How often a caller blocked on a full channel ([`FullPolicy::Block`]) checks
/// whether the pipeline has shut down meanwhile.
const BLOCK_RECHECK: Duration = Duration::from_millis(50);

/// The Loggier client: cheap to clone (`Arc` inside), `Send + Sync`.
///
/// Logging calls never do I/O and never wait on the network: they check the level
/// (one atomic load), stamp the time, capture the current scope (an `Arc` clone) and
/// `try_send` into a bounded channel. Masking, encoding, batching and delivery happen
/// on the worker thread. Logging calls return `()`; a record that cannot be accepted
/// is counted in [`Stats`], never lost silently.
///
/// # `Drop` versus [`shutdown`](Loggier::shutdown)
/// Call [`Loggier::shutdown`] at the end of `main` (or drop the
/// [`InitGuard`](crate::InitGuard)): it waits up to the bound you give for every
/// sink, retrying a failing network sink until then.
///
/// When the last clone is dropped without it, the pipeline shuts down *impatiently*,
/// because a `Drop` often runs on an async runtime's thread that must not be held
/// up: local sinks write what they have, network sinks make the sends that can
/// start at once (no waiting out a backoff), then what is left goes to the disk
/// queue (with caching) or is counted as `dropped_failed`. That wait is bounded by
/// 2 s and in practice lasts as long as those sends.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use loggier_core::{Level, Loggier};
///
/// # fn main() -> Result<(), loggier_core::ConfigError> {
/// let dir = std::env::temp_dir().join("loggier-doc-client");
/// let log = Loggier::builder()
///     .service_name("billing")
///     .environment("staging")
///     .data_dir(&dir)
///     .build()?;
/// log.info("service started");
/// log.event(Level::Warning, "slow upstream")
///     .field("upstream", "payments")
///     .field("elapsed_ms", 1520)
///     .tag("latency")
///     .emit();
/// assert!(log.flush(Duration::from_secs(5)));
/// assert_eq!(log.stats().sinks[0].written, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Loggier {
    inner: Arc<Inner>,
}

struct Inner {
    level: AtomicU8,
    tx: flume::Sender<Msg>,
    /// The channel's receiving side, used only to count records that land in it
    /// after the worker has shut down.
    rx: flume::Receiver<Msg>,
    full_policy: FullPolicy,
    global: ArcSwap<Fields>,
    counters: Arc<ClientCounters>,
    sinks: Vec<Arc<SinkCounters>>,
    queue: QueueView,
    service: Arc<ServiceInfo>,
    masker: Masker,
    /// Wakes callers blocked on a full channel; tells the worker a shutdown began.
    room: Arc<Room>,
    closed: AtomicBool,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Loggier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loggier")
            .field("service", &self.inner.service)
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

impl Loggier {
    /// A builder with default settings ([`Config::default`]).
    pub fn builder() -> LoggierBuilder {
        LoggierBuilder::default()
    }

    /// The minimum level currently recorded.
    pub fn level(&self) -> Level {
        Level::from_u8(self.inner.level.load(Ordering::Relaxed))
    }

    /// Changes the minimum level at run time.
    pub fn set_level(&self, level: Level) {
        self.inner.level.store(level as u8, Ordering::Relaxed);
    }

    /// `true` when records of `level` are recorded (one atomic load).
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.inner.level.load(Ordering::Relaxed)
    }

    /// The client's service identity.
    pub fn service(&self) -> &ServiceInfo {
        &self.inner.service
    }

    /// The masker applied to every record.
    pub fn masker(&self) -> &Masker {
        &self.inner.masker
    }

    /// Submits a finished record. Below the level: discarded, not counted. Otherwise
    /// the current scope is captured and the record is queued for the worker; a full
    /// channel drops it (counted) or blocks, per [`FullPolicy`].
    pub fn log(&self, record: Record) {
        if !self.enabled(record.level) {
            return;
        }
        self.inner
            .submit(Envelope::unboxed(Arc::new(record)), Msg::Record);
    }

    /// Starts a record at `level` whose message is `message` formatted — without a
    /// copy when it is a plain string literal. The logging macros use it.
    #[doc(hidden)]
    pub fn __event(&self, level: Level, message: std::fmt::Arguments<'_>) -> Event<'_> {
        let env = self.enabled(level).then(|| {
            let message = match message.as_str() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(std::fmt::format(message)),
            };
            Envelope::new(EventBody::new(level, message))
        });
        Event { client: self, env }
    }

    /// Starts an event with `message` (see [`Loggier::event`]).
    fn event_cow(&self, level: Level, message: impl FnOnce() -> Cow<'static, str>) -> Event<'_> {
        let env = self
            .enabled(level)
            .then(|| Envelope::new(EventBody::new(level, message())));
        Event { client: self, env }
    }

    /// Like [`Loggier::log`] but never blocks and reports whether the pipeline took
    /// the record: `Ok(())` when it was queued for the worker (or is below the level
    /// and discarded by design), `Err(record)` — handed back, not counted as dropped —
    /// when the channel is full or the client is shut down. For relays that must
    /// answer "accepted" only for records the pipeline owns (HTTP 503 otherwise),
    /// whatever the [`FullPolicy`].
    ///
    /// # Errors
    /// The record itself (boxed) when it was not accepted.
    pub fn try_log(&self, record: Record) -> Result<(), Box<Record>> {
        if !self.enabled(record.level) {
            return Ok(());
        }
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Box::new(record));
        }
        let env = inner.envelope(Envelope::unboxed(Arc::new(record)));
        // Count first so `enqueued` never lags a record the worker already saw.
        inner.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        match inner.tx.try_send(Msg::Record(env)) {
            Ok(()) => {
                // As in `log`: a record that raced the shutdown is counted, not lost.
                inner.after_send();
                Ok(())
            }
            Err(e) => {
                inner.counters.enqueued.fetch_sub(1, Ordering::Relaxed);
                match e.into_inner() {
                    Msg::Record(env) => Err(Box::new(Arc::unwrap_or_clone(env.body))),
                    // `try_send` hands back exactly the message it was given.
                    _ => unreachable!("try_send returned a message it was not given"),
                }
            }
        }
    }

    /// Channel capacity left right now, in records: how many [`Loggier::try_log`]
    /// could queue without waiting (a snapshot; other threads may take it first).
    /// `usize::MAX` when the channel is unbounded.
    pub fn channel_free(&self) -> usize {
        let tx = &self.inner.tx;
        tx.capacity()
            .map_or(usize::MAX, |c| c.saturating_sub(tx.len()))
    }

    /// Starts a record at `level` with `message`; add fields, tags or an exception and
    /// call [`Event::emit`]. When the level is disabled the builder does nothing.
    pub fn event(&self, level: Level, message: impl Into<String>) -> Event<'_> {
        self.event_cow(level, || Cow::Owned(message.into()))
    }

    /// Logs `message` at trace level.
    pub fn trace(&self, message: impl Into<String>) {
        self.event(Level::Trace, message).emit();
    }
    /// Logs `message` at debug level.
    pub fn debug(&self, message: impl Into<String>) {
        self.event(Level::Debug, message).emit();
    }
    /// Logs `message` at info level.
    pub fn info(&self, message: impl Into<String>) {
        self.event(Level::Info, message).emit();
    }
    /// Logs `message` at warning level.
    pub fn warning(&self, message: impl Into<String>) {
        self.event(Level::Warning, message).emit();
    }
    /// Logs `message` at error level.
    pub fn error(&self, message: impl Into<String>) {
        self.event(Level::Error, message).emit();
    }
    /// Logs `message` at critical level.
    pub fn critical(&self, message: impl Into<String>) {
        self.event(Level::Critical, message).emit();
    }

    /// Logs `message` at error level with `err` described: type, message, the whole
    /// `source()` chain and a backtrace when `RUST_BACKTRACE` enables one.
    pub fn exception<E: StdError + ?Sized + 'static>(&self, message: impl Into<String>, err: &E) {
        self.event(Level::Error, message).exception(err).emit();
    }

    /// A [`Scope`] holding `fields`: enter it (sync) or instrument a future with it
    /// (async) so that every record inside carries them.
    pub fn context(&self, fields: Fields) -> Scope {
        Scope::with_fields(fields)
    }

    /// Merges `fields` into the global context added to every later record
    /// (existing keys are overwritten). Takes effect for records logged after it
    /// returns.
    pub fn update_global(&self, fields: Fields) {
        self.inner.global.rcu(|cur| {
            let mut next = (**cur).clone();
            next.extend(fields.clone());
            next
        });
    }

    /// Waits until every record accepted before this call has been written by every
    /// sink, or `timeout` passes. Blocks the calling thread.
    ///
    /// Returns `true` when everything was written; `false` on timeout or when some
    /// records were dropped (see [`Loggier::stats`]).
    ///
    /// `timeout` may be anything up to [`Duration::MAX`] (it saturates).
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.flush(timeout, true)
    }

    /// Like [`Loggier::flush`], but gives up (`false`) as soon as a sink cannot
    /// make progress now — a network sink backing off or offline — instead of
    /// waiting for it. The panic hook uses it, so a panicking thread (possibly an
    /// async runtime's) waits only for writes that can actually complete.
    pub(crate) fn flush_now(&self, timeout: Duration) -> bool {
        self.inner.flush(timeout, false)
    }

    /// [`Loggier::flush`] for async code: waits without blocking the runtime thread.
    pub async fn flush_async(&self, timeout: Duration) -> bool {
        let (tx, rx) = flume::bounded(1);
        let fut = async {
            let msg = Msg::Flush {
                ack: tx,
                patient: true,
            };
            self.inner.tx.send_async(msg).await.ok()?;
            self.inner.after_send();
            rx.recv_async().await.ok()
        };
        matches!(tokio::time::timeout(timeout, fut).await, Ok(Some(true)))
    }

    /// Waits until every record accepted before this call is safe from a crash of
    /// this process, or `timeout` passes — a barrier that travels the records' path
    /// (channel, worker, each sink's task), for services that acknowledge records
    /// to someone else (an HTTP relay answering 2xx). Blocks the calling thread; in
    /// async code use [`Loggier::persist_async`].
    ///
    /// What "safe" means depends on the [`DeliveryMode`](crate::DeliveryMode):
    /// - `Durable`: committed to the disk queue (one SQLite transaction per batch)
    ///   by every sink that has one, and written by every sink that has none (file,
    ///   stdout). Unlike [`Loggier::flush`] it never waits for a network delivery, a
    ///   backoff or an offline sink, nor for a send already in progress in a sink
    ///   that has a detached send
    ///   ([`Sink::send_detached`](crate::Sink::send_detached): Loki, HTTP, Vector,
    ///   OTLP over HTTP); with another sink it may wait for that send (bounded by
    ///   the sink's timeout).
    /// - `OfflineCache`: nothing is promised on disk before delivery, so it returns
    ///   once the worker has handed every earlier record to every sink.
    ///
    /// Returns `false` on timeout, when the pipeline is shut down, or when a record
    /// was dropped since the previous barrier or flush (a failed disk commit, a full
    /// sink queue) — possibly one logged by another thread; see [`Loggier::stats`].
    /// `timeout` may be anything up to [`Duration::MAX`] (it saturates).
    pub fn persist(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let (tx, rx) = flume::bounded(1);
        if self
            .inner
            .tx
            .send_deadline(Msg::Persist { ack: tx }, deadline)
            .is_err()
        {
            return false;
        }
        self.inner.after_send();
        rx.recv_deadline(deadline).unwrap_or(false)
    }

    /// [`Loggier::persist`] for async code: waits without blocking the runtime
    /// thread (needs a tokio runtime for the timeout).
    pub async fn persist_async(&self, timeout: Duration) -> bool {
        let (tx, rx) = flume::bounded(1);
        let fut = async {
            self.inner
                .tx
                .send_async(Msg::Persist { ack: tx })
                .await
                .ok()?;
            self.inner.after_send();
            rx.recv_async().await.ok()
        };
        matches!(tokio::time::timeout(timeout, fut).await, Ok(Some(true)))
    }

    /// Stops accepting records, writes what can be written within `timeout`, closes
    /// the sinks and stops the worker thread. Later logging calls are counted as
    /// `dropped_closed`. Idempotent. Blocks the calling thread. `timeout` may be
    /// anything up to [`Duration::MAX`] (it saturates).
    ///
    /// Afterwards [`Loggier::stats`] balances exactly: `enqueued` equals
    /// `written + every dropped reason + pending`, and each sink's counters are
    /// final: its `pending` is what waits in the disk queue for the next start.
    /// Records logged while the shutdown ran are `dropped_closed`. The pipeline
    /// works to a deadline up to 200 ms (at most a tenth of `timeout`) earlier. A
    /// send already in flight when the shutdown reaches its sink may finish within
    /// half the time left, so a batch the receiver has accepted is not sent again;
    /// one still unanswered then is cancelled, and its batch is treated as not sent
    /// (written to the disk queue or sent again: at least once). A
    /// sink that has not finished by then (a send that never completes, a thread
    /// starved of CPU) is given up there: the records it holds in memory are
    /// counted `dropped_failed`, with the reason in its `last_error`, and the sink
    /// counts nothing after that, so no record is counted twice when its thread
    /// runs again. Two cases settle after this returns, balanced all along: a
    /// commit to the disk queue under way at the deadline (a locked file) ends
    /// stored or counted dropped by the queue; and when the worker thread itself
    /// did not get to answer by `timeout`, the sinks are given up from the calling
    /// thread, and records still in the channel (`in_channel`) are counted when the
    /// worker takes them (`dropped_closed`, or the sink's `dropped_failed`).
    pub fn shutdown(&self, timeout: Duration) {
        self.inner.shutdown(timeout, true);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (disk_queue_recoveries, disk_queue_error) = self.inner.queue.health();
        Stats {
            enqueued: ld(&c.enqueued),
            dropped_queue_full: ld(&c.dropped_queue_full),
            dropped_closed: ld(&c.dropped_closed),
            in_channel: self.inner.tx.len() as u64,
            dispatched: ld(&c.dispatched),
            sinks: self.inner.sinks.iter().map(|s| s.snapshot()).collect(),
            disk_queue_recoveries,
            disk_queue_error,
        }
    }

    /// Records accepted and not yet written or dropped: those waiting in the
    /// channel plus every sink's pending records, in memory and in the disk queue
    /// (a record pending in two sinks counts twice). Reads counters only; never
    /// touches the disk.
    pub fn pending_count(&self) -> u64 {
        let s = self.stats();
        s.in_channel + s.sinks.iter().map(|k| k.pending).sum::<u64>()
    }
}

impl Inner {
    /// Captures the current scope and the global context (when there is any) into
    /// `env` (and, with feature `opentelemetry`, the active OTel span's ids when the
    /// scope has none): everything the caller's thread adds before the channel.
    fn envelope<B: Body, E: BorrowMut<Envelope<B>>>(&self, mut env: E) -> E {
        let scope = context::current();
        let e = env.borrow_mut();
        #[cfg(feature = "opentelemetry")]
        e.body.fill_otel_ids(scope.as_deref());
        let global = self.global.load();
        if !global.is_empty() {
            e.global = Some(Arc::clone(&global));
        }
        e.scope = scope;
        env
    }

    /// Counts, captures the context and queues `env` (or counts why it could not).
    fn submit<B: Body, E: BorrowMut<Envelope<B>>>(&self, env: E, msg: fn(E) -> Msg) {
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            self.counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let env = self.envelope(env);
        let sent = match self.full_policy {
            FullPolicy::DropNewest => match self.tx.try_send(msg(env)) {
                Ok(()) => Ok(()),
                Err(flume::TrySendError::Full(_)) => Err(&self.counters.dropped_queue_full),
                Err(flume::TrySendError::Disconnected(_)) => Err(&self.counters.dropped_closed),
            },
            FullPolicy::Block => self.send_blocking(msg(env)),
        };
        if let Err(counter) = sent {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.after_send();
    }

    fn shutdown(&self, timeout: Duration, patient: bool) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = deadline_after(timeout);
        let reserve = SHUTDOWN_RESERVE.min(timeout / 10);
        let pipeline_deadline = deadline.checked_sub(reserve).unwrap_or(deadline);
        let (tx, rx) = flume::bounded(1);
        let msg = Msg::Shutdown {
            deadline: pipeline_deadline,
            patient,
            ack: tx,
        };
        self.room.shutdown_started(pipeline_deadline);
        let answered = self.tx.send_deadline(msg, deadline).is_ok() && {
            self.after_send();
            rx.recv_deadline(deadline).is_ok()
        };
        if !answered {
            // The worker did not get to answer in time (starved of CPU, or the
            // channel stayed full): give up the sinks from here, so the stats are
            // final when this returns. A sink the worker already gave up, or that
            // finished, is left as it is.
            for s in &self.sinks {
                s.abandon();
            }
        }
        // The worker answers just before it returns; join only if it already has.
        if let Ok(mut w) = self.worker.lock() {
            if w.as_ref().is_some_and(std::thread::JoinHandle::is_finished) {
                if let Some(h) = w.take() {
                    let _ = h.join();
                }
            }
        }
    }

    fn flush(&self, timeout: Duration, patient: bool) -> bool {
        let deadline = deadline_after(timeout);
        let (tx, rx) = flume::bounded(1);
        let msg = Msg::Flush { ack: tx, patient };
        if self.tx.send_deadline(msg, deadline).is_err() {
            return false;
        }
        self.after_send();
        rx.recv_deadline(deadline).unwrap_or(false)
    }

    /// [`FullPolicy::Block`]: waits for room, but gives up (counted as
    /// `dropped_closed`) once the pipeline has shut down. The worker wakes waiting
    /// callers once per run of messages it takes ([`Room`]), not once per message.
    fn send_blocking(&self, mut msg: Msg) -> Result<(), &std::sync::atomic::AtomicU64> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(flume::TrySendError::Disconnected(_)) => {
                    return Err(&self.counters.dropped_closed);
                }
                Err(flume::TrySendError::Full(m)) => {
                    if self.counters.worker_done.load(Ordering::SeqCst) {
                        return Err(&self.counters.dropped_closed);
                    }
                    msg = m;
                    self.room.wait(BLOCK_RECHECK, || self.tx.is_full());
                }
            }
        }
    }

    /// After a send: if the worker has already shut down and drained the channel,
    /// nobody will read what was just sent; count it (`dropped_closed`, a flush
    /// answered `false`) so `stats()` balances.
    fn after_send(&self) {
        if self.counters.worker_done.load(Ordering::SeqCst) {
            worker::drain_closed(&self.rx, &self.counters, &self.room);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Impatient: see "Drop versus shutdown" on `Loggier`.
        self.shutdown(DROP_SHUTDOWN_TIMEOUT, false);
    }
}

/// A record being built; see [`Loggier::event`]. Does nothing when the level was
/// disabled. Must be [`emit`](Event::emit)ted to be logged.
///
/// Scalar field values (numbers, bools, strings, unit enum variants) are kept as
/// they are until the worker builds the record; nested values are serialized to
/// JSON on the spot.
#[must_use = "call .emit() to log the event"]
#[derive(Debug)]
pub struct Event<'a> {
    client: &'a Loggier,
    env: Option<Box<Envelope<EventBody>>>,
}

impl Event<'_> {
    fn body(&mut self) -> Option<&mut EventBody> {
        self.env.as_deref_mut().map(|e| &mut e.body)
    }

    /// Adds a context field; any `serde::Serialize` value (stored as JSON; `null` if it
    /// cannot be serialized). Overrides scope and global fields of the same key; a
    /// second field of the same key overrides the first.
    pub fn field(mut self, key: impl Into<String>, value: impl serde::Serialize) -> Self {
        if let Some(b) = self.body() {
            b.fields
                .push((Cow::Owned(key.into()), FieldValue::capture(&value)));
        }
        self
    }

    /// [`Event::field`] with a `'static` key (no copy of the key); the logging
    /// macros use it.
    #[doc(hidden)]
    pub fn __field<T: serde::Serialize + ?Sized>(mut self, key: &'static str, value: &T) -> Self {
        if let Some(b) = self.body() {
            b.fields
                .push((Cow::Borrowed(key), FieldValue::capture(value)));
        }
        self
    }

    /// Adds all `fields`.
    pub fn fields(mut self, fields: Fields) -> Self {
        if let Some(b) = self.body() {
            b.fields.extend(
                fields
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), FieldValue::Json(Box::new(v)))),
            );
        }
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        if let Some(b) = self.body() {
            b.extra().tags.push(tag.into());
        }
        self
    }

    /// Attaches `err` (type, message, `source()` chain, backtrace when enabled).
    pub fn exception<E: StdError + ?Sized + 'static>(mut self, err: &E) -> Self {
        if let Some(b) = self.body() {
            b.extra().exception = Some(Box::new(Exception::from_error(err)));
        }
        self
    }

    /// Sets the logger / target name (default `"app"`; the macros use the module path).
    pub fn logger(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        if let Some(b) = self.body() {
            b.logger = name.into();
        }
        self
    }

    /// Sends the record to the pipeline.
    pub fn emit(self) {
        if let Some(env) = self.env {
            self.client.inner.submit(env, Msg::Event);
        }
    }
}

/// What an envelope carries: an event or a finished record.
trait Body {
    /// With feature `opentelemetry`: the active OTel span's ids, when the record
    /// and its scope have none.
    #[cfg(feature = "opentelemetry")]
    fn fill_otel_ids(&mut self, scope: Option<&crate::context::ScopeFrame>);
}

impl Body for Record {
    #[cfg(feature = "opentelemetry")]
    fn fill_otel_ids(&mut self, scope: Option<&crate::context::ScopeFrame>) {
        crate::otel::fill_trace_ids(self, scope);
    }
}

impl Body for Arc<Record> {
    #[cfg(feature = "opentelemetry")]
    fn fill_otel_ids(&mut self, scope: Option<&crate::context::ScopeFrame>) {
        // Only the caller holds the record yet: no copy is made.
        crate::otel::fill_trace_ids(Arc::make_mut(self), scope);
    }
}

impl Body for EventBody {
    #[cfg(feature = "opentelemetry")]
    fn fill_otel_ids(&mut self, scope: Option<&crate::context::ScopeFrame>) {
        if self.extra.as_ref().is_some_and(|x| x.trace_id.is_some()) {
            return;
        }
        let (mut trace_id, mut span_id) = (None, None);
        crate::otel::fill_ids(&mut trace_id, &mut span_id, scope);
        if trace_id.is_some() {
            let x = self.extra();
            x.trace_id = trace_id;
            x.span_id = span_id;
        }
    }
}

/// Builds a [`Loggier`]; every setter is a [`Config`] field of the same name.
#[derive(Default)]
#[must_use]
pub struct LoggierBuilder {
    config: Config,
    sinks: Vec<Box<dyn Sink>>,
}

impl std::fmt::Debug for LoggierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggierBuilder")
            .field("config", &self.config)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => |$c:ident, $v:ident| $body:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $v: $ty) -> Self {
                let $c = &mut self.config;
                $body;
                self
            }
        )*
    };
}

impl LoggierBuilder {
    /// A builder starting from `config` (e.g. [`Config::from_env`]).
    pub fn from_config(config: Config) -> Self {
        LoggierBuilder {
            config,
            sinks: Vec::new(),
        }
    }

    /// The settings so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    setters! {
        /// Service name (default `"app"`).
        service_name: impl Into<String> => |c, v| c.service_name = v.into();
        /// Deployment environment (default `"development"`).
        environment: impl Into<String> => |c, v| c.environment = v.into();
        /// Project name.
        project_name: impl Into<String> => |c, v| c.project_name = Some(v.into());
        /// Service version.
        version: impl Into<String> => |c, v| c.version = Some(v.into());
        /// Source revision.
        revision: impl Into<String> => |c, v| c.revision = Some(v.into());
        /// Minimum level (default info).
        log_level: Level => |c, v| c.log_level = v;
        /// Most records per batch (default 100).
        max_batch_size: usize => |c, v| c.max_batch_size = v;
        /// Most estimated bytes per batch (default 1 MiB).
        max_batch_bytes: usize => |c, v| c.max_batch_bytes = v;
        /// Longest a record waits in a batch (default 1 s).
        flush_interval: Duration => |c, v| c.flush_interval = v;
        /// Channel capacity in records (default 10 000).
        channel_capacity: usize => |c, v| c.channel_capacity = v;
        /// Full-channel policy (default drop newest).
        full_policy: FullPolicy => |c, v| c.full_policy = v;
        /// Extra keys to mask.
        sensitive_fields: impl IntoIterator<Item = impl Into<String>> => |c, v| c.sensitive_fields.extend(v.into_iter().map(Into::into));
        /// Tags for every record.
        tags: impl IntoIterator<Item = impl Into<String>> => |c, v| c.tags.extend(v.into_iter().map(Into::into));
        /// Install a panic hook in [`init`](crate::init) (default true).
        capture_uncaught: bool => |c, v| c.capture_uncaught = v;
        /// Directory of the embedded file sink and the disk queue (default `./loggier-data`).
        data_dir: impl Into<PathBuf> => |c, v| c.data_dir = v.into();
        /// Keep undeliverable batches on disk (default true).
        enable_caching: bool => |c, v| c.enable_caching = v;
        /// Disk-queue directory (default `<data_dir>/queue`); one client per directory.
        cache_dir: impl Into<PathBuf> => |c, v| c.cache_dir = Some(v.into());
        /// Retries per batch before a network sink is considered offline and its
        /// batches are parked in the disk queue (default 3).
        max_retries: u32 => |c, v| c.max_retries = v;
        /// Network request timeout (default 5 s).
        http_timeout: Duration => |c, v| c.http_timeout = v;
        /// Health-probe interval while offline (default 60 s).
        network_check_interval: Duration => |c, v| c.network_check_interval = v;
        /// Offline cache (default) or durable write-ahead delivery; see [`DeliveryMode`].
        delivery_mode: DeliveryMode => |c, v| c.delivery_mode = v;
        /// Upper bound of the first retry delay (default 500 ms, full jitter).
        retry_initial_backoff: Duration => |c, v| c.retry_initial_backoff = v;
        /// Largest retry delay (default 30 s).
        retry_max_backoff: Duration => |c, v| c.retry_max_backoff = v;
        /// Byte bound of the disk queue, all sinks (default 256 MiB).
        cache_max_bytes: u64 => |c, v| c.cache_max_bytes = v;
        /// Age bound of the disk queue (default 7 days).
        cache_max_age: Duration => |c, v| c.cache_max_age = v;
        /// `fsync` each disk-queue commit (default false).
        cache_fsync: bool => |c, v| c.cache_fsync = v;
    }

    /// Adds a sink. Sinks added here replace the `sinks` names of the [`Config`];
    /// with none at all, the embedded file sink at `<data_dir>/loggier.ndjson` is used.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Validates the settings, opens the sinks and starts the worker thread.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault: an out-of-range value, an unknown
    /// or uncompiled sink name, an unwritable `data_dir`, two sinks with one name,
    /// `delivery_mode` durable without `enable_caching` or without the `disk-queue`
    /// feature, `cache_dir` when durable delivery cannot open its queue or when
    /// another client (in this process or another) holds the queue — the message
    /// names its pid; run several instances with one `cache_dir` each — or
    /// (`worker`) when the worker thread cannot be started.
    ///
    /// When a network sink is configured and caching is on, the disk queue
    /// `<cache_dir>/loggier-queue.db` is opened here (a corrupt file is moved aside
    /// and reported once on stderr and in [`Stats::disk_queue_recoveries`]).
    pub fn build(self) -> Result<Loggier, ConfigError> {
        let LoggierBuilder { config, mut sinks } = self;
        config.validate()?;
        if sinks.is_empty() {
            sinks = sinks_from_names(&config)?;
        }
        for (i, s) in sinks.iter().enumerate() {
            if sinks[..i].iter().any(|o| o.name() == s.name()) {
                return Err(ConfigError::invalid(
                    "sinks",
                    s.name(),
                    "two sinks have this name; give one another name",
                ));
            }
        }
        let service = Arc::new(ServiceInfo {
            service: config.service_name.clone(),
            environment: config.environment.clone(),
            project: config.project_name.clone(),
            version: config.version.clone(),
            revision: config.revision.clone(),
            host: hostname(),
        });
        let durable = config.delivery_mode == DeliveryMode::Durable;
        if durable && !config.enable_caching {
            return Err(ConfigError::invalid(
                "delivery_mode",
                "durable",
                "needs enable_caching = true (durable delivery writes every batch to the disk queue)",
            ));
        }
        let needs_queue = config.enable_caching && sinks.iter().any(|s| !s.is_local());
        let (queue, queue_view) = open_queue(&config, needs_queue)?;
        let masker = Masker::new(&config.sensitive_fields);
        let settings = PipelineSettings {
            service: Arc::clone(&service),
            masker: masker.clone(),
            tags: config.tags.clone(),
            max_batch_size: config.max_batch_size,
            max_batch_bytes: config.max_batch_bytes,
            flush_interval: config.flush_interval,
            sink_capacity: crate::pipeline::sink_queue_capacity(config.channel_capacity),
            retry: config.retry_policy(),
            network_check_interval: config.network_check_interval,
            delivery: config.delivery_mode,
            full_policy: config.full_policy,
        };
        let sinks: Vec<_> = sinks
            .into_iter()
            .map(|s| {
                let spool = spool_for(&queue, &*s);
                let view = if spool.enabled() {
                    queue_view.clone()
                } else {
                    QueueView::default()
                };
                let c = Arc::new(SinkCounters::new(s.name()).with_queue(view));
                (s, c, spool)
            })
            .collect();
        let sink_counters = sinks.iter().map(|(_, c, _)| Arc::clone(c)).collect();
        let counters = Arc::new(ClientCounters::default());
        let (tx, rx) = flume::bounded(config.channel_capacity);
        let drain = rx.clone();
        let room = Arc::new(Room::default());
        let handle = worker::spawn(
            rx,
            sinks,
            settings,
            Arc::clone(&counters),
            Arc::clone(&room),
        )
        .map_err(|e| {
            ConfigError::invalid("worker", "thread", format!("cannot start worker: {e}"))
        })?;
        Ok(Loggier {
            inner: Arc::new(Inner {
                level: AtomicU8::new(config.log_level as u8),
                tx,
                rx: drain,
                full_policy: config.full_policy,
                global: ArcSwap::from_pointee(Fields::new()),
                counters,
                sinks: sink_counters,
                queue: queue_view,
                service,
                masker,
                room,
                closed: AtomicBool::new(false),
                worker: Mutex::new(Some(handle)),
            }),
        })
    }
}

fn sinks_from_names(config: &Config) -> Result<Vec<Box<dyn Sink>>, ConfigError> {
    let out = config
        .sinks
        .iter()
        .map(|name| sink_from_name(name, config))
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(ConfigError::missing(
            "sinks",
            "name at least one sink (e.g. file)",
        ));
    }
    Ok(out)
}

/// The sink `name` of `LOGGIER_SINKS` stands for, configured from `config` and its
/// own variables. Without any sink feature every name is unknown and `config` is
/// not read.
#[cfg_attr(
    not(any(
        feature = "file",
        feature = "stdout",
        feature = "loki",
        feature = "vector"
    )),
    allow(unused_variables)
)]
fn sink_from_name(name: &str, config: &Config) -> Result<Box<dyn Sink>, ConfigError> {
    #[cfg(feature = "file")]
    if name == "file" {
        return Ok(Box::new(
            crate::sink::FileSink::builder(config.default_log_file()).build()?,
        ));
    }
    #[cfg(feature = "stdout")]
    if name == "stdout" {
        return Ok(Box::new(crate::sink::StdoutSink::new(config.stdout_format)));
    }
    #[cfg(feature = "otlp")]
    if name == "otlp" {
        return Ok(Box::new(crate::sink::OtlpSink::from_env()?));
    }
    #[cfg(feature = "loki")]
    if name == "loki" {
        return Ok(Box::new(crate::sink::LokiSinkBuilder::from_env_for_client(
            config.http_timeout,
        )?));
    }
    #[cfg(feature = "vector")]
    if name == "vector" {
        return Ok(Box::new(
            crate::sink::VectorSinkBuilder::from_env_for_client(config.http_timeout)?,
        ));
    }
    Err(ConfigError::invalid(
        "sinks",
        name,
        "unknown sink, or its cargo feature is not enabled",
    ))
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Loggier>();
    }

    #[test]
    #[cfg(feature = "file")] // the default sink list is ["file"]
    fn try_log_reports_acceptance_and_hands_refused_records_back() {
        let dir = std::env::temp_dir().join(format!("loggier-try-log-{}", std::process::id()));
        let log = Loggier::builder()
            .data_dir(&dir)
            .channel_capacity(4)
            .build()
            .expect("builds");
        let free = log.channel_free();
        assert!(free <= 4 && free > 0, "{free}");
        assert!(log.try_log(Record::new(Level::Info, "kept")).is_ok());
        // Below the level: accepted and discarded by design, not counted.
        assert!(log.try_log(Record::new(Level::Debug, "filtered")).is_ok());
        assert!(log.flush(Duration::from_secs(5)));
        log.shutdown(Duration::from_secs(5));
        let back = log
            .try_log(Record::new(Level::Error, "after shutdown"))
            .expect_err("closed client refuses");
        assert_eq!(back.message, "after shutdown");
        let s = log.stats();
        assert_eq!(s.enqueued, 1, "refused records are not counted as enqueued");
        assert_eq!(
            s.dropped_closed, 0,
            "nor as dropped: the caller got them back"
        );
        assert_eq!(s.sinks[0].written, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
