//! `FullPolicy::Block` with a sink that never drains: `shutdown` still ends within
//! its time budget, the caller blocked on the full channel is released, and every
//! accepted record is accounted for. Before the fix the worker waited for room in
//! the sink's full queue for ever, so it never read the shutdown message: the
//! records behind it stayed in the channel, the blocked caller stayed blocked.
#![cfg(feature = "http-ingest")]

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use loggier_core::FullPolicy;
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client_builder, log_ids, wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);
const CHANNEL: usize = 16;

#[test]
fn block_policy_shutdown_with_a_stalled_sink_ends_in_time_and_counts_every_record() {
    // Takes every request and answers none within the test (nor does the sink
    // give up on it: its timeout is as long).
    let never = Duration::from_secs(3600);
    let rx = Receiver::start();
    rx.set_mode(Mode::Slow { delay: never });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = ClientOpts::default();
    (opts.max_batch_size, opts.http_timeout, opts.caching) = (1, never, false);
    let log = client_builder(&rx.url(), dir.path(), &opts)
        .channel_capacity(CHANNEL)
        .full_policy(FullPolicy::Block)
        .build()
        .expect("client");

    const N: u64 = 2_000;
    let (done_tx, done_rx) = mpsc::channel();
    let producer = {
        let log = log.clone();
        std::thread::spawn(move || {
            log_ids(&log, 0..N);
            let _ = done_tx.send(());
        })
    };
    // Backed up: the sink sits on its first request, its queue is full, the
    // channel is full and the producer waits for room.
    assert_eq!(rx.wait_arrivals(1, WAIT), 1, "the sink never sent");
    let s = wait_stats(&log, WAIT, |s| s.in_channel == CHANNEL as u64);
    assert_eq!(s.in_channel, CHANNEL as u64, "{s:?}");
    assert!(done_rx.try_recv().is_err(), "the producer is not blocked");

    let budget = Duration::from_secs(2);
    let started = Instant::now();
    log.shutdown(budget);
    let took = started.elapsed();
    assert!(
        took <= budget + Duration::from_millis(500),
        "shutdown took {took:?} of a {budget:?} budget"
    );
    // The caller blocked on the full channel is let go (its record and every later
    // one counted `dropped_closed`).
    assert!(
        done_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the producer is still blocked after the shutdown: {:?}",
        log.stats()
    );
    producer.join().expect("producer");

    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(s.enqueued, N, "{s:?}");
    assert_eq!(s.in_channel, 0, "nothing left in the channel: {s:?}");
    assert_eq!(k.pending, 0, "nothing left in the sink: {s:?}");
    assert_eq!(k.written, 0, "{s:?}");
    // Every accepted record is delivered or counted under a named drop: the ones
    // the sink held `dropped_failed`, any the worker held when it stopped waiting
    // for the full sink queue `dropped_backlog`, the channel's `dropped_closed`.
    assert_eq!(k.written + k.dropped() + s.dropped(), N, "{s:?}");
    assert!(k.dropped_failed > 0, "{s:?}");
    assert_conservation(&s);
}
