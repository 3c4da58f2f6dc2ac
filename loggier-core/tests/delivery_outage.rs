//! Delivery through outages and failing receivers: every record arrives, in order,
//! with at most one batch duplicated, and every record is counted.
#![cfg(all(feature = "http-ingest", feature = "disk-queue"))]

mod support;

use std::time::{Duration, Instant};

use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, first_occurrences_in_order, log_ids,
    missing_and_duplicates, wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn outage_then_recovery_delivers_every_record_in_order() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    const N: u64 = 500;

    log_ids(&log, 0..N);
    // Everything ends up parked on disk while the receiver is down.
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0].pending_disk == N && s.sinks[0].offline
    });
    let k = &s.sinks[0];
    assert_eq!(k.pending_disk, N, "{k:?}");
    assert!(k.offline, "{k:?}");
    assert_eq!(k.written, 0);
    assert!(k.cached >= N);
    assert_eq!(log.pending_count(), N);
    assert_conservation(&s);
    assert!(
        !log.flush(Duration::from_secs(5)),
        "flush while down must say so"
    );

    // Back up: the probe finds it and the backlog drains, while new records flow.
    rx.up(Mode::Accept);
    log_ids(&log, N..N + 100);
    let ids = rx.wait_for(WAIT, |ids| {
        missing_and_duplicates(ids, N + 100).0.is_empty()
    });
    let (missing, dups) = missing_and_duplicates(&ids, N + 100);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(dups, 0, "a clean outage (port closed) causes no duplicate");
    assert!(first_occurrences_in_order(&ids), "out of order: {ids:?}");

    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.written, N + 100);
    assert!(k.replayed >= N, "{k:?}");
    assert_eq!(k.pending, 0);
    assert_eq!(k.pending_disk, 0);
    assert_eq!(k.dropped(), 0);
    assert!(!k.offline);
    assert_conservation(&s);
    // Every request carried the bearer key and a batch id.
    for r in rx.requests() {
        assert_eq!(r.authorization.as_deref(), Some("Bearer test-key"));
        assert!(r.batch_id.is_some());
    }
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn server_errors_are_retried_until_they_stop() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    const N: u64 = 120;
    log_ids(&log, 0..N);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].offline);
    assert!(s.sinks[0].retried >= 2, "{:?}", s.sinks[0]);
    assert!(
        s.sinks[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("503"),
        "{:?}",
        s.sinks[0]
    );

    rx.set_mode(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, N).0.is_empty());
    let (missing, dups) = missing_and_duplicates(&ids, N);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(dups, 0, "a 503 means not stored: no duplicates");
    assert!(first_occurrences_in_order(&ids));
    // The same batch was re-sent under the same id.
    let reqs = rx.requests();
    let first_failed = reqs.iter().find(|r| r.status == 503).expect("a 503");
    assert!(
        reqs.iter()
            .any(|r| r.status == 200 && r.batch_id == first_failed.batch_id),
        "the failed batch must be re-sent with its id"
    );
    assert!(log.flush(Duration::from_secs(5)));
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_slow_receiver_times_out_and_duplicates_stay_within_one_batch() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Slow {
        delay: Duration::from_millis(800),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        http_timeout: Duration::from_millis(150),
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    const N: u64 = 150;
    log_ids(&log, 0..N);
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("timeout"))
    });
    assert!(s.sinks[0].errors >= 1, "{:?}", s.sinks[0]);

    rx.set_mode(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, N).0.is_empty());
    let (missing, dups) = missing_and_duplicates(&ids, N);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert!(dups <= opts.max_batch_size, "{dups} duplicates");
    assert!(first_occurrences_in_order(&ids));
    assert!(log.flush(Duration::from_secs(5)));
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn retry_after_is_honoured() {
    let rx = Receiver::start();
    rx.set_mode(Mode::TooMany {
        retry_after_secs: 1,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    log_ids(&log, 0..10);
    let first = rx.wait_requests(1, WAIT);
    assert_eq!(first[0].status, 429);
    rx.set_mode(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 10);
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    let reqs = rx.requests();
    let gap = reqs[1].at.duration_since(reqs[0].at);
    // The backoff alone would retry after at most 10 ms; Retry-After said 1 s.
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_400_drops_the_batch_counts_it_and_does_not_retry() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(400));
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        max_batch_size: 10,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    log_ids(&log, 0..10);
    assert!(
        !log.flush(Duration::from_secs(5)),
        "dropped records: flush is false"
    );
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.dropped_rejected, 10, "{k:?}");
    assert_eq!(k.retried, 0);
    assert_eq!(k.cached, 0, "a refused batch is not parked");
    assert_eq!(k.pending, 0);
    assert!(k.last_error.as_deref().unwrap_or("").contains("400"));
    assert_conservation(&s);
    // The sink stays usable: the next batch goes through.
    rx.set_mode(Mode::Accept);
    log_ids(&log, 10..20);
    assert!(log.flush(Duration::from_secs(5)));
    assert_eq!(rx.accepted_ids(), (10..20).collect::<Vec<_>>());
    // Exactly one request for the refused batch, one for the accepted one.
    assert_eq!(rx.requests().len(), 2);
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn logging_never_waits_on_a_stalled_sink() {
    let rx = Receiver::start();
    // Every request hangs far longer than the whole loop below may take.
    rx.set_mode(Mode::Slow {
        delay: Duration::from_secs(20),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        http_timeout: Duration::from_secs(10),
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    // Let the sink get stuck in its first request.
    log_ids(&log, 0..50);
    assert_eq!(rx.wait_arrivals(1, WAIT), 1);

    const CALLS: u64 = 30_000; // more than the channel holds (10 000)
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 50..50 + CALLS {
        let t = Instant::now();
        log.info(format!("record {i}"));
        slowest = slowest.max(t.elapsed());
    }
    let total = start.elapsed();
    // Had any call waited for the network it would have taken ≥ 10 s (the client
    // timeout) or 20 s (the receiver's stall).
    assert!(
        total < Duration::from_secs(5),
        "{CALLS} calls took {total:?}"
    );
    assert!(slowest < Duration::from_secs(2), "slowest call {slowest:?}");
    let s = log.stats();
    assert_eq!(s.enqueued, CALLS + 50);
    assert!(
        s.dropped_queue_full + s.sinks[0].dropped_backlog > 0,
        "a full channel drops and counts, it does not block: {s:?}"
    );
    eprintln!("{CALLS} info calls against a stalled sink: {total:?}, slowest {slowest:?}");
    // Shut down while the request still hangs: the send is abandoned and what is
    // in memory goes to disk before `shutdown` returns (with margin for a slow
    // machine: the sink gives up the hanging send when the shutdown reaches it, and
    // waits for it again only after parking). A sink that could not park in time
    // would be counted `dropped_failed` at the deadline instead.
    log.shutdown(Duration::from_secs(3));
    let s = log.stats();
    assert_conservation(&s);
    let k = &s.sinks[0];
    assert_eq!(k.pending_disk, k.received, "{s:?}");
}
