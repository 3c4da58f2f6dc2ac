//! Disk-queue faults on the delivery path, injected from a second SQLite connection
//! to the queue file: a refused batch whose row cannot be deleted is not sent again
//! and the failure is visible in the stats; `stats()` does not wait for a locked
//! queue file.
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::time::{Duration, Instant};

use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, log_ids, missing_and_duplicates,
    wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);

fn queue_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME)
}

/// Requests the receiver answered whose body held record `i`.
fn requests_holding(rx: &Receiver, i: u64) -> usize {
    rx.requests().iter().filter(|s| s.ids.contains(&i)).count()
}

/// A client (no retries, batches of at most `max_batch_size` records) whose receiver
/// is down, with records 0..5 in one batch parked in its disk queue.
fn parked_five(max_batch_size: usize) -> (Receiver, tempfile::TempDir, loggier_core::Loggier) {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        max_retries: 0,
        max_batch_size,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    log_ids(&log, 0..5);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == 5);
    assert_eq!(s.sinks[0].pending_disk, 5, "{s:?}");
    (rx, dir, log)
}

#[test]
fn a_refused_batch_whose_delete_fails_is_counted_and_never_sent_again() {
    // Five records in one batch, parked on disk while the receiver is down.
    let (rx, dir, log) = parked_five(ClientOpts::default().max_batch_size);

    // Every delete from the queue now fails (the queue's own connection sees the
    // trigger: the schema changed under it).
    let other = rusqlite::Connection::open(queue_file(dir.path())).expect("second connection");
    other
        .execute_batch(
            "CREATE TRIGGER injected_delete_fault BEFORE DELETE ON batches
             BEGIN SELECT RAISE(ABORT, 'injected delete fault'); END;",
        )
        .expect("trigger");

    // The receiver refuses the batch (400): it must be dropped, not sent again.
    rx.up(Mode::Status(400));
    assert_eq!(
        rx.wait_arrivals(1, WAIT),
        1,
        "the parked batch was not sent"
    );
    // Several delete retries fail meanwhile (first retry after 100 ms).
    std::thread::sleep(Duration::from_millis(1200));
    let sent = requests_holding(&rx, 0);
    assert_eq!(
        sent, 1,
        "the refused batch was sent {sent} times while its delete failed"
    );
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.balance(), 0, "{k:?}");
    // Still on disk until the delete succeeds: pending, not dropped yet.
    assert_eq!(k.pending, 5, "{k:?}");
    assert_eq!(k.pending_disk, 5, "{k:?}");
    assert_eq!(k.dropped_rejected, 0, "{k:?}");
    assert_eq!(k.written, 0, "{k:?}");
    let err = k.last_error.as_deref().unwrap_or_default();
    assert!(
        err.contains("injected delete fault") && err.contains("delete failed"),
        "the failed delete is not visible in last_error: {err:?}"
    );

    // The fault goes away: the retried delete succeeds and the batch is counted
    // as refused, once.
    other
        .execute_batch("DROP TRIGGER injected_delete_fault")
        .expect("drop trigger");
    drop(other);
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0].dropped_rejected == 5 && s.sinks[0].pending == 0
    });
    let k = &s.sinks[0];
    assert_eq!(k.dropped_rejected, 5, "{k:?}");
    assert_eq!(k.pending, 0, "{k:?}");
    assert_eq!(k.pending_disk, 0, "{k:?}");
    assert_conservation(&s);

    // The sink goes on; the refused records never reach an accepting receiver.
    rx.set_mode(Mode::Accept);
    log_ids(&log, 5..10);
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 5);
    let (missing, dups) = missing_and_duplicates(&ids, 10);
    assert_eq!(missing, vec![0, 1, 2, 3, 4], "{ids:?}");
    assert_eq!(dups, 0, "{ids:?}");
    assert_eq!(requests_holding(&rx, 0), 1);
    log.shutdown(Duration::from_secs(5));
    let s = log.stats();
    assert_eq!(s.sinks[0].written, 5, "{s:?}");
    assert_eq!(s.sinks[0].dropped_rejected, 5, "{s:?}");
    assert_conservation(&s);
}

