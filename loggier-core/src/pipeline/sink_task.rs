//! One task per sink: batch by count / bytes / interval, encode, send, retry with
//! backoff, park batches in the disk queue while the sink is down and replay them
//! oldest-first when it is back, count everything.
//!
//! Delivery order per sink is the order batches were sealed: the disk backlog (older)
//! is always sent before the in-memory outbox (newer), and while a backlog exists (or
//! the sink is offline) new batches wait behind it in the outbox and join it on disk
//! [`MAX_OUTBOX`] at a time, in one transaction, instead of overtaking it; what
//! waited there for the batch interval (`max_delay`) goes to disk then, as does the
//! whole outbox on a flush while offline, a failed send and shutdown.
//!
//! In durable mode every batch is committed to disk when sealed and sent from
//! there. With a sink that has a detached send ([`Sink::send_detached`]) the task
//! goes on taking records, sealing and committing batches and answering persist
//! barriers and flushes while a send is in flight ([`Task::send_committing`]), so
//! a receiver that never answers delays none of them; otherwise they wait until
//! the send returns ([`Task::send_watching`]).

use std::collections::{BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;

use super::retry::{Backoff, DEFAULT_REPORT_INTERVAL, RateLimiter};
use super::spool::{Acked, DeliveryMode, Spool, Stored};
use super::stats::SinkCounters;
use super::{PipelineSettings, deadline_after, instant_plus};
use crate::record::Record;
use crate::sink::{Payload, SendOutcome, Sink};

/// Control messages from the worker to a sink task. Records travel on their own
/// channel; because the worker sends every record before the control message that
/// follows it, draining the record channel on receipt covers everything sent before.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer `true` once every record sent before is delivered (durable mode:
    /// delivered or committed to disk); `false` when some were dropped, or the sink
    /// is offline (its batches are then on disk, when it has a disk queue). Not
    /// `patient`: also `false` as soon as the sink cannot make progress now.
    Flush {
        ack: flume::Sender<bool>,
        patient: bool,
    },
    /// Persist barrier: seal everything received. With a disk queue (durable mode)
    /// sealing commits each batch, so it is answered at once (during a send too,
    /// when the sink has a detached send): `true` unless a record
    /// was dropped since the previous flush or barrier (a failed commit included).
    /// Without one (a local sink), answered like an impatient flush: once written,
    /// `false` as soon as the sink cannot make progress now. Never probes an offline
    /// sink.
    Persist { ack: flume::Sender<bool> },
    /// Persist or deliver what can be within the deadline, close the sink, end.
    /// Not `patient`: no waiting out a backoff.
    Shutdown {
        deadline: Instant,
        patient: bool,
        ack: flume::Sender<()>,
    },
}

impl Control {
    /// The shutdown a closed control channel (the worker is gone) stands for.
    fn orphan() -> Self {
        Control::Shutdown {
            deadline: deadline_after(ORPHAN_SHUTDOWN),
            patient: false,
            ack: flume::bounded(1).0,
        }
    }
}

/// First wait before retrying the delete of a delivered batch whose delete failed.
const ACK_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two retries of such a delete.
const ACK_RETRY_MAX: Duration = Duration::from_secs(5);

/// A batch from the disk queue whose fate is settled (delivered, or refused and
/// dropped) but whose row could not be deleted yet. It is not sent again; its
/// delete is retried with backoff, and it is counted (`written` or its `dropped_*`
/// counter) once the row is gone. Until then it counts as pending on disk.
struct Unacked {
    seq: i64,
    records: u64,
    replay: bool,
    fate: Fate,
}

/// What became of a batch in [`Unacked`].
enum Fate {
    /// The sink acknowledged it. Records the receiver refused inside the accepted
    /// request, with its message.
    Delivered { refused: Option<(u64, String)> },
    /// Not delivered (the receiver refused it, the sink panicked): counted in
    /// `counter`, with `message` as the report, once the row is deleted.
    Dropped {
        counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64,
        message: String,
    },
}

impl Fate {
    /// The batch's fate as the delete-failure report names it.
    fn describe(&self) -> &'static str {
        match self {
            Fate::Delivered { .. } => "delivered batch",
            Fate::Dropped { .. } => "dropped batch (not sent again)",
        }
    }
}

/// Where the records of one counted move come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The task's memory (counted in `left_memory`).
    Memory,
    /// A disk-queue row this task has deleted (counted in `settled_disk`): the
    /// queue moved its records out of its pending gauges already.
    Disk,
}

/// What one guarded send produced.
enum Sent {
    Outcome(SendOutcome),
    /// The sink panicked while sending; the panic message.
    Panicked(String),
}

/// Most encoded payloads kept in memory waiting for their first send. Past it the
/// task stops reading records; the sink's channel then fills and the worker counts
/// `dropped_backlog`.
const MAX_OUTBOX: usize = 16;

/// How long the disk backlog is skipped (memory batches go meanwhile) when the
/// queue's counters claim batches that are not on disk, after a recount did not
/// settle it.
const BACKLOG_RECHECK: Duration = Duration::from_secs(1);

