//! Model test: random sequences of logging, receiver failures, recoveries, flushes
//! and restarts, checked against the simplest model of what must be delivered —
//! every record logged, in order, each at least once (duplicates only from a send
//! cut short by a restart). In the spirit of Vector's disk-buffer model tests.
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::time::Duration;

use loggier_core::DeliveryMode;
use proptest::prelude::*;
use support::{
    ClientOpts, Mode, Receiver, client, first_occurrences_in_order, log_ids,
    missing_and_duplicates, wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
enum Op {
    /// Log this many records.
    Log(u64),
    /// The receiver goes down (port closed).
    Down,
    /// The receiver answers 503.
    Fail503,
    /// The receiver answers 429 with `Retry-After: 0`.
    Throttle,
    /// The receiver accepts again.
    Recover,
    /// `flush()`; must not hang, and must be true when it can be.
    Flush,
    /// Shut the client down and start a new one on the same queue.
    Restart,
    /// Another connection holds the queue's write lock (`BEGIN IMMEDIATE`) for
    /// this many ms: stores and deletes wait; a delivered batch must not be
    /// sent again because its delete had to wait.
    LockQueue(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..60).prop_map(Op::Log),
        1 => Just(Op::Down),
        1 => Just(Op::Fail503),
        1 => Just(Op::Throttle),
        2 => Just(Op::Recover),
        1 => Just(Op::Flush),
        1 => Just(Op::Restart),
        1 => (50u64..400).prop_map(Op::LockQueue),
    ]
}

fn run(ops: &[Op], durable: bool) -> Result<(), TestCaseError> {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let opts = ClientOpts {
        mode: if durable {
            DeliveryMode::Durable
        } else {
            DeliveryMode::OfflineCache
        },
        max_batch_size: 20,
        ..ClientOpts::default()
    };
    let mut log = client(&rx.url(), dir.path(), &opts);
    // The model: every id logged so far, and whether the receiver is healthy.
    let mut logged = 0u64;
    let mut healthy = true;
    let mut restarts = 0usize;
    for op in ops {
        match op {
            Op::Log(n) => {
                log_ids(&log, logged..logged + n);
                logged += n;
            }
            Op::Down => {
                rx.down();
                healthy = false;
            }
            Op::Fail503 => {
                rx.up(Mode::Status(503));
                healthy = false;
            }
            Op::Throttle => {
                rx.up(Mode::TooMany {
                    retry_after_secs: 0,
                });
                healthy = false;
            }
            Op::Recover => {
                rx.up(Mode::Accept);
                healthy = true;
            }
            Op::Flush => {
                let ok = log.flush(Duration::from_secs(10));
                if durable {
                    // Everything accepted is committed to disk, whatever the network.
                    prop_assert!(ok, "durable flush must succeed");
                } else if healthy {
                    // A healthy receiver may still be behind a probe interval after
                    // an outage; the flush probes at once, so it succeeds.
                    prop_assert!(
                        ok,
                        "flush with a healthy receiver failed: {:?}",
                        log.stats()
                    );
                }
            }
            Op::LockQueue(ms) => {
                let file = dir
                    .path()
                    .join("queue")
                    .join(loggier_core::config::QUEUE_FILE_NAME);
                let other = rusqlite::Connection::open(&file)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                other
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                std::thread::sleep(Duration::from_millis(*ms));
                other
                    .execute_batch("ROLLBACK")
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Restart => {
                log.shutdown(Duration::from_secs(5));
                let s = wait_stats(&log, WAIT, |s| s.sinks[0].balance() == 0);
                prop_assert_eq!(s.sinks[0].balance(), 0, "{:?}", s);
                prop_assert_eq!(s.sinks[0].dropped(), 0, "{:?}", s);
                drop(log);
                log = client(&rx.url(), dir.path(), &opts);
                restarts += 1;
            }
        }
    }
    // Recover and let everything drain.
    rx.up(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, logged).0.is_empty());
    let (missing, dups) = missing_and_duplicates(&ids, logged);
    prop_assert!(missing.is_empty(), "missing {:?} of {}", missing, logged);
    prop_assert!(
        dups <= restarts * opts.max_batch_size,
        "{} duplicates after {} restarts",
        dups,
        restarts
    );
    prop_assert!(first_occurrences_in_order(&ids), "out of order: {:?}", ids);
    prop_assert!(log.flush(Duration::from_secs(10)));
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending == 0);
    let k = &s.sinks[0];
    prop_assert_eq!(k.pending, 0, "{:?}", s);
    prop_assert_eq!(k.dropped(), 0, "{:?}", s);
    prop_assert_eq!(k.balance(), 0, "{:?}", s);
    log.shutdown(Duration::from_secs(5));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn nothing_logged_is_lost_whatever_the_receiver_does(
        ops in prop::collection::vec(op(), 1..12),
        durable in any::<bool>(),
    ) {
        run(&ops, durable)?;
    }
}
