//! The worker thread: receives envelopes, finishes records and fans them out to the
//! sinks. Each sink runs on a thread of its own (with its own current-thread tokio
//! runtime), so a sink blocked in a write, an `fsync` or a SQLite busy wait delays no
//! other sink and no caller: with the default `FullPolicy::DropNewest` the worker only
//! ever does `try_send` into the sinks' bounded channels. With `FullPolicy::Block` it
//! waits for room in each sink's channel instead, so nothing is dropped and the
//! slowest sink sets the pace (the user chose backpressure over isolation).
//!
//! Per wake-up the worker takes a run of messages (up to [`RUN_MAX`]) from the
//! channel, wakes callers blocked on a full channel once for the whole run, builds
//! every record of the run, then hands them to each sink in one go, so a sink thread
//! that was idle is woken once per run rather than once per record. After a short
//! run of records the worker waits [`LINGER`] before it looks again, so under a
//! steady load a run holds about a millisecond of records and neither callers nor
//! sink threads pay a thread wake-up per record. While every
//! sink's queue is full the worker leaves records in the channel, where they wait in
//! their compact caller-side form (a flush waits behind them; a shutdown waits for
//! half its time budget, then records that still find no room are dropped).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::sink_task::{self, Control};
use super::spool::{DeliveryMode, Spool};
use super::stats::{ClientCounters, SinkCounters};
use super::{KeyCache, Msg, PipelineSettings, Room, deadline_after, finish_event, finish_record};
use crate::config::FullPolicy;
use crate::record::Record;
use crate::sink::Sink;

/// Name of the worker thread (the panic hook skips flushing from it). The worker
/// runtime's blocking-pool threads (DNS lookups of the HTTP client, blocking sink
/// I/O) carry the same name.
pub(crate) const WORKER_THREAD_NAME: &str = "loggier-worker";

/// Prefix of the name of every sink thread: `loggier-sink-<sink name>`.
pub(crate) const SINK_THREAD_PREFIX: &str = "loggier-sink-";

/// Longest a shutdown caused by dropping every client handle waits for the sinks.
const IMPLICIT_SHUTDOWN: Duration = Duration::from_secs(2);

/// Most messages taken from the channel per wake-up.
pub(crate) const RUN_MAX: usize = 1024;

/// How long the worker waits after a short run of records before it looks at the
/// channel again. While it waits it is not registered as a receiver, so a caller's
/// send is a plain push (no wake-up of a sleeping thread, no system call on the
/// request path), and the records of the next ~1 ms are taken, built and handed to
/// the sinks as one run: under a steady 50k records/s the worker and each sink
/// thread wake about 1,000 times a second instead of once every few records. A
/// record waits at most this much longer (tokio's timer rounds up to its 1 ms tick,
/// so up to ~2 ms) — far below a sink's batch delay (`flush_interval`, default 1 s).
const LINGER: Duration = Duration::from_millis(1);

/// First and longest wait between two looks at full sink queues.
const FULL_POLL_FIRST: Duration = Duration::from_millis(1);
const FULL_POLL_MAX: Duration = Duration::from_millis(8);

/// `true` on the worker thread or a sink thread: code there must neither log into the
/// pipeline (feedback) nor wait on it (it would wait on itself).
pub(crate) fn on_pipeline_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n == WORKER_THREAD_NAME || n.starts_with(SINK_THREAD_PREFIX))
}

struct SinkHandle {
    records: flume::Sender<Arc<Record>>,
    /// Capacity of `records`.
    capacity: usize,
    control: flume::Sender<Control>,
    counters: Arc<SinkCounters>,
    /// Disconnects when the sink thread has ended (its sink and spool dropped).
    done: flume::Receiver<()>,
}

