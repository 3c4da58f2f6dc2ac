//! A shutdown that arrives while a send is in flight, after the receiver has
//! accepted the batch but before its answer is back: the batch must not be sent a
//! second time. Cancelling that send left the batch in memory (or its row on disk)
//! as if it had never gone out, and the shutdown's own delivery sent it again —
//! the one duplicated batch of the pipeline bench's outage run (400,100 received
//! of 400,000 sent).
//!
//! The receiver here keeps a batch as soon as its body arrived and answers 200 a
//! little later (well within the client's timeout); each test waits until the
//! receiver holds every record, then shuts down inside that window.
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::time::Duration;

use loggier_core::DeliveryMode;
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, log_ids, missing_and_duplicates,
    wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);
/// How long the receiver holds its answer after keeping the batch.
const ANSWER_DELAY: Duration = Duration::from_millis(400);
/// Records per test: one batch (the batch size is 50).
const N: u64 = 20;

fn opts(mode: DeliveryMode) -> ClientOpts {
    ClientOpts {
        mode,
        // The receiver's answer comes well before the client gives up.
        http_timeout: Duration::from_secs(3),
        ..ClientOpts::default()
    }
}

/// Waits until the receiver has kept records `0..N` (its answer is still pending),
/// shuts the client down, and checks that every record arrived exactly once, was
/// counted delivered, and left nothing on disk for the next start to send again.
fn shut_down_while_answer_pending(rx: &Receiver, log: &loggier_core::Loggier) {
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, N).0.is_empty());
    assert!(
        missing_and_duplicates(&ids, N).0.is_empty(),
        "the receiver never got the batch: {ids:?}"
    );
    // The send is in flight now: the receiver answers ANSWER_DELAY after it kept it.
    log.shutdown(Duration::from_secs(5));
    // A resend would also be held ANSWER_DELAY, but is kept on arrival; give one a
    // moment to land if it was made.
    std::thread::sleep(Duration::from_millis(100));
    let ids = rx.accepted_ids();
    let (missing, dups) = missing_and_duplicates(&ids, N);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(
        dups,
        0,
        "a batch the receiver accepted was sent again at shutdown ({} requests): {ids:?}",
        rx.requests().len()
    );
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.written, N, "{k:?}");
    assert_eq!(k.pending, 0, "{k:?}");
    assert_eq!(k.pending_disk, 0, "delivered batch left on disk: {k:?}");
    assert_eq!(k.dropped(), 0, "{k:?}");
    assert_conservation(&s);
}

#[test]
fn shutdown_during_a_send_from_memory_does_not_resend_it() {
    let rx = Receiver::start();
    rx.set_mode(Mode::CommitThenAnswer {
        delay: ANSWER_DELAY,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &opts(DeliveryMode::OfflineCache));
    log_ids(&log, 0..N);
    shut_down_while_answer_pending(&rx, &log);
}

#[test]
fn shutdown_during_a_replay_from_disk_does_not_resend_it() {
    // Down first: the batch goes to the disk queue and is replayed from there.
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &opts(DeliveryMode::OfflineCache));
    log_ids(&log, 0..N);
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0].pending_disk == N && s.sinks[0].offline
    });
    assert_eq!(s.sinks[0].pending_disk, N, "{:?}", s.sinks[0]);
    rx.up(Mode::CommitThenAnswer {
        delay: ANSWER_DELAY,
    });
    shut_down_while_answer_pending(&rx, &log);
}

#[test]
fn shutdown_during_a_durable_send_does_not_resend_it() {
    let rx = Receiver::start();
    rx.set_mode(Mode::CommitThenAnswer {
        delay: ANSWER_DELAY,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &opts(DeliveryMode::Durable));
    log_ids(&log, 0..N);
    shut_down_while_answer_pending(&rx, &log);
}
