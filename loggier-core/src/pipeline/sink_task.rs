//! One task per sink: batch by count / bytes / interval, encode, send, retry, count.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PipelineSettings;
use super::stats::SinkCounters;
use crate::record::Record;
use crate::sink::{Payload, SendOutcome, Sink};

/// Control messages from the worker to a sink task. Records travel on their own
/// channel; because the worker sends every record before the control message that
/// follows it, draining the record channel on receipt covers everything sent before.
#[derive(Debug)]
pub(crate) enum Control {
    /// Write the current batch and everything queued; answer `true` when all of it
    /// was written.
    Flush(flume::Sender<bool>),
    /// As `Flush`, bounded by the deadline; then close the sink and end the task.
    Shutdown(Instant, flume::Sender<()>),
}

/// Shortest interval between two stderr reports of one sink.
const REPORT_EVERY: Duration = Duration::from_secs(10);

struct Batcher {
    records: Vec<Arc<Record>>,
    bytes: usize,
    started: Option<Instant>,
}

struct Task {
    sink: Box<dyn Sink>,
    settings: Arc<PipelineSettings>,
    counters: Arc<SinkCounters>,
    max_records: usize,
    max_bytes: usize,
    max_delay: Duration,
    batch: Batcher,
    last_report: Option<Instant>,
}

pub(crate) async fn run(
    sink: Box<dyn Sink>,
    records: flume::Receiver<Arc<Record>>,
    control: flume::Receiver<Control>,
    settings: Arc<PipelineSettings>,
    counters: Arc<SinkCounters>,
) {
    let hint = sink.batch_hint();
    let mut t = Task {
        max_records: hint.max_records.unwrap_or(settings.max_batch_size).max(1),
        max_bytes: hint.max_bytes.unwrap_or(settings.max_batch_bytes).max(1),
        max_delay: hint.max_delay.unwrap_or(settings.flush_interval),
        sink,
        settings,
        counters,
        batch: Batcher {
            records: Vec::new(),
            bytes: 0,
            started: None,
        },
        last_report: None,
    };
    let mut records_open = true;
    loop {
        let due = t.batch.started.map(|s| s + t.max_delay);
        tokio::select! {
            biased;
            c = control.recv_async() => match c {
                Ok(Control::Flush(ack)) => {
                    let ok = t.drain(&records, None).await;
                    let _ = ack.send(ok);
                }
                Ok(Control::Shutdown(deadline, ack)) => {
                    t.drain(&records, Some(deadline)).await;
                    t.sink.close().await;
                    let _ = ack.send(());
                    return;
                }
                Err(_) => {
                    t.drain(&records, Some(Instant::now() + Duration::from_secs(2))).await;
                    t.sink.close().await;
                    return;
                }
            },
            r = records.recv_async(), if records_open => match r {
                Ok(rec) => {
                    if t.push(rec) {
                        t.send_batch(None).await;
                    }
                }
                Err(_) => records_open = false,
            },
            () = sleep_until_opt(due) => {
                t.send_batch(None).await;
            }
        }
    }
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl Task {
    /// Adds a record; `true` when the batch is full and must be sent.
    fn push(&mut self, rec: Arc<Record>) -> bool {
        if self.batch.started.is_none() {
            self.batch.started = Some(Instant::now());
        }
        self.batch.bytes += rec.estimated_size_bytes();
        self.batch.records.push(rec);
        self.batch.records.len() >= self.max_records || self.batch.bytes >= self.max_bytes
    }

    /// Sends the current batch and everything already queued; `true` when all of it
    /// was written.
    async fn drain(
        &mut self,
        records: &flume::Receiver<Arc<Record>>,
        deadline: Option<Instant>,
    ) -> bool {
        let mut ok = true;
        while let Ok(rec) = records.try_recv() {
            if self.push(rec) {
                ok &= self.send_batch(deadline).await;
            }
        }
        ok &= self.send_batch(deadline).await;
        ok
    }

    /// Encodes and delivers the current batch; `true` when every record was written.
    async fn send_batch(&mut self, deadline: Option<Instant>) -> bool {
        self.batch.started = None;
        self.batch.bytes = 0;
        if self.batch.records.is_empty() {
            return true;
        }
        let records: Vec<Record> = self
            .batch
            .records
            .drain(..)
            .map(Arc::unwrap_or_clone)
            .collect();
        let n = records.len() as u64;
        let service = Arc::clone(&self.settings.service);
        let encoded =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.sink.encode(&records, &service)));
        let payloads = match encoded {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                self.fail(|c| &c.dropped_encode, n, format!("encode failed: {e}"));
                return false;
            }
            Err(_) => {
                self.fail(|c| &c.dropped_encode, n, "encode panicked".to_string());
                return false;
            }
        };
        let mut ok = true;
        for p in payloads {
            ok &= self.deliver(p, deadline).await;
        }
        ok
    }

    /// Sends one payload, retrying transient failures with exponential backoff.
    async fn deliver(&mut self, payload: Payload, deadline: Option<Instant>) -> bool {
        let n = u64::from(payload.records);
        let mut attempt: u32 = 0;
        loop {
            match self.sink.send(&payload).await {
                SendOutcome::Delivered => {
                    // Records the receiver refused inside an accepted request (OTLP
                    // partial success) are dropped, not written.
                    let refused = match self.sink.take_partial_rejection() {
                        Some((k, reason)) if k > 0 => {
                            let k = k.min(n);
                            self.fail(|c| &c.dropped_rejected, k, reason);
                            k
                        }
                        _ => 0,
                    };
                    SinkCounters::add(&self.counters.written, n - refused);
                    SinkCounters::add(&self.counters.batches, 1);
                    return true;
                }
                SendOutcome::Reject { reason } => {
                    SinkCounters::add(&self.counters.errors, 1);
                    self.fail(|c| &c.dropped_rejected, n, reason);
                    return false;
                }
                SendOutcome::Retry {
                    reason,
                    retry_after,
                } => {
                    SinkCounters::add(&self.counters.errors, 1);
                    let delay = retry_after.unwrap_or_else(|| backoff(attempt));
                    let out_of_time = deadline.is_some_and(|d| Instant::now() + delay >= d);
                    if attempt >= self.settings.max_retries || out_of_time {
                        self.fail(|c| &c.dropped_failed, n, reason);
                        return false;
                    }
                    self.counters.set_last_error(reason);
                    attempt += 1;
                    SinkCounters::add(&self.counters.retried, 1);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn fail(
        &mut self,
        counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64,
        n: u64,
        reason: String,
    ) {
        SinkCounters::add(counter(&self.counters), n);
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY)
        {
            self.last_report = Some(now);
            eprintln!(
                "loggier: sink {}: dropped {n} records: {reason}",
                self.counters.name
            );
        }
        self.counters.set_last_error(reason);
    }
}

/// 100 ms × 2^attempt, capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << attempt.min(6))).min(Duration::from_secs(5))
}