/// Starts one thread per sink and the worker thread.
///
/// # Errors
/// The OS error when a runtime or a thread cannot be created.
pub(crate) fn spawn(
    rx: flume::Receiver<Msg>,
    sinks: Vec<(Box<dyn Sink>, Arc<SinkCounters>, Spool)>,
    settings: PipelineSettings,
    counters: Arc<ClientCounters>,
    room: Arc<Room>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let settings = Arc::new(settings);
    let mut handles = Vec::with_capacity(sinks.len());
    for (sink, sink_counters, spool) in sinks {
        handles.push(spawn_sink(sink, sink_counters, spool, &settings)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name(WORKER_THREAD_NAME)
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(WORKER_THREAD_NAME.to_string())
        .spawn(move || rt.block_on(run(rx, handles, settings, counters, room)))
}

/// Starts the thread of one sink. A panic that escapes the sink task's own guards
/// ends the thread; it is reported in the sink's `last_error`, and the records the
/// worker can no longer hand over are counted as `dropped_failed`.
fn spawn_sink(
    sink: Box<dyn Sink>,
    counters: Arc<SinkCounters>,
    spool: Spool,
    settings: &Arc<PipelineSettings>,
) -> std::io::Result<SinkHandle> {
    let capacity = settings.sink_capacity.max(1);
    let (rtx, rrx) = flume::bounded(capacity);
    let (ctx, crx) = flume::unbounded();
    let (done_tx, done_rx) = flume::bounded::<()>(1);
    // The runtime's blocking-pool threads (DNS lookups of the HTTP client, blocking
    // sink I/O) carry the sink thread's name, so `on_pipeline_thread` covers them too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name(format!("{SINK_THREAD_PREFIX}{}", sink.name()))
        .enable_all()
        .build()?;
    let task_counters = Arc::clone(&counters);
    let task_settings = Arc::clone(settings);
    std::thread::Builder::new()
        .name(format!("{SINK_THREAD_PREFIX}{}", sink.name()))
        .spawn(move || {
            let c = Arc::clone(&task_counters);
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(sink_task::run(
                    sink,
                    rrx,
                    crx,
                    task_settings,
                    task_counters,
                    spool,
                ));
            }));
            if let Err(p) = ran {
                c.set_last_error(format!(
                    "sink task ended by a panic: {}",
                    crate::global::panic_payload_text(&*p)
                ));
            }
            drop(rt);
            drop(done_tx);
        })?;
    Ok(SinkHandle {
        records: rtx,
        capacity,
        control: ctx,
        counters,
        done: done_rx,
    })
}

async fn run(
    rx: flume::Receiver<Msg>,
    handles: Vec<SinkHandle>,
    settings: Arc<PipelineSettings>,
    counters: Arc<ClientCounters>,
    room: Arc<Room>,
) {
    // Records the worker dropped at hand-off (a sink's queue full) up to the last
    // persist barrier: a barrier answers `false` when this has grown since.
    let mut handoff_drops = 0u64;
    let mut run: Vec<Msg> = Vec::with_capacity(RUN_MAX);
    let mut records: Vec<Arc<Record>> = Vec::with_capacity(RUN_MAX);
    let mut keys = KeyCache::default();
    // A run at least this long means the worker is busy: no linger, so the linger
    // never caps throughput. Below a 64th of the channel, the channel could take 64
    // times the run before it is full, so even a linger stretched many times over by
    // a starved CPU does not make callers drop (or block on) a full channel; a small
    // channel (< 64) never lingers.
    let linger_below = (rx.capacity().unwrap_or(0) / 64).min(RUN_MAX / 4);
    loop {
        let limit = match settings.full_policy {
            FullPolicy::DropNewest => take_limit(&handles, &room).await,
            FullPolicy::Block => RUN_MAX,
        };
        let first = match rx.recv_async().await {
            Ok(m) => m,
            // Every client handle is gone without an explicit shutdown.
            Err(_) => Msg::Shutdown {
                deadline: deadline_after(IMPLICIT_SHUTDOWN),
                patient: false,
                ack: flume::bounded(1).0,
            },
        };
        run.push(first);
        while run.len() < limit {
            match rx.try_recv() {
                Ok(m) => run.push(m),
                Err(_) => break,
            }
        }
        let n_records = run.iter().filter(|m| m.is_record()).count();
        // Only a short run of nothing but records lingers: a flush, persist or
        // shutdown is answered without delay. Neither does a run taken once a
        // shutdown has used half its time: then runs may be a single record
        // (`take_limit`), and a linger per record would keep the shutdown message
        // waiting for seconds behind a full channel, past the deadline.
        let linger = n_records == run.len() && run.len() < linger_below && !room.stop_waiting();
        // Counted as they leave the channel, so `enqueued` stays balanced.
        counters
            .dispatched
            .fetch_add(n_records as u64, Ordering::Relaxed);
        room.notify();
        let mut msgs = run.drain(..);
        while let Some(msg) = msgs.next() {
            match msg {
                Msg::Event(env) => {
                    records.push(finish_event(env, &settings, &mut keys));
                }
                Msg::Record(env) => records.push(finish_record(env, &settings)),
                Msg::Flush { ack, patient } => {
                    dispatch(&mut records, &handles, &settings, &room).await;
                    let waits: Vec<_> = handles
                        .iter()
                        .map(|h| {
                            let (tx, rx) = flume::bounded(1);
                            let _ = h.control.send(Control::Flush { ack: tx, patient });
                            rx
                        })
                        .collect();
                    // Answer from a task so a slow sink does not hold up dispatching.
                    tokio::spawn(async move {
                        let mut ok = true;
                        for w in waits {
                            ok &= w.recv_async().await.unwrap_or(false);
                        }
                        let _ = ack.send(ok);
                    });
                }
                Msg::Persist { ack } => {
                    dispatch(&mut records, &handles, &settings, &room).await;
                    persist(ack, &handles, &settings, &mut handoff_drops);
                }
                Msg::Shutdown {
                    deadline,
                    patient,
                    ack,
                } => {
                    dispatch(&mut records, &handles, &settings, &room).await;
                    // Whatever was taken after the shutdown message counts as
                    // logged after it, like what is still in the channel.
                    for m in msgs.by_ref() {
                        discard_closed(m, &counters, true);
                    }
                    shutdown(&rx, &handles, &counters, &room, deadline, patient).await;
                    let _ = ack.send(());
                    return;
                }
            }
        }
        drop(msgs);
        dispatch(&mut records, &handles, &settings, &room).await;
        if linger {
            tokio::time::sleep(LINGER).await;
        }
    }
}

