//! The worker thread: receives envelopes, finishes records and fans them out to one
//! task per sink.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::sink_task::{self, Control};
use super::spool::Spool;
use super::stats::{ClientCounters, SinkCounters};
use super::{Msg, PipelineSettings, finish};
use crate::record::Record;
use crate::sink::Sink;

/// Name of the worker thread (the panic hook skips flushing from it). The worker
/// runtime's blocking-pool threads (DNS lookups of the HTTP client, blocking sink
/// I/O) carry the same name.
pub(crate) const WORKER_THREAD_NAME: &str = "loggier-worker";

/// `true` on the worker thread or one of its runtime's blocking threads: events
/// raised there (by our own HTTP client, say) must not be logged again, or delivery
/// would feed back into the pipeline.
#[cfg_attr(not(any(feature = "tracing", feature = "log")), allow(dead_code))]
pub(crate) fn on_worker_thread() -> bool {
    std::thread::current().name() == Some(WORKER_THREAD_NAME)
}

/// Longest a shutdown caused by dropping every client handle waits for the sinks.
const IMPLICIT_SHUTDOWN: Duration = Duration::from_secs(2);

struct SinkHandle {
    records: flume::Sender<Arc<Record>>,
    control: flume::Sender<Control>,
    counters: Arc<SinkCounters>,
}

/// Starts the worker thread.
///
/// # Errors
/// The OS error when the runtime or the thread cannot be created.
pub(crate) fn spawn(
    rx: flume::Receiver<Msg>,
    sinks: Vec<(Box<dyn Sink>, Arc<SinkCounters>, Spool)>,
    settings: PipelineSettings,
    counters: Arc<ClientCounters>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name(WORKER_THREAD_NAME)
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(WORKER_THREAD_NAME.to_string())
        .spawn(move || rt.block_on(run(rx, sinks, settings, counters)))
}

async fn run(
    rx: flume::Receiver<Msg>,
    sinks: Vec<(Box<dyn Sink>, Arc<SinkCounters>, Spool)>,
    settings: PipelineSettings,
    counters: Arc<ClientCounters>,
) {
    let settings = Arc::new(settings);
    let mut handles = Vec::with_capacity(sinks.len());
    for (sink, sink_counters, spool) in sinks {
        let (rtx, rrx) = flume::bounded(settings.sink_capacity);
        let (ctx, crx) = flume::unbounded();
        tokio::spawn(sink_task::run(
            sink,
            rrx,
            crx,
            Arc::clone(&settings),
            Arc::clone(&sink_counters),
            spool,
        ));
        handles.push(SinkHandle {
            records: rtx,
            control: ctx,
            counters: sink_counters,
        });
    }

    loop {
        let msg = match rx.recv_async().await {
            Ok(m) => m,
            // Every client handle is gone without an explicit shutdown.
            Err(_) => Msg::Shutdown(Instant::now() + IMPLICIT_SHUTDOWN, flume::bounded(1).0),
        };
        match msg {
            Msg::Record(env) => {
                let record = Arc::new(finish(*env, &settings));
                counters.dispatched.fetch_add(1, Ordering::Relaxed);
                for h in &handles {
                    match h.records.try_send(Arc::clone(&record)) {
                        Ok(()) => SinkCounters::add(&h.counters.received, 1),
                        Err(_) => SinkCounters::add(&h.counters.dropped_backlog, 1),
                    }
                }
            }
            Msg::Flush(ack) => {
                let waits: Vec<_> = handles
                    .iter()
                    .map(|h| {
                        let (tx, rx) = flume::bounded(1);
                        let _ = h.control.send(Control::Flush(tx));
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
            Msg::Shutdown(deadline, ack) => {
                let waits: Vec<_> = handles
                    .iter()
                    .map(|h| {
                        let (tx, rx) = flume::bounded(1);
                        let _ = h.control.send(Control::Shutdown(deadline, tx));
                        rx
                    })
                    .collect();
                for w in waits {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = tokio::time::timeout(left, w.recv_async()).await;
                }
                let _ = ack.send(());
                return;
            }
        }
    }
}
