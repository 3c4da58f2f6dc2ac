//! The disk queue across restarts: shutdown while the sink is down, a corrupt queue
//! file, the byte bound, and running without a queue.
#![cfg(all(feature = "http-ingest", feature = "disk-queue", feature = "file"))]

mod support;

use std::time::Duration;

use loggier_core::{FileSink, HttpSink, Loggier};
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, first_occurrences_in_order, log_ids,
    missing_and_duplicates, wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn shutdown_while_down_then_the_next_start_delivers_everything() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    const N: u64 = 300;
    {
        let log = client(&rx.url(), dir.path(), &ClientOpts::default());
        log_ids(&log, 0..N);
        log.shutdown(Duration::from_secs(2));
        let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == N);
        let k = &s.sinks[0];
        assert_eq!(k.pending_disk, N, "{k:?}");
        assert_eq!(k.written, 0);
        assert_eq!(k.dropped(), 0);
        assert_conservation(&s);
    }
    assert!(rx.requests().is_empty());

    rx.up(Mode::Accept);
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    // The backlog is known before anything is sent.
    let s = log.stats();
    assert_eq!(s.sinks[0].restored, N);
    assert!(log.pending_count() <= N);
    log_ids(&log, N..N + 50);
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, N + 50).0.is_empty());
    let (missing, dups) = missing_and_duplicates(&ids, N + 50);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(dups, 0);
    assert!(
        first_occurrences_in_order(&ids),
        "restored records go first"
    );
    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.restored, N);
    // The restored records are replayed; records logged while the replay ran are
    // taken in meanwhile and queue behind it on disk (to keep the order), so they
    // may be delivered from disk too.
    assert!(k.replayed >= N && k.replayed <= N + 50, "{k:?}");
    assert_eq!(k.written, N + 50);
    assert_eq!(k.pending, 0);
    assert_eq!(log.pending_count(), 0);
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_corrupt_queue_file_is_moved_aside_and_logging_goes_on() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let queue_dir = dir.path().join("queue");
    std::fs::create_dir_all(&queue_dir).expect("mkdir");
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let file = queue_dir.join(loggier_core::config::QUEUE_FILE_NAME);
    std::fs::write(&file, &garbage).expect("garbage");

    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    let s = log.stats();
    assert_eq!(s.disk_queue_recoveries, 1, "{s:?}");
    assert!(
        s.disk_queue_error
            .as_deref()
            .is_some_and(|e| e.contains("corrupt-")),
        "{s:?}"
    );
    let aside: Vec<_> = std::fs::read_dir(&queue_dir)
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("read"), garbage);

    // The fresh queue works: an outage is cached and replayed.
    log_ids(&log, 0..20);
    assert!(log.flush(Duration::from_secs(5)));
    rx.down();
    log_ids(&log, 20..40);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == 20);
    assert_eq!(s.sinks[0].pending_disk, 20, "{s:?}");
    rx.up(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 40);
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    assert!(log.flush(Duration::from_secs(5)));
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn a_tiny_byte_bound_drops_the_oldest_batches_and_counts_them() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        max_batch_size: 10,
        cache_max_bytes: 2_000,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    const N: u64 = 200;
    log_ids(&log, 0..N);
    let s = wait_stats(&log, WAIT, |s| {
        let k = &s.sinks[0];
        k.offline && k.pending_disk + k.dropped_cache_full == N
    });
    let k = &s.sinks[0];
    assert!(k.dropped_cache_full > 0, "{k:?}");
    assert!(k.pending_disk > 0, "{k:?}");
    assert_eq!(k.pending_disk + k.dropped_cache_full, N, "{k:?}");
    assert_conservation(&s);
    // The last push may still be evicting: its batches are counted pending as soon
    // as they are committed, and move to `dropped_cache_full` one by one while the
    // byte bound is enforced. So what was kept is read once everything is settled
    // (delivered), not from this snapshot.

    rx.up(Mode::Accept);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending == 0);
    let k = &s.sinks[0];
    assert_eq!(k.pending, 0, "{k:?}");
    let kept = k.written;
    assert!(kept > 0, "{k:?}");
    assert_eq!(kept + k.dropped_cache_full, N, "{k:?}");
    assert_conservation(&s);
    let ids = rx.wait_for(WAIT, |ids| ids.len() as u64 >= kept);
    // What survived is the newest records, all of them, in order, once.
    assert_eq!(ids, (N - kept..N).collect::<Vec<_>>());
    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    assert_eq!(s.sinks[0].written, kept);
    assert_eq!(s.sinks[0].pending, 0);
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn without_caching_a_dead_sink_drops_after_its_retries_and_counts() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        caching: false,
        max_batch_size: 10,
        ..ClientOpts::default()
    };
    let log = client(&rx.url(), dir.path(), &opts);
    log_ids(&log, 0..10);
    assert!(!log.flush(Duration::from_secs(5)));
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.dropped_failed, 10, "{k:?}");
    assert_eq!(k.cached, 0);
    assert_eq!(k.retried, u64::from(opts.max_retries));
    // First attempt plus max_retries retries, all carrying the same batch id.
    let reqs = rx.requests();
    assert_eq!(reqs.len() as u32, 1 + opts.max_retries);
    assert!(reqs.iter().all(|r| r.batch_id == reqs[0].batch_id));
    assert!(
        !dir.path().join("queue").exists(),
        "no queue without caching"
    );
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn local_sinks_never_use_the_disk_queue() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.ndjson");
    let log = Loggier::builder()
        .cache_dir(dir.path().join("queue"))
        .max_batch_size(10)
        .flush_interval(Duration::from_millis(20))
        .max_retries(0)
        .retry_initial_backoff(Duration::from_millis(10))
        .retry_max_backoff(Duration::from_millis(20))
        .network_check_interval(Duration::from_millis(50))
        .sink(FileSink::builder(&file).build().expect("file sink"))
        .sink(
            HttpSink::builder(rx.url())
                .timeout(Duration::from_millis(500))
                .build()
                .expect("http sink"),
        )
        .build()
        .expect("client");
    log_ids(&log, 0..30);
    let s = wait_stats(&log, WAIT, |s| {
        s.sink("http").is_some_and(|k| k.pending_disk == 30)
            && s.sink("file").is_some_and(|k| k.written == 30)
    });
    let f = s.sink("file").expect("file");
    assert_eq!(f.written, 30);
    assert_eq!((f.cached, f.pending_disk, f.pending), (0, 0, 0));
    let h = s.sink("http").expect("http");
    assert_eq!(h.pending_disk, 30, "{h:?}");
    let lines = std::fs::read_to_string(&file)
        .expect("file")
        .lines()
        .count();
    assert_eq!(lines, 30);
    assert_eq!(log.pending_count(), 30);
    for k in &s.sinks {
        assert_eq!(k.balance(), 0, "{k:?}");
    }
    log.shutdown(Duration::from_secs(2));
}