/// [`FullPolicy::DropNewest`]: how many messages to take now — at most the room left
/// in the emptiest sink queue, so records wait in the channel (compact) rather than
/// being dropped while every sink is behind. Waits while there is no room at all
/// (a flush waits behind the records), unless a shutdown has used up half its time.
async fn take_limit(handles: &[SinkHandle], room: &Room) -> usize {
    let mut wait = FULL_POLL_FIRST;
    loop {
        let free = handles
            .iter()
            .map(|h| h.capacity.saturating_sub(h.records.len()))
            .max()
            .unwrap_or(RUN_MAX);
        if free > 0 || room.stop_waiting() {
            return free.clamp(1, RUN_MAX);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(FULL_POLL_MAX);
    }
}

async fn shutdown(
    rx: &flume::Receiver<Msg>,
    handles: &[SinkHandle],
    counters: &ClientCounters,
    room: &Room,
    deadline: Instant,
    patient: bool,
) {
    let waits: Vec<_> = handles
        .iter()
        .map(|h| {
            let (tx, rx) = flume::bounded(1);
            let _ = h.control.send(Control::Shutdown {
                deadline,
                patient,
                ack: tx,
            });
            rx
        })
        .collect();
    for (h, w) in handles.iter().zip(waits) {
        let left = deadline.saturating_duration_since(Instant::now());
        if !matches!(tokio::time::timeout(left, w.recv_async()).await, Ok(Ok(()))) {
            // Not finished by the deadline (stuck in a send, or its thread not run
            // for a while): its records in memory are counted here, once, and the
            // task counts nothing after this.
            h.counters.abandon();
        }
    }
    // Wait for the sink threads to end, so the disk queue (and its lock)
    // is released when `shutdown` returns.
    for h in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, h.done.recv_async()).await;
    }
    close_channel(rx, counters, room);
}

/// Hands `records` (emptied) to every sink, in order. A full sink queue is that
/// sink's `dropped_backlog` under [`FullPolicy::DropNewest`]; under
/// [`FullPolicy::Block`] the worker waits until the queue is half empty, so the main
/// channel fills and the callers wait instead of a record being dropped. A sink whose
/// thread has ended counts it `dropped_failed`. The last sink gets the worker's own
/// reference, so a sink that is alone owns its records outright. Once a shutdown has
/// used half its time ([`Room::stop_waiting`]) `Block` stops waiting too, so the
/// shutdown message is reached: a record that then finds no room is
/// `dropped_backlog`, as under `DropNewest`.
async fn dispatch(
    records: &mut Vec<Arc<Record>>,
    handles: &[SinkHandle],
    settings: &PipelineSettings,
    room: &Room,
) {
    if records.is_empty() {
        return;
    }
    let Some((last, others)) = handles.split_last() else {
        records.clear();
        return;
    };
    for h in others {
        for r in records.iter() {
            send_one(h, Arc::clone(r), settings.full_policy, room).await;
        }
    }
    for r in records.drain(..) {
        send_one(last, r, settings.full_policy, room).await;
    }
}

