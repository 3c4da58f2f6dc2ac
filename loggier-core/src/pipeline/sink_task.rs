//! One task per sink: batch by count / bytes / interval, encode, send, retry with
//! backoff, park batches in the disk queue while the sink is down and replay them
//! oldest-first when it is back, count everything.
//!
//! Delivery order per sink is the order batches were sealed: the disk backlog (older)
//! is always sent before the in-memory outbox (newer), and while a backlog exists new
//! batches join it on disk instead of overtaking it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::PipelineSettings;
use super::retry::{Backoff, DEFAULT_REPORT_INTERVAL, RateLimiter};
use super::spool::{DeliveryMode, Spool, Stored};
use super::stats::SinkCounters;
use crate::record::Record;
use crate::sink::{Payload, SendOutcome, Sink};

/// Control messages from the worker to a sink task. Records travel on their own
/// channel; because the worker sends every record before the control message that
/// follows it, draining the record channel on receipt covers everything sent before.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer `true` once every record sent before is delivered (durable mode:
    /// delivered or committed to disk); `false` when some were dropped, or the sink
    /// is offline (its batches are then on disk, when it has a disk queue).
    Flush(flume::Sender<bool>),
    /// Persist or deliver what can be within the deadline, close the sink, end.
    Shutdown(Instant, flume::Sender<()>),
}

/// Most encoded payloads kept in memory waiting for their first send. Past it the
/// task stops reading records; the sink's channel then fills and the worker counts
/// `dropped_backlog`.
const MAX_OUTBOX: usize = 16;

/// Longest a shutdown caused by the control channel closing waits.
const ORPHAN_SHUTDOWN: Duration = Duration::from_secs(2);

struct Batcher {
    records: Vec<Arc<Record>>,
    bytes: usize,
    started: Option<Instant>,
}

struct PendingFlush {
    ack: flume::Sender<bool>,
    /// `Task::drops` when the flush was asked.
    drops_at: u64,
}

struct Task {
    sink: Box<dyn Sink>,
    settings: Arc<PipelineSettings>,
    counters: Arc<SinkCounters>,
    max_records: usize,
    max_bytes: usize,
    max_delay: Duration,
    batch: Batcher,
    spool: Spool,
    durable: bool,
    /// Encoded payloads not yet delivered, oldest first (memory).
    outbox: VecDeque<Payload>,
    backoff: Backoff,
    /// No send before this instant (backoff, `Retry-After`, offline probe interval).
    not_before: Option<Instant>,
    offline: bool,
    reporter: RateLimiter,
    flushes: Vec<PendingFlush>,
    /// Records this task has dropped so far.
    drops: u64,
    /// Control messages that arrived during a send, handled next.
    held: VecDeque<Control>,
}

