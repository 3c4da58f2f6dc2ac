//! The worker thread: receives envelopes, finishes records and fans them out to the
//! sinks. Each sink runs on a thread of its own (with its own current-thread tokio
//! runtime), so a sink blocked in a write, an `fsync` or a SQLite busy wait delays no
//! other sink and no caller: with the default `FullPolicy::DropNewest` the worker only
//! ever does `try_send` into the sinks' bounded channels. With `FullPolicy::Block` it
//! waits for room in each sink's channel instead, so nothing is dropped and the
//! slowest sink sets the pace (the user chose backpressure over isolation).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::sink_task::{self, Control};
use super::spool::{DeliveryMode, Spool};
use super::stats::{ClientCounters, SinkCounters};
use super::{Msg, PipelineSettings, deadline_after, finish};
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

/// `true` on the worker thread or a sink thread: code there must neither log into the
/// pipeline (feedback) nor wait on it (it would wait on itself).
pub(crate) fn on_pipeline_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n == WORKER_THREAD_NAME || n.starts_with(SINK_THREAD_PREFIX))
}

struct SinkHandle {
    records: flume::Sender<Arc<Record>>,
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
        .spawn(move || rt.block_on(run(rx, handles, settings, counters)))
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
    let (rtx, rrx) = flume::bounded(settings.sink_capacity);
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
) {
    // Records the worker dropped at hand-off (a sink's queue full) up to the last
    // persist barrier: a barrier answers `false` when this has grown since.
    let mut handoff_drops = 0u64;
    loop {
        let msg = match rx.recv_async().await {
            Ok(m) => m,
            // Every client handle is gone without an explicit shutdown.
            Err(_) => Msg::Shutdown {
                deadline: deadline_after(IMPLICIT_SHUTDOWN),
                patient: false,
                ack: flume::bounded(1).0,
            },
        };
        match msg {
            Msg::Record(env) => dispatch(*env, &handles, &settings, &counters).await,
            Msg::Flush { ack, patient } => {
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
            Msg::Persist { ack } => persist(ack, &handles, &settings, &mut handoff_drops),
            Msg::Shutdown {
                deadline,
                patient,
                ack,
            } => {
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
                for w in waits {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = tokio::time::timeout(left, w.recv_async()).await;
                }
                // Wait for the sink threads to end, so the disk queue (and its lock)
                // is released when `shutdown` returns.
                for h in &handles {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = tokio::time::timeout(left, h.done.recv_async()).await;
                }
                close_channel(&rx, &counters);
                let _ = ack.send(());
                return;
            }
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

/// Hands one record to every sink. A full sink channel is that sink's
/// `dropped_backlog` under [`FullPolicy::DropNewest`]; under [`FullPolicy::Block`] the
/// worker waits for room, so the main channel fills and the callers wait instead of a
/// record being dropped. A sink whose thread has ended counts it `dropped_failed`.
async fn dispatch(
    env: super::Envelope,
    handles: &[SinkHandle],
    settings: &PipelineSettings,
    counters: &ClientCounters,
) {
    let record = Arc::new(finish(env, settings));
    counters.dispatched.fetch_add(1, Ordering::Relaxed);
    for h in handles {
        let sent = match settings.full_policy {
            FullPolicy::DropNewest => h.records.try_send(Arc::clone(&record)),
            FullPolicy::Block => h
                .records
                .send_async(Arc::clone(&record))
                .await
                .map_err(|e| flume::TrySendError::Disconnected(e.into_inner())),
        };
        match sent {
            Ok(()) => SinkCounters::add(&h.counters.received, 1),
            Err(flume::TrySendError::Full(_)) => {
                SinkCounters::add(&h.counters.dropped_backlog, 1);
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                SinkCounters::add(&h.counters.received, 1);
                SinkCounters::add(&h.counters.left_memory, 1);
                SinkCounters::add(&h.counters.dropped_failed, 1);
            }
        }
    }
}

/// After the shutdown: marks the pipeline closed and counts every record still in
/// the channel (logged after the shutdown message) as `dropped_closed`. A caller
/// whose send lands after this drain sees the flag and drains again itself.
pub(crate) fn close_channel(rx: &flume::Receiver<Msg>, counters: &ClientCounters) {
    counters.worker_done.store(true, Ordering::SeqCst);
    drain_closed(rx, counters);
}

/// Counts (and discards) every message in the channel of a closed pipeline.
pub(crate) fn drain_closed(rx: &flume::Receiver<Msg>, counters: &ClientCounters) {
    while let Ok(m) = rx.try_recv() {
        match m {
            Msg::Record(_) => {
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
}