#[test]
fn stats_does_not_wait_for_a_locked_queue_file() {
    // Offline with a batch on disk: what comes next is parked behind it.
    let (rx, dir, log) = parked_five(5);

    // Another connection holds the write lock longer than the queue's busy
    // timeout (2 s): every commit of the sink waits for it, then fails.
    let other = rusqlite::Connection::open(queue_file(dir.path())).expect("second connection");
    other.execute_batch("BEGIN EXCLUSIVE").expect("write lock");

    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_millis(3000);
            let (mut slowest, mut calls, mut unbalanced) = (Duration::ZERO, 0u32, Vec::new());
            while Instant::now() < until {
                let t = Instant::now();
                let s = log.stats();
                slowest = slowest.max(t.elapsed());
                calls += 1;
                if s.sinks[0].balance() != 0 && unbalanced.len() < 5 {
                    unbalanced.push(s.sinks[0].clone());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (slowest, calls, unbalanced)
        })
    };
    // Records to park while the file is locked.
    log_ids(&log, 5..50);
    let (slowest, calls, unbalanced) = reader.join().expect("reader");
    other.execute_batch("ROLLBACK").expect("release");
    drop(other);
    eprintln!("stats() while the queue file was locked: {calls} calls, slowest {slowest:?}");

    // The sink did wait on the lock: its park failed after the busy timeout.
    let s = log.stats();
    let k = &s.sinks[0];
    assert!(
        k.dropped_queue_io > 0
            && s.disk_queue_error
                .as_deref()
                .is_some_and(|e| e.contains("locked")),
        "the sink never waited on the locked file: {s:?}"
    );
    // A bound on blocking (the sink waited 2 s per commit), not a timing claim.
    assert!(
        slowest < Duration::from_millis(250),
        "stats() blocked for {slowest:?} behind the locked disk queue ({calls} calls)"
    );
    assert!(
        unbalanced.is_empty(),
        "unbalanced snapshots: {unbalanced:#?}"
    );

    // Back to normal: everything not dropped for the lock is delivered.
    rx.up(Mode::Accept);
    let s = wait_stats(&log, WAIT, |s| s.in_channel == 0 && s.sinks[0].pending == 0);
    let k = &s.sinks[0];
    assert_eq!(k.pending, 0, "{k:?}");
    assert_eq!(k.written + k.dropped_queue_io, 50, "{k:?}");
    assert_eq!(rx.accepted_ids().len() as u64, k.written, "{k:?}");
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_failed_attempt_that_cannot_be_recorded_on_its_row_is_reported_and_nothing_is_lost() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        mode: loggier_core::DeliveryMode::Durable,
        max_retries: 0,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    // Every update of a row (its failed-attempt count) now fails.
    let other = rusqlite::Connection::open(queue_file(dir.path())).expect("second connection");
    other
        .execute_batch(
            "CREATE TRIGGER injected_update_fault BEFORE UPDATE ON batches
             BEGIN SELECT RAISE(ABORT, 'injected update fault'); END;",
        )
        .expect("trigger");
    log_ids(&log, 0..5);
    assert!(log.persist(WAIT), "{:?}", log.stats());

    // The send fails (receiver down); recording that on the row fails too.
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("injected update fault"))
    });
    let k = &s.sinks[0];
    let err = k.last_error.as_deref().unwrap_or_default();
    assert!(
        err.contains("injected update fault")
            && err.contains("could not be recorded")
            && err.contains("connection failed"),
        "the failed update is not visible in last_error: {err:?}"
    );
    assert!(k.errors >= 1, "{k:?}");
    let attempts: i64 = other
        .query_row("SELECT MAX(attempts) FROM batches", [], |r| r.get(0))
        .expect("attempts");
    assert_eq!(attempts, 0, "the fault did not bite");
    // A few more probes fail the same way: the batch stays, counted once.
    std::thread::sleep(Duration::from_millis(300));
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.balance(), 0, "{k:?}");
    assert_eq!((k.pending, k.pending_disk), (5, 5), "{k:?}");
    assert_eq!(k.dropped(), 0, "{k:?}");
    assert_conservation(&s);

    // The receiver comes back (the fault stays: deletes are not affected): the
    // batch is delivered once and counted as a replay of a failed send.
    rx.up(Mode::Accept);
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0].written == 5 && s.sinks[0].pending == 0
    });
    let k = &s.sinks[0];
    assert_eq!((k.written, k.replayed, k.pending), (5, 5, 0), "{k:?}");
    assert_eq!(k.dropped(), 0, "{k:?}");
    let ids = rx.accepted_ids();
    let (missing, dups) = missing_and_duplicates(&ids, 5);
    assert!(missing.is_empty() && dups == 0, "{ids:?}");
    assert_conservation(&s);
    drop(other);
    log.shutdown(Duration::from_secs(5));
}