pub(crate) async fn run(
    sink: Box<dyn Sink>,
    records: flume::Receiver<Arc<Record>>,
    control: flume::Receiver<Control>,
    settings: Arc<PipelineSettings>,
    counters: Arc<SinkCounters>,
    spool: Spool,
) {
    let hint = sink.batch_hint();
    let mut t = Task {
        max_records: hint.max_records.unwrap_or(settings.max_batch_size).max(1),
        max_bytes: hint.max_bytes.unwrap_or(settings.max_batch_bytes).max(1),
        max_delay: hint.max_delay.unwrap_or(settings.flush_interval),
        durable: settings.delivery == DeliveryMode::Durable && spool.enabled(),
        backoff: Backoff::new(settings.retry),
        sink,
        settings,
        counters,
        batch: Batcher {
            records: Vec::new(),
            bytes: 0,
            started: None,
        },
        spool,
        outbox: VecDeque::new(),
        not_before: None,
        offline: false,
        reporter: RateLimiter::new(DEFAULT_REPORT_INTERVAL),
        flushes: Vec::new(),
        drops: 0,
        held: VecDeque::new(),
    };
    let mut records_open = true;
    loop {
        t.answer_flushes(false);
        if let Some(c) = t.held.pop_front() {
            if t.handle(c, &records).await {
                return;
            }
            continue;
        }
        if t.ready(Instant::now()) {
            t.step(&control).await;
            t.answer_flushes(false);
            continue;
        }
        let ready = t.ready(Instant::now());
        let wake = if t.has_work() && !ready {
            t.not_before
        } else {
            None
        };
        let due = t.batch.started.map(|s| s + t.max_delay);
        let accepting = records_open && t.outbox.len() < MAX_OUTBOX;
        tokio::select! {
            biased;
            c = control.recv_async() => {
                let c = c.unwrap_or_else(|_| {
                    Control::Shutdown(Instant::now() + ORPHAN_SHUTDOWN, flume::bounded(1).0)
                });
                if t.handle(c, &records).await {
                    return;
                }
            }
            r = records.recv_async(), if accepting => match r {
                Ok(rec) => t.take(rec, &records),
                Err(_) => records_open = false,
            },
            () = sleep_until_opt(due) => t.seal(),
            () = std::future::ready(()), if ready => {}
            () = sleep_until_opt(wake) => {}
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
    /// Handles a control message; `true` when the task must end.
    async fn handle(&mut self, c: Control, records: &flume::Receiver<Arc<Record>>) -> bool {
        match c {
            Control::Flush(ack) => {
                self.begin_flush(records, ack).await;
                false
            }
            Control::Shutdown(deadline, ack) => {
                self.shutdown(records, deadline).await;
                let _ = ack.send(());
                true
            }
        }
    }

    /// Awaits `send`, watching the control channel meanwhile: a flush is kept for
    /// later, a shutdown (or a closed channel) cancels the send and returns `None`.
    /// A cancelled payload is still in the outbox or on disk.
    async fn send_watching(
        sink: &mut Box<dyn Sink>,
        payload: &Payload,
        control: Option<&flume::Receiver<Control>>,
        held: &mut VecDeque<Control>,
    ) -> Option<SendOutcome> {
        let send = sink.send(payload);
        tokio::pin!(send);
        let Some(control) = control else {
            return Some(send.await);
        };
        loop {
            tokio::select! {
                biased;
                o = &mut send => return Some(o),
                c = control.recv_async() => match c {
                    Ok(f @ Control::Flush(_)) => held.push_back(f),
                    Ok(s @ Control::Shutdown(..)) => {
                        held.push_back(s);
                        return None;
                    }
                    Err(_) => {
                        held.push_back(Control::Shutdown(
                            Instant::now() + ORPHAN_SHUTDOWN,
                            flume::bounded(1).0,
                        ));
                        return None;
                    }
                },
            }
        }
    }

    fn add(&self, counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64, n: u64) {
        SinkCounters::add(counter(&self.counters), n);
    }

    /// `true` when there is something to send: a disk backlog or the outbox.
    fn has_work(&self) -> bool {
        !self.outbox.is_empty() || self.spool.has_backlog()
    }

    /// `true` when a send may start now.
    fn ready(&self, now: Instant) -> bool {
        self.has_work() && self.not_before.is_none_or(|nb| nb <= now)
    }

    /// Adds a record, then takes up to one more batch worth from the channel.
    fn take(&mut self, rec: Arc<Record>, records: &flume::Receiver<Arc<Record>>) {
        if self.push(rec) {
            self.seal();
        }
        for _ in 0..self.max_records {
            if self.outbox.len() >= MAX_OUTBOX {
                break;
            }
            match records.try_recv() {
                Ok(r) => {
                    if self.push(r) {
                        self.seal();
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Moves every record now in the channel into batches.
    fn drain_channel(&mut self, records: &flume::Receiver<Arc<Record>>) {
        for _ in 0..records.len() {
            match records.try_recv() {
                Ok(r) => {
                    if self.push(r) {
                        self.seal();
                    }
                }
                Err(_) => break,
            }
        }
        self.seal();
    }

    /// Adds a record; `true` when the batch is full and must be sealed.
    fn push(&mut self, rec: Arc<Record>) -> bool {
        if self.batch.started.is_none() {
            self.batch.started = Some(Instant::now());
        }
        self.batch.bytes += rec.estimated_size_bytes();
        self.batch.records.push(rec);
        self.batch.records.len() >= self.max_records || self.batch.bytes >= self.max_bytes
    }

    /// Encodes the current batch and routes its payloads: to disk in durable mode or
    /// while a backlog exists (so nothing overtakes it), else to the outbox.
    fn seal(&mut self) {
        self.batch.started = None;
        self.batch.bytes = 0;
        if self.batch.records.is_empty() {
            return;
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
                self.add(|c| &c.left_memory, n);
                self.drop_records(|c| &c.dropped_encode, n, format!("encode failed: {e}"));
                return;
            }
            Err(_) => {
                self.add(|c| &c.left_memory, n);
                self.drop_records(|c| &c.dropped_encode, n, "encode panicked".to_string());
                return;
            }
        };
        for p in payloads {
            if self.spool.enabled() && (self.durable || self.offline || self.spool.has_backlog()) {
                self.park(&p);
            } else {
                self.outbox.push_back(p);
            }
        }
    }

    /// Stores a payload that is in memory in the disk queue.
    fn park(&mut self, p: &Payload) {
        let n = u64::from(p.records);
        self.add(|c| &c.left_memory, n);
        match self.spool.store(p) {
            Some(Stored::Yes) => self.add(|c| &c.cached, n),
            // Counted by the queue (cache bound, disk full, I/O error).
            Some(Stored::Dropped) => self.drops += n,
            // No spool: cannot happen (callers check), but never lose it silently.
            None => self.add(|c| &c.dropped_failed, n),
        }
    }

    /// One delivery attempt: the oldest batch on disk, else the oldest in memory.
    /// With `control`, a shutdown arriving meanwhile cancels the attempt.
    async fn step(&mut self, control: &flume::Receiver<Control>) {
        self.attempt(Some(control)).await;
    }

    async fn attempt(&mut self, control: Option<&flume::Receiver<Control>>) {
        if self.spool.has_backlog() {
            let Some(b) = self.spool.oldest() else {
                // The queue cannot be read now; try again later rather than spin.
                self.not_before = Some(Instant::now() + self.settings.network_check_interval);
                self.counters
                    .set_last_error("disk queue read failed; delivery paused".to_string());
                return;
            };
            let n = u64::from(b.payload.records);
            let Some(outcome) =
                Self::send_watching(&mut self.sink, &b.payload, control, &mut self.held).await
            else {
                return;
            };
            match outcome {
                SendOutcome::Delivered => {
                    if self.spool.ack(b.seq) {
                        let written = self.delivered(n);
                        if !self.durable || b.replay {
                            self.add(|c| &c.replayed, written);
                        }
                    } else {
                        // Evicted meanwhile and counted by the queue; only clear
                        // the sink's per-request report.
                        let _ = self.sink.take_partial_rejection();
                    }
                    self.succeeded();
                }
                SendOutcome::Reject { reason } => {
                    let n = self.spool.remove(b.seq);
                    self.rejected(n, reason);
                }
                SendOutcome::Retry {
                    reason,
                    retry_after,
                } => {
                    self.spool.bump(b.seq);
                    self.failed(reason, retry_after);
                }
            }
            return;
        }
        // Peek, not pop: if this future is dropped mid-send (shutdown deadline), the
        // payload stays in the outbox and is counted.
        let Some(p) = self.outbox.front().cloned() else {
            return;
        };
        let n = u64::from(p.records);
        let Some(outcome) = Self::send_watching(&mut self.sink, &p, control, &mut self.held).await
        else {
            return;
        };
        match outcome {
            SendOutcome::Delivered => {
                self.outbox.pop_front();
                self.add(|c| &c.left_memory, n);
                self.delivered(n);
                self.succeeded();
            }
            SendOutcome::Reject { reason } => {
                self.outbox.pop_front();
                self.add(|c| &c.left_memory, n);
                self.rejected(n, reason);
            }
            SendOutcome::Retry {
                reason,
                retry_after,
            } => {
                if self.spool.enabled() {
                    // Park it and everything behind it, in order; retries and
                    // replays then come from disk.
                    let parked: Vec<Payload> = self.outbox.drain(..).collect();
                    for q in &parked {
                        self.park(q);
                    }
                    self.failed(reason, retry_after);
                } else {
                    self.failed(reason.clone(), retry_after);
                    if self.backoff.exhausted() {
                        // No disk queue: this batch had all its retries.
                        self.outbox.pop_front();
                        self.add(|c| &c.left_memory, n);
                        let attempts = self.backoff.failures();
                        self.drop_records(
                            |c| &c.dropped_failed,
                            n,
                            format!(
                                "dropped {n} records after {attempts} failed attempts: {reason}"
                            ),
                        );
                        self.backoff.reset();
                    }
                }
            }
        }
    }

    /// Counts a delivered payload of `n` records; returns how many were written.
    /// Records the receiver refused one by one inside the accepted request (an OTLP
    /// partial success) are counted as `dropped_rejected` instead.
    fn delivered(&mut self, n: u64) -> u64 {
        let refused = match self.sink.take_partial_rejection() {
            Some((k, reason)) if k > 0 => {
                // Counted and reported, but the request itself was accepted: a
                // flush still reports success (as before the disk queue existed).
                let k = k.min(n);
                self.add(|c| &c.dropped_rejected, k);
                self.reporter.report(&self.counters.name, &reason);
                self.counters.set_last_error(reason);
                k
            }
            _ => 0,
        };
        self.add(|c| &c.written, n - refused);
        self.add(|c| &c.batches, 1);
        n - refused
    }

    fn succeeded(&mut self) {
        self.backoff.reset();
        self.not_before = None;
        if self.offline {
            self.offline = false;
            self.counters.offline.store(false, Ordering::Relaxed);
        }
    }

    fn rejected(&mut self, n: u64, reason: String) {
        // The receiver answered: the sink is reachable.
        self.succeeded();
        self.add(|c| &c.errors, 1);
        self.drop_records(
            |c| &c.dropped_rejected,
            n,
            format!("dropped {n} records, the receiver refused the batch: {reason}"),
        );
    }

    /// A retryable failure: schedule the next attempt (backoff, `Retry-After`), or go
    /// offline after `max_retries` retries when there is a disk queue.
    fn failed(&mut self, reason: String, retry_after: Option<Duration>) {
        self.add(|c| &c.errors, 1);
        let mut delay = self.backoff.next_delay(retry_after);
        let exhausted = self.backoff.exhausted();
        if exhausted && self.spool.enabled() {
            let interval = self.settings.network_check_interval;
            delay = delay.max(interval);
            if !self.offline {
                self.offline = true;
                self.counters.offline.store(true, Ordering::Relaxed);
                let attempts = self.backoff.failures();
                self.reporter.report(
                    &self.counters.name,
                    &format!(
                        "offline after {attempts} failed attempts ({reason}); batches are kept in the disk queue, next probe in {interval:?}"
                    ),
                );
            }
        }
        if !exhausted || self.spool.enabled() {
            self.add(|c| &c.retried, 1);
        }
        self.counters.set_last_error(reason);
        self.not_before = Some(Instant::now() + delay);
    }

    fn drop_records(
        &mut self,
        counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64,
        n: u64,
        message: String,
    ) {
        self.add(counter, n);
        self.drops += n;
        self.reporter.report(&self.counters.name, &message);
        self.counters.set_last_error(message);
    }

    /// Seals everything received so far and registers the flush; in durable mode it
    /// is answered at once (everything is on disk or counted), otherwise when the
    /// outbox and backlog are empty. An offline sink gets one probe right away.
    async fn begin_flush(
        &mut self,
        records: &flume::Receiver<Arc<Record>>,
        ack: flume::Sender<bool>,
    ) {
        self.drain_channel(records);
        self.flushes.push(PendingFlush {
            ack,
            drops_at: self.drops,
        });
        if self.offline && self.has_work() {
            self.not_before = None;
            self.attempt(None).await;
        }
        self.answer_flushes(false);
    }

    /// Answers the pending flushes that are settled (or all of them when `last`).
    fn answer_flushes(&mut self, last: bool) {
        if self.flushes.is_empty() {
            return;
        }
        let settled = if self.durable {
            // Records reach disk when sealed; nothing of them stays in memory.
            self.outbox.is_empty()
        } else {
            !self.has_work()
        };
        let give_up = !settled && (last || (self.offline && self.spool.enabled()));
        if !settled && !give_up {
            return;
        }
        let drops = self.drops;
        for f in self.flushes.drain(..) {
            let _ = f.ack.send(settled && drops == f.drops_at);
        }
    }

    /// Shutdown: with a disk queue, everything in memory is committed first, then
    /// delivered from disk until the deadline (what remains is replayed by the next
    /// start); without one, delivered until the deadline and the rest counted as
    /// `dropped_failed`.
    async fn shutdown(&mut self, records: &flume::Receiver<Arc<Record>>, deadline: Instant) {
        self.drain_channel(records);
        if self.spool.enabled() {
            let parked: Vec<Payload> = self.outbox.drain(..).collect();
            for p in &parked {
                self.park(p);
            }
        }
        // One immediate attempt even when backing off or offline.
        self.not_before = None;
        self.deliver_until(deadline).await;
        let left: Vec<Payload> = self.outbox.drain(..).collect();
        let n: u64 = left.iter().map(|p| u64::from(p.records)).sum();
        if n > 0 {
            self.add(|c| &c.left_memory, n);
            self.drop_records(
                |c| &c.dropped_failed,
                n,
                format!("dropped {n} records not delivered before the shutdown deadline"),
            );
        }
        self.answer_flushes(true);
        self.sink.close().await;
    }

    /// Sends until there is nothing left or the deadline. With a disk queue it stops
    /// at the first failure (what is left is safe on disk, and waiting out a backoff
    /// would only delay the exit); without one it keeps retrying until the deadline.
    async fn deliver_until(&mut self, deadline: Instant) {
        // Bounded: every round either sends or sleeps towards the deadline.
        for _ in 0..1_000_000 {
            if !self.has_work() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if let Some(nb) = self.not_before {
                if self.spool.enabled() && nb > now {
                    return;
                }
                if nb >= deadline {
                    return;
                }
                if nb > now {
                    tokio::time::sleep_until(nb.into()).await;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.attempt(None))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