/// Most rows remembered in [`Task::unrecorded`]; past it the oldest is forgotten
/// (only its `replayed` count is at stake, never the batch).
const MAX_UNRECORDED: usize = 1024;

/// Longest a shutdown caused by the control channel closing waits.
const ORPHAN_SHUTDOWN: Duration = Duration::from_secs(2);

struct Batcher {
    records: Vec<Arc<Record>>,
    bytes: usize,
    started: Option<Instant>,
}

struct PendingFlush {
    ack: flume::Sender<bool>,
    /// `Task::drops` when the flush before this one was asked: a record dropped
    /// since then was accepted before this flush (even if it was dropped before
    /// the flush reached the task), so the flush answers `false`.
    drops_at: u64,
    /// `false`: give up as soon as the sink cannot make progress now.
    patient: bool,
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
    /// `drops` when the last flush was asked, or when a flush last answered
    /// (whichever is later): drops up to it are already reported.
    drops_at_last_flush: u64,
    /// Control messages that arrived during a send, handled next.
    held: VecDeque<Control>,
    /// Delivered batches whose disk-queue row is not deleted yet, oldest first.
    unacked: Vec<Unacked>,
    /// Next retry of the deletes in `unacked`, and the wait after that.
    ack_retry_at: Option<Instant>,
    /// The outbox waits behind a backlog (or offline) and goes to disk at this
    /// instant at the latest.
    park_due: Option<Instant>,
    /// Until then the disk backlog is not read: the counters said batches were
    /// there, the disk had none (see [`BACKLOG_RECHECK`]).
    backlog_recheck_at: Option<Instant>,
    ack_delay: Duration,
    /// The record channel while a send runs from the main loop: records arriving
    /// meanwhile go to `intake` (at most [`Task::intake_room`]), batched after the
    /// send.
    records: Option<flume::Receiver<Arc<Record>>>,
    intake: Vec<Arc<Record>>,
    /// Disk-queue rows whose last failed attempt could not be recorded on the row
    /// ([`Spool::bump`] failed): delivered later, they still count as `replayed`.
    unrecorded: BTreeSet<i64>,
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
        drops_at_last_flush: 0,
        held: VecDeque::new(),
        unacked: Vec::new(),
        ack_retry_at: None,
        backlog_recheck_at: None,
        park_due: None,
        ack_delay: ACK_RETRY_FIRST,
        records: None,
        intake: Vec::new(),
        unrecorded: BTreeSet::new(),
    };
    let mut records_open = true;
    loop {
        t.answer_flushes(false);
        if t.park_due.is_some_and(|d| d <= Instant::now()) {
            t.park_outbox();
        }
        if let Some(c) = t.held.pop_front() {
            if t.handle(c, &records).await {
                return;
            }
            continue;
        }
        if t.ready(Instant::now()) {
            // Intake between two sends: however long the backlog, records waiting
            // in the channel are batched (to disk, behind the backlog) instead of
            // filling the channel and being dropped.
            if records_open {
                t.take_waiting(&records);
            }
            if t.batch_due(Instant::now()) {
                t.seal();
            }
            t.step(&control, &records).await;
            t.answer_flushes(false);
            continue;
        }
        let wake = t.next_wake();
        let due = t.batch.started.map(|s| instant_plus(s, t.max_delay));
        let accepting = records_open && t.outbox.len() < MAX_OUTBOX;
        tokio::select! {
            biased;
            c = control.recv_async() => {
                let c = c.unwrap_or_else(|_| Control::orphan());
                if t.handle(c, &records).await {
                    return;
                }
            }
            r = records.recv_async(), if accepting => match r {
                Ok(rec) => t.take(rec, &records),
                Err(_) => records_open = false,
            },
            () = sleep_until_opt(due) => t.seal(),
            () = sleep_until_opt(t.park_due) => t.park_outbox(),
            () = sleep_until_opt(wake) => {}
        }
    }
}

/// How long a send already in flight when `shutdown` arrives may still run: half
/// the time left to the shutdown's deadline (the other half is for committing what
/// is in memory and the shutdown's own delivery).
///
/// The send is not cancelled at once because its request may already be with the
/// receiver: a cancelled send counts as not sent, so the batch stays in the outbox
/// (or its row on disk) and the shutdown's delivery sends it again — a batch the
/// receiver had accepted, delivered twice. Only a send still unanswered at the
/// cutoff (a receiver that hangs) is cancelled, as before; its batch is then sent
/// again, the at-least-once of a send whose outcome is unknown.
fn in_flight_cutoff(shutdown: &Control) -> Instant {
    let now = Instant::now();
    match shutdown {
        Control::Shutdown { deadline, .. } => {
            instant_plus(now, deadline.saturating_duration_since(now) / 2)
        }
        Control::Flush { .. } | Control::Persist { .. } => now,
    }
}

