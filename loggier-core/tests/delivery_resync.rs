//! The disk-queue counters drifting from the rows on disk (review item: `Ok(None)`
//! from the queue while the counters claim a backlog must not busy-loop the sink
//! task nor hold up records that are in memory).
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::time::Duration;

use support::{ClientOpts, Mode, Receiver, client, log_ids, wait_stats};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn rows_deleted_behind_the_queue_are_recounted_and_new_records_still_deliver() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        max_retries: 0,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    log_ids(&log, 0..5);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == 5);
    assert_eq!(s.sinks[0].pending_disk, 5, "{s:?}");

    // Another program empties the queue file: the counters still say 5 records
    // (one batch) are on disk, the file has none.
    let file = dir
        .path()
        .join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME);
    let other = rusqlite::Connection::open(&file).expect("second connection");
    other.execute("DELETE FROM batches", []).expect("delete");
    drop(other);

    rx.up(Mode::Accept);
    // The sink notices the drift on its next probe and recounts.
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == 0);
    assert_eq!(s.sinks[0].pending_disk, 0, "counters not recounted: {s:?}");

    // Records logged now are delivered and a flush settles.
    log_ids(&log, 5..10);
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 5);
    assert_eq!(ids, (5..10).collect::<Vec<_>>(), "{:?}", log.stats());
    assert!(log.flush(Duration::from_secs(5)), "{:?}", log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_batch_parked_while_another_connection_writes_waits_for_the_lock() {
    // Found by the delivery model (Down, Log(1), LockQueue(50), Fail503): the store
    // read before it wrote and failed at once with SQLITE_BUSY instead of waiting.
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    log_ids(&log, 0..1);
    let file = dir
        .path()
        .join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME);
    let other = rusqlite::Connection::open(&file).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    std::thread::sleep(Duration::from_millis(100));
    other.execute_batch("ROLLBACK").expect("release");
    drop(other);
    rx.up(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| !ids.is_empty());
    let s = log.stats();
    assert_eq!(ids, vec![0], "{s:?}");
    assert_eq!(s.sinks[0].dropped(), 0, "{s:?}");
    log.shutdown(Duration::from_secs(5));
}