/// Hands one record to sink `h`. It is counted `received` before the sink task can
/// see it: once the task has it, it may move it out of memory (`left_memory`) at
/// once, and a stats snapshot taken before a late `received` would count it written
/// but never received. That count and the abandoned check are one move under the
/// transition lock, ordered against [`SinkCounters::abandon`] (which the caller's
/// thread runs when this worker is late for a shutdown): a record counted before
/// the abandon is counted `dropped_failed` by it, one after it here. A record the
/// sink does not take is counted through [`SinkCounters::settle`], which skips it
/// when the abandon counted it already.
async fn send_one(h: &SinkHandle, record: Arc<Record>, policy: FullPolicy, room: &Room) {
    {
        let _moving = h.counters.moving();
        SinkCounters::add(&h.counters.received, 1);
        if h.counters.is_abandoned() {
            // Given up at a shutdown deadline: it will never take this record.
            SinkCounters::add(&h.counters.left_memory, 1);
            SinkCounters::add(&h.counters.dropped_failed, 1);
            return;
        }
    }
    let sent = match h.records.try_send(record) {
        Err(flume::TrySendError::Full(r)) if policy == FullPolicy::Block => {
            wait_for_room(h, room).await;
            if room.stop_waiting() {
                h.records.try_send(r)
            } else {
                h.records
                    .send_async(r)
                    .await
                    .map_err(|e| flume::TrySendError::Disconnected(e.into_inner()))
            }
        }
        other => other,
    };
    match sent {
        Ok(()) => {}
        Err(flume::TrySendError::Full(_)) => {
            // Taken back: never received, so it was pending nowhere.
            h.counters.settle(|c| {
                c.received.fetch_sub(1, Ordering::Relaxed);
                SinkCounters::add(&c.dropped_backlog, 1);
            });
        }
        Err(flume::TrySendError::Disconnected(_)) => {
            h.counters.settle(|c| {
                SinkCounters::add(&c.left_memory, 1);
                SinkCounters::add(&c.dropped_failed, 1);
            });
        }
    }
}

/// Answers a persist barrier. Every record sent before it has been handed to the
/// sinks (the channel is FIFO); offline-cache mode answers here, durable mode asks
/// each sink task to commit what it holds and answers once all have (from a task,
/// so dispatching goes on meanwhile).
fn persist(
    ack: flume::Sender<bool>,
    handles: &[SinkHandle],
    settings: &PipelineSettings,
    handoff_drops: &mut u64,
) {
    let dropped: u64 = handles
        .iter()
        .map(|h| h.counters.dropped_backlog.load(Ordering::Relaxed))
        .sum();
    let clean = dropped == *handoff_drops;
    *handoff_drops = dropped;
    if settings.delivery != DeliveryMode::Durable {
        let _ = ack.send(clean);
        return;
    }
    let waits: Vec<_> = handles
        .iter()
        .map(|h| {
            let (tx, rx) = flume::bounded(1);
            let _ = h.control.send(Control::Persist { ack: tx });
            rx
        })
        .collect();
    tokio::spawn(async move {
        let mut ok = clean;
        for w in waits {
            ok &= w.recv_async().await.unwrap_or(false);
        }
        let _ = ack.send(ok);
    });
}

/// Waits until the sink's queue is at most half full (or its thread has ended):
/// refilling it a run at a time instead of a record at a time keeps the worker and
/// the sink thread from waking each other per record. Gives up once a shutdown has
/// used half its time.
async fn wait_for_room(h: &SinkHandle, room: &Room) {
    let mut wait = FULL_POLL_FIRST;
    while h.records.len() > h.capacity / 2
        && h.done.is_empty()
        && !h.done.is_disconnected()
        && !room.stop_waiting()
    {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(FULL_POLL_MAX);
    }
}

/// After the shutdown: marks the pipeline closed and counts every record still in
/// the channel (logged after the shutdown message) as `dropped_closed`. A caller
/// whose send lands after this drain sees the flag and drains again itself.
pub(crate) fn close_channel(rx: &flume::Receiver<Msg>, counters: &ClientCounters, room: &Room) {
    counters.worker_done.store(true, Ordering::SeqCst);
    drain_closed(rx, counters, room);
}

/// Counts (and discards) every message in the channel of a closed pipeline.
pub(crate) fn drain_closed(rx: &flume::Receiver<Msg>, counters: &ClientCounters, room: &Room) {
    while let Ok(m) = rx.try_recv() {
        discard_closed(m, counters, false);
    }
    // Callers blocked on a full channel see the shutdown now, not after a timeout.
    room.notify();
}

/// Discards `m` from a closed pipeline: a record is `dropped_closed` (taken back
/// from `dispatched` when the worker had already counted it so), a flush is
/// answered `false`, a shutdown answered.
fn discard_closed(m: Msg, counters: &ClientCounters, was_dispatched: bool) {
    match m {
        Msg::Event(_) | Msg::Record(_) => {
            if was_dispatched {
                counters.dispatched.fetch_sub(1, Ordering::Relaxed);
            }
            counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
        }
        Msg::Flush { ack, .. } | Msg::Persist { ack } => {
            let _ = ack.send(false);
        }
        Msg::Shutdown { ack, .. } => {
            let _ = ack.send(());
        }
    }
}