/// Awaits a send in flight until `cutoff`; `None` when it had not finished by then
/// (it is cancelled).
async fn finish_in_flight<F>(send: F, cutoff: Instant) -> Option<Sent>
where
    F: std::future::Future<Output = Sent>,
{
    tokio::time::timeout_at(cutoff.into(), send).await.ok()
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
            Control::Flush { ack, patient } => {
                self.begin_flush(records, ack, patient).await;
                false
            }
            Control::Persist { ack } => {
                self.begin_persist(records, ack);
                false
            }
            Control::Shutdown {
                deadline,
                patient,
                ack,
            } => {
                self.shutdown(records, deadline, patient).await;
                let _ = ack.send(());
                true
            }
        }
    }

    /// Awaits `send`, watching the control channel meanwhile: a flush is kept for
    /// later; a shutdown (or a closed channel) is kept too, and the send is given
    /// until [`in_flight_cutoff`] to finish (its outcome is then settled as usual),
    /// else cancelled: `None`. A cancelled payload is still in the outbox or on
    /// disk. A panic inside the sink's `send` (building or polling its future) is
    /// caught and returned as [`Sent::Panicked`]; the task and the sink go on.
    ///
    /// With `intake`, records arriving on the channel during the send are taken
    /// into the buffer (up to its cap), so a slow send or a long replay never lets
    /// the channel fill up; the caller batches them after the send.
    #[allow(clippy::type_complexity)]
    async fn send_watching(
        sink: &mut Box<dyn Sink>,
        payload: &Payload,
        control: Option<&flume::Receiver<Control>>,
        held: &mut VecDeque<Control>,
        intake: Option<(&flume::Receiver<Arc<Record>>, &mut Vec<Arc<Record>>, usize)>,
    ) -> Option<Sent> {
        let send = match std::panic::catch_unwind(AssertUnwindSafe(move || {
            let sink = sink;
            sink.send(payload)
        })) {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind(),
            Err(p) => return Some(Sent::Panicked(crate::global::panic_payload_text(&*p))),
        };
        let send = send.map(|r| match r {
            Ok(o) => Sent::Outcome(o),
            Err(p) => Sent::Panicked(crate::global::panic_payload_text(&*p)),
        });
        tokio::pin!(send);
        let Some(control) = control else {
            return Some(send.await);
        };
        let (records, buffer, cap) = match intake {
            Some((r, b, cap)) => (Some(r), Some(b), cap),
            None => (None, None, 0),
        };
        let mut buffer = buffer;
        let mut records_open = records.is_some();
        loop {
            let room = records_open && buffer.as_ref().is_some_and(|b| b.len() < cap);
            tokio::select! {
                biased;
                o = &mut send => return Some(o),
                r = async {
                    match records {
                        Some(rx) => rx.recv_async().await,
                        None => std::future::pending().await,
                    }
                }, if room => match r {
                    Ok(rec) => {
                        if let Some(b) = buffer.as_mut() {
                            b.push(rec);
                        }
                    }
                    Err(_) => records_open = false,
                },
                c = control.recv_async() => match c {
                    Ok(f @ (Control::Flush { .. } | Control::Persist { .. })) => {
                        held.push_back(f);
                    }
                    c @ (Ok(Control::Shutdown { .. }) | Err(_)) => {
                        let s = c.unwrap_or_else(|_| Control::orphan());
                        let cutoff = in_flight_cutoff(&s);
                        held.push_back(s);
                        return finish_in_flight(send, cutoff).await;
                    }
                },
            }
        }
    }

    /// Durable mode, from the main loop: sends `payload` (a row of the disk queue)
    /// through the sink's detached send ([`Sink::send_detached`]), and while it is
    /// in flight takes records, seals batches into the disk queue (full ones, and
    /// the open one when its interval is up) and answers flushes and persist
    /// barriers, so none of them waits for a slow send. `None` when this does not
    /// apply (not durable, no control channel, a sink without a detached send): the
    /// caller sends with [`Task::send_watching`]. A shutdown (or a closed control
    /// channel) is kept for later and gives the send until [`in_flight_cutoff`] to
    /// finish; `Some(None)`: it did not, the send is cancelled and the row stays on
    /// disk.
    async fn send_committing(
        &mut self,
        payload: &Payload,
        control: Option<&flume::Receiver<Control>>,
    ) -> Option<Option<Sent>> {
        if !self.durable {
            return None;
        }
        let control = control?;
        let records = self.records.clone()?;
        let sink = &self.sink;
        let send = match std::panic::catch_unwind(AssertUnwindSafe(|| sink.send_detached(payload)))
        {
            Ok(Some(fut)) => fut,
            Ok(None) => return None,
            Err(p) => {
                return Some(Some(Sent::Panicked(crate::global::panic_payload_text(&*p))));
            }
        };
        let send = AssertUnwindSafe(send).catch_unwind().map(|r| match r {
            Ok(o) => Sent::Outcome(o),
            Err(p) => Sent::Panicked(crate::global::panic_payload_text(&*p)),
        });
        tokio::pin!(send);
        let mut records_open = true;
        loop {
            let due = self.batch.started.map(|s| instant_plus(s, self.max_delay));
            tokio::select! {
                biased;
                o = &mut send => return Some(Some(o)),
                c = control.recv_async() => match c {
                    Ok(Control::Persist { ack }) => self.begin_persist(&records, ack),
                    Ok(Control::Flush { ack, patient }) => {
                        // The send under way is the probe an offline sink would get.
                        self.register_flush(&records, ack, patient);
                        self.answer_flushes(false);
                    }
                    c @ (Ok(Control::Shutdown { .. }) | Err(_)) => {
                        let s = c.unwrap_or_else(|_| Control::orphan());
                        let cutoff = in_flight_cutoff(&s);
                        self.held.push_back(s);
                        return Some(finish_in_flight(send, cutoff).await);
                    }
                },
                r = records.recv_async(), if records_open => match r {
                    Ok(rec) => self.take(rec, &records),
                    Err(_) => records_open = false,
                },
                () = sleep_until_opt(due) => self.seal(),
            }
        }
    }

    fn add(&self, counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64, n: u64) {
        SinkCounters::add(counter(&self.counters), n);
    }

    /// Counts `n` records leaving `from`, and whatever `f` adds for them, as one
    /// move under the counters' transition lock ([`SinkCounters::settle`]), so a
    /// stats snapshot sees all of it or none. Nothing is counted when the sink was
    /// abandoned at shutdown (its records are counted already); returns whether it
    /// was. The lock is never held across SQLite work or a report: a delete runs
    /// before this, a store after the records left memory, a report after.
    fn moved(&self, from: Source, n: u64, f: impl FnOnce(&SinkCounters)) -> bool {
        self.counters.settle(|c| {
            let out = match from {
                Source::Memory => &c.left_memory,
                Source::Disk => &c.settled_disk,
            };
            SinkCounters::add(out, n);
            f(c);
        })
    }

    /// `true` when there is something left to do: the outbox, batches on disk
    /// (delivered ones whose delete is pending included).
    fn has_work(&self) -> bool {
        !self.outbox.is_empty() || self.spool.has_backlog()
    }

    /// `true` when the disk holds batches not yet delivered (and is not being
    /// skipped after its counters were found wrong).
    fn sendable_backlog(&self) -> bool {
        if self
            .backlog_recheck_at
            .is_some_and(|at| at > Instant::now())
        {
            return false;
        }
        self.spool.pending_batches() > self.unacked.len() as u64
    }

    /// `true` when there is a batch to send (disk or memory).
    fn has_sendable(&self) -> bool {
        !self.outbox.is_empty() || self.sendable_backlog()
    }

    /// `true` when the deletes of delivered batches are due for a retry.
    fn acks_due(&self, now: Instant) -> bool {
        !self.unacked.is_empty() && self.ack_retry_at.is_none_or(|at| at <= now)
    }

    /// `true` when a send (or a pending delete) may start now.
    fn ready(&self, now: Instant) -> bool {
        self.acks_due(now) || (self.has_sendable() && self.not_before.is_none_or(|nb| nb <= now))
    }

    /// When the loop must wake up for a send or a delete that is not ready yet.
    fn next_wake(&self) -> Option<Instant> {
        let send = self.not_before.filter(|_| self.has_sendable());
        let ack = self.ack_retry_at.filter(|_| !self.unacked.is_empty());
        let recheck = self.backlog_recheck_at.filter(|&at| at > Instant::now());
        [send, ack, recheck].into_iter().flatten().min()
    }

    /// `true` when the open batch has waited `max_delay`.
    fn batch_due(&self, now: Instant) -> bool {
        self.batch
            .started
            .is_some_and(|s| instant_plus(s, self.max_delay) <= now)
    }

    /// Records a send may take in from the channel: what fills the outbox up to
    /// [`MAX_OUTBOX`] batches, less the open batch. Zero while the outbox is full:
    /// records then wait in the channel and the backpressure reaches the worker,
    /// instead of every send encoding up to `MAX_OUTBOX` more batches into an outbox
    /// that only one send drains (memory grew with the records produced). Behind a
    /// backlog the outbox goes to disk when full, which makes room again.
    fn intake_room(&self) -> usize {
        MAX_OUTBOX
            .saturating_sub(self.outbox.len())
            .saturating_mul(self.max_records)
            .saturating_sub(self.batch.records.len())
    }

    /// Batches the records taken in during the last send.
    fn absorb_intake(&mut self) {
        let taken = std::mem::take(&mut self.intake);
        for r in taken {
            if self.push(r) {
                self.seal();
            }
        }
    }

    /// Takes the records waiting in the channel now (no waiting), as far as the
    /// outbox bound allows.
    fn take_waiting(&mut self, records: &flume::Receiver<Arc<Record>>) {
        for _ in 0..records.len() {
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
        // The sink reads the records where they are (nothing is copied out of its
        // `Arc`); the batch's buffer is then emptied and reused for the next one.
        let n = self.batch.records.len() as u64;
        let service = Arc::clone(&self.settings.service);
        let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.sink.encode(&self.batch.records, &service)
        }));
        self.batch.records.clear();
        let payloads = match encoded {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                self.drop_records(
                    Source::Memory,
                    |c| &c.dropped_encode,
                    n,
                    format!("encode failed: {e}"),
                );
                return;
            }
            Err(p) => {
                let msg = crate::global::panic_payload_text(&*p);
                self.drop_records(
                    Source::Memory,
                    |c| &c.dropped_encode,
                    n,
                    format!("dropped {n} records, the sink panicked while encoding: {msg}"),
                );
                return;
            }
        };
        for p in payloads {
            if self.spool.enabled() && self.durable {
                self.park(&p);
                continue;
            }
            self.outbox.push_back(p);
            // Behind a backlog (or offline) the outbox is not sent before the disk,
            // so it cannot overtake; it goes to disk in chunks, one commit each.
            if self.spool.enabled() && (self.offline || self.spool.has_backlog()) {
                if self.outbox.len() >= MAX_OUTBOX {
                    self.park_outbox();
                } else if self.park_due.is_none() {
                    self.park_due = Some(deadline_after(self.max_delay));
                }
            }
        }
    }

    /// Commits the whole outbox to the disk queue, in order, in one transaction.
    fn park_outbox(&mut self) {
        self.park_due = None;
        if self.outbox.is_empty() {
            return;
        }
        let parked: Vec<Payload> = self.outbox.drain(..).collect();
        self.park_all(&parked);
    }

    /// Stores payloads that are in memory in the disk queue, in one transaction.
    ///
    /// The records leave memory for the queue (`to_disk`) in one move first; the
    /// queue then counts them itself (pending, or dropped by a bound) in the same
    /// update as its commit. A snapshot in between counts them pending in transit,
    /// so the SQLite work (busy waits, `fsync`) runs without the transition lock.
    fn park_all(&mut self, payloads: &[Payload]) {
        let total: u64 = payloads.iter().map(|p| u64::from(p.records)).sum();
        if !self.spool.enabled() {
            // Cannot happen (callers check), but never lose them silently.
            self.drop_records(
                Source::Memory,
                |c| &c.dropped_failed,
                total,
                format!("dropped {total} records: no disk queue to park them in"),
            );
            return;
        }
        if !self.moved(Source::Memory, total, |c| {
            SinkCounters::add(&c.to_disk, total);
        }) {
            // Abandoned at shutdown: these records are counted already.
            return;
        }
        let outcomes = self.spool.store_all(payloads).unwrap_or_default();
        for (p, o) in payloads.iter().zip(outcomes) {
            let n = u64::from(p.records);
            match o {
                Stored::Yes => self.add(|c| &c.cached, n),
                // Counted by the queue (cache bound, disk full, I/O error).
                Stored::Dropped => self.drops += n,
            }
        }
    }

    /// Stores a payload that is in memory in the disk queue.
    fn park(&mut self, p: &Payload) {
        self.park_all(std::slice::from_ref(p));
    }

    /// One delivery attempt: the oldest batch on disk, else the oldest in memory.
    /// With `control`, a shutdown arriving meanwhile lets the send finish until
    /// [`in_flight_cutoff`] and cancels it after.
    async fn step(
        &mut self,
        control: &flume::Receiver<Control>,
        records: &flume::Receiver<Arc<Record>>,
    ) {
        self.records = Some(records.clone());
        self.attempt(Some(control)).await;
        self.records = None;
        self.absorb_intake();
    }

    async fn attempt(&mut self, control: Option<&flume::Receiver<Control>>) {
        if self.counters.is_abandoned() {
            // Given up at the shutdown deadline: nothing more is sent or counted.
            return;
        }
        if self.acks_due(Instant::now()) {
            self.retry_acks();
            return;
        }
        if self.sendable_backlog() {
            let after = self.unacked.last().map_or(0, |u| u.seq);
            let b = match self.spool.oldest_after(after) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    // The counters claim batches the disk does not have (rows
                    // deleted behind the queue's back): recount, and if that does
                    // not settle it, skip the disk for a while so this is no busy
                    // loop and memory batches still go.
                    self.spool.resync();
                    if self.spool.pending_batches() > self.unacked.len() as u64 {
                        self.backlog_recheck_at = Some(deadline_after(BACKLOG_RECHECK));
                    }
                    return;
                }
                Err(e) => {
                    // The queue cannot be read now; try again later rather than spin.
                    self.not_before = Some(deadline_after(self.settings.network_check_interval));
                    self.counters
                        .set_last_error(format!("disk queue read failed; delivery paused: {e}"));
                    return;
                }
            };
            let n = u64::from(b.payload.records);
            let sent = match self.send_committing(&b.payload, control).await {
                Some(sent) => sent,
                None => {
                    let room = self.intake_room();
                    Self::send_watching(
                        &mut self.sink,
                        &b.payload,
                        control,
                        &mut self.held,
                        self.records.as_ref().map(|r| (r, &mut self.intake, room)),
                    )
                    .await
                }
            };
            let Some(sent) = sent else {
                return;
            };
            if self.counters.is_abandoned() {
                // Given up meanwhile: the row stays (pending on disk, sent again
                // by the next start) rather than deleted and never counted.
                return;
            }
            // A failed attempt the row could not record still makes this a replay.
            let replay = self.unrecorded.remove(&b.seq) || b.replay;
            match sent {
                Sent::Outcome(SendOutcome::Delivered) => {
                    let refused = self.take_refusal(n);
                    let u = Unacked {
                        seq: b.seq,
                        records: n,
                        replay: !self.durable || replay,
                        fate: Fate::Delivered { refused },
                    };
                    match self.spool.ack(b.seq) {
                        Acked::Deleted => self.count_acked(u),
                        // Evicted meanwhile and counted by the queue.
                        Acked::Gone => {}
                        Acked::Failed(e) => {
                            // Delivered: never sent again. The delete is retried
                            // with backoff; the row counts as pending until then.
                            self.ack_failed(&e, u.fate.describe());
                            self.unacked.push(u);
                        }
                    }
                    self.succeeded();
                }
                Sent::Outcome(SendOutcome::Reject { reason }) => {
                    // The receiver answered: the sink is reachable.
                    self.succeeded();
                    self.add(|c| &c.errors, 1);
                    let fate = Fate::Dropped {
                        counter: |c| &c.dropped_rejected,
                        message: format!(
                            "dropped {n} records, the receiver refused the batch: {reason}"
                        ),
                    };
                    self.remove_settled(b.seq, n, replay, fate);
                }
                Sent::Outcome(SendOutcome::Retry {
                    reason,
                    retry_after,
                }) => match self.spool.bump(b.seq) {
                    Ok(()) => self.failed(reason, retry_after),
                    Err(e) => {
                        self.failed(reason.clone(), retry_after);
                        self.attempt_not_recorded(b.seq, &reason, &e);
                    }
                },
                Sent::Panicked(msg) => {
                    self.add(|c| &c.errors, 1);
                    let fate = Fate::Dropped {
                        counter: |c| &c.dropped_failed,
                        message: format!(
                            "dropped {n} records, the sink panicked while sending: {msg}"
                        ),
                    };
                    self.remove_settled(b.seq, n, replay, fate);
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
        let room = self.intake_room();
        let Some(sent) = Self::send_watching(
            &mut self.sink,
            &p,
            control,
            &mut self.held,
            self.records.as_ref().map(|r| (r, &mut self.intake, room)),
        )
        .await
        else {
            return;
        };
        match sent {
            Sent::Outcome(SendOutcome::Delivered) => {
                self.outbox.pop_front();
                let refused = self.take_refusal(n);
                self.count_delivered(Source::Memory, n, refused, false);
                self.succeeded();
            }
            Sent::Outcome(SendOutcome::Reject { reason }) => {
                self.outbox.pop_front();
                self.rejected(Source::Memory, n, reason);
            }
            Sent::Panicked(msg) => {
                self.outbox.pop_front();
                self.panicked(Source::Memory, n, &msg);
            }
            Sent::Outcome(SendOutcome::Retry {
                reason,
                retry_after,
            }) => {
                if self.spool.enabled() {
                    // Park it and everything behind it, in order; retries and
                    // replays then come from disk.
                    self.park_outbox();
                    self.failed(reason, retry_after);
                } else {
                    self.failed(reason.clone(), retry_after);
                    if self.backoff.exhausted() {
                        // No disk queue: this batch had all its retries.
                        self.outbox.pop_front();
                        let attempts = self.backoff.failures();
                        self.drop_records(
                            Source::Memory,
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

    /// Deletes the row of a batch from disk that was not delivered and counts it
    /// per `fate`; when the delete fails the batch is kept in `unacked` (never sent
    /// again, the delete retried like a failed ack).
    fn remove_settled(&mut self, seq: i64, records: u64, replay: bool, fate: Fate) {
        match self.spool.remove(seq) {
            Ok(0) => {} // Evicted meanwhile and counted by the queue.
            Ok(k) => {
                self.count_settled(k, fate, false);
            }
            Err(e) => {
                self.ack_failed(&e, fate.describe());
                self.unacked.push(Unacked {
                    seq,
                    records,
                    replay,
                    fate,
                });
            }
        }
    }

    /// Retries the deletes of settled batches, oldest first, stopping at the first
    /// failure (the others would wait on the same lock).
    fn retry_acks(&mut self) {
        while let Some(seq) = self.unacked.first().map(|u| u.seq) {
            if self.counters.is_abandoned() {
                return;
            }
            let delivered = matches!(self.unacked[0].fate, Fate::Delivered { .. });
            let outcome = if delivered {
                self.spool.ack(seq)
            } else {
                match self.spool.remove(seq) {
                    Ok(0) => Acked::Gone,
                    Ok(k) => {
                        // Count what the queue removed (the row's own count).
                        self.unacked[0].records = k;
                        Acked::Deleted
                    }
                    Err(e) => Acked::Failed(e),
                }
            };
            match outcome {
                Acked::Deleted => {
                    let u = self.unacked.remove(0);
                    self.count_acked(u);
                }
                Acked::Gone => {
                    self.unacked.remove(0);
                }
                Acked::Failed(e) => {
                    let what = self.unacked[0].fate.describe();
                    self.ack_failed(&e, what);
                    return;
                }
            }
        }
        self.ack_retry_at = None;
        self.ack_delay = ACK_RETRY_FIRST;
    }

    /// The failed attempt just made on row `seq` (`reason`) could not be counted on
    /// the row (`e`): the batch is unharmed and retried as usual, the task
    /// remembers the attempt (so a later delivery still counts as `replayed`), and
    /// the failure goes to `last_error` (with the send's `reason`) and stderr
    /// (rate-limited).
    fn attempt_not_recorded(&mut self, seq: i64, reason: &str, e: &str) {
        if self.unrecorded.len() >= MAX_UNRECORDED {
            // Oldest first: rows that old are delivered or evicted by now.
            self.unrecorded.pop_first();
        }
        self.unrecorded.insert(seq);
        let msg = format!(
            "a failed send could not be recorded on its disk-queue row (the batch is kept and retried): {e}"
        );
        self.reporter.report(&self.counters.name, &msg);
        self.counters.set_last_error(format!("{reason}; {msg}"));
    }

    /// Schedules the next delete retry (doubling, capped) and reports the error;
    /// `what` names the batch ("delivered batch", ...).
    fn ack_failed(&mut self, e: &str, what: &str) {
        let delay = self.ack_delay;
        self.ack_delay = (self.ack_delay * 2).min(ACK_RETRY_MAX);
        self.ack_retry_at = Some(deadline_after(delay));
        self.counters.set_last_error(format!(
            "{what} kept in the disk queue, its delete failed (retry in {delay:?}): {e}"
        ));
    }

    /// Counts a settled batch whose row is now deleted.
    fn count_acked(&mut self, u: Unacked) {
        self.count_settled(u.records, u.fate, u.replay);
    }

    /// Counts `n` records of a batch whose row is deleted, per `fate` (delivered
    /// ones also as `replayed` when `replay`).
    fn count_settled(&mut self, n: u64, fate: Fate, replay: bool) {
        match fate {
            Fate::Delivered { refused } => {
                self.count_delivered(Source::Disk, n, refused, replay);
            }
            Fate::Dropped { counter, message } => {
                self.drop_records(Source::Disk, counter, n, message);
            }
        }
    }

    /// Records of the payload just delivered that the receiver refused one by one
    /// inside the accepted request (an OTLP partial success), with its message.
    fn take_refusal(&mut self, n: u64) -> Option<(u64, String)> {
        match self.sink.take_partial_rejection() {
            Some((k, reason)) if k > 0 => Some((k.min(n), reason)),
            _ => None,
        }
    }

    /// Counts a delivered payload of `n` records out of `from` as `written` (and
    /// `replayed` when `replay`). Records refused inside the accepted request are
    /// counted as `dropped_rejected` instead, and reported.
    fn count_delivered(
        &mut self,
        from: Source,
        n: u64,
        refused: Option<(u64, String)>,
        replay: bool,
    ) {
        let k = refused.as_ref().map_or(0, |r| r.0);
        let counted = self.moved(from, n, |c| {
            SinkCounters::add(&c.dropped_rejected, k);
            SinkCounters::add(&c.written, n - k);
            SinkCounters::add(&c.batches, 1);
            if replay {
                SinkCounters::add(&c.replayed, n - k);
            }
        });
        if let (true, Some((_, reason))) = (counted, refused) {
            // Counted and reported, but the request itself was accepted: a flush
            // still reports success (as before the disk queue existed).
            self.reporter.report(&self.counters.name, &reason);
            self.counters.set_last_error(reason);
        }
    }

    /// The sink panicked while sending a batch of `n` records (out of `from`):
    /// counted as `dropped_failed` with the panic message; the sink keeps running.
    fn panicked(&mut self, from: Source, n: u64, msg: &str) {
        self.add(|c| &c.errors, 1);
        self.drop_records(
            from,
            |c| &c.dropped_failed,
            n,
            format!("dropped {n} records, the sink panicked while sending: {msg}"),
        );
    }

    fn succeeded(&mut self) {
        self.backoff.reset();
        self.not_before = None;
        if self.offline {
            self.offline = false;
            self.counters.offline.store(false, Ordering::Relaxed);
        }
    }

    fn rejected(&mut self, from: Source, n: u64, reason: String) {
        // The receiver answered: the sink is reachable.
        self.succeeded();
        self.add(|c| &c.errors, 1);
        self.drop_records(
            from,
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
        self.not_before = Some(deadline_after(delay));
    }

    /// Counts `n` records out of `from` as dropped in `counter` (one move), then
    /// reports `message` (outside the transition lock). Nothing happens when the
    /// sink was abandoned at shutdown: they are counted already.
    fn drop_records(
        &mut self,
        from: Source,
        counter: fn(&SinkCounters) -> &std::sync::atomic::AtomicU64,
        n: u64,
        message: String,
    ) {
        if !self.moved(from, n, |c| SinkCounters::add(counter(c), n)) {
            return;
        }
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
        patient: bool,
    ) {
        self.register_flush(records, ack, patient);
        if self.offline && self.has_sendable() {
            self.not_before = None;
            self.attempt(None).await;
        }
        self.answer_flushes(false);
    }

    /// [`Task::begin_flush`] without the probe and the answer: seals everything
    /// received and registers the flush.
    fn register_flush(
        &mut self,
        records: &flume::Receiver<Arc<Record>>,
        ack: flume::Sender<bool>,
        patient: bool,
    ) {
        self.drain_channel(records);
        if self.offline && !self.durable && self.spool.enabled() {
            // What waited behind the backlog in memory goes to disk now, as it did
            // batch by batch before: a flush of an offline sink leaves it all there.
            self.park_outbox();
        }
        self.flushes.push(PendingFlush {
            ack,
            drops_at: self.drops_at_last_flush,
            patient,
        });
        self.drops_at_last_flush = self.drops;
    }

    /// A persist barrier: a flush that is never patient and never probes, so in
    /// durable mode (records reach disk when sealed) it is settled at once.
    fn begin_persist(&mut self, records: &flume::Receiver<Arc<Record>>, ack: flume::Sender<bool>) {
        self.drain_channel(records);
        self.flushes.push(PendingFlush {
            ack,
            drops_at: self.drops_at_last_flush,
            patient: false,
        });
        self.drops_at_last_flush = self.drops;
        self.answer_flushes(false);
    }

    /// Answers the pending flushes that are settled (or all of them when `last`).
    /// An impatient flush is answered `false` as soon as nothing can be sent now.
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
        let stuck = !self.ready(Instant::now());
        let drops = self.drops;
        let mut answered = false;
        self.flushes.retain(|f| {
            let give_up = last || (self.offline && self.spool.enabled()) || (!f.patient && stuck);
            if settled || give_up {
                let _ = f.ack.send(settled && drops == f.drops_at);
                answered = true;
                false
            } else {
                true
            }
        });
        if answered {
            self.drops_at_last_flush = drops;
        }
    }

    /// Shutdown: with a disk queue, everything in memory is committed first, then
    /// delivered from disk until the deadline (what remains is replayed by the next
    /// start); without one, delivered until the deadline (not `patient`: without
    /// waiting out a backoff) and the rest counted as `dropped_failed`.
    async fn shutdown(
        &mut self,
        records: &flume::Receiver<Arc<Record>>,
        deadline: Instant,
        patient: bool,
    ) {
        self.drain_channel(records);
        if self.spool.enabled() {
            self.park_outbox();
        }
        // One immediate attempt even when backing off or offline.
        self.not_before = None;
        self.deliver_until(deadline, patient).await;
        let left: Vec<Payload> = self.outbox.drain(..).collect();
        let n: u64 = left.iter().map(|p| u64::from(p.records)).sum();
        if n > 0 {
            self.drop_records(
                Source::Memory,
                |c| &c.dropped_failed,
                n,
                format!("dropped {n} records not delivered before the shutdown deadline"),
            );
        }
        self.answer_flushes(true);
        let left = deadline.saturating_duration_since(Instant::now());
        let sink = &mut self.sink;
        let close = match std::panic::catch_unwind(AssertUnwindSafe(move || {
            let sink = sink;
            sink.close()
        })) {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind(),
            Err(p) => {
                self.counters.set_last_error(format!(
                    "the sink panicked while closing: {}",
                    crate::global::panic_payload_text(&*p)
                ));
                return;
            }
        };
        match tokio::time::timeout(left, close).await {
            Ok(Ok(())) => {}
            Ok(Err(p)) => self.counters.set_last_error(format!(
                "the sink panicked while closing: {}",
                crate::global::panic_payload_text(&*p)
            )),
            Err(_) => self
                .counters
                .set_last_error("closing the sink did not finish by the shutdown deadline".into()),
        }
    }

    /// Sends until there is nothing left or the deadline. With a disk queue it stops
    /// at the first failure (what is left is safe on disk, and waiting out a backoff
    /// would only delay the exit); without one it keeps retrying until the deadline
    /// when `patient`, and stops at the first backoff otherwise.
    async fn deliver_until(&mut self, deadline: Instant, patient: bool) {
        // Bounded: every round either sends or sleeps towards the deadline.
        for _ in 0..1_000_000 {
            if (!self.has_sendable() && self.unacked.is_empty()) || self.counters.is_abandoned() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if !self.has_sendable() {
                // Only deletes of settled batches are left: one more try, then
                // the rows stay for the next start.
                if self.acks_due(now) {
                    self.retry_acks();
                }
                return;
            }
            if let Some(nb) = self.not_before {
                if (self.spool.enabled() || !patient) && nb > now {
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
