//! Delivery under injected faults (issue 9): a queue row that cannot be deleted, a
//! long backlog replaying while records keep coming, two clients on one queue, a
//! panicking sink, a stdout nobody reads, records racing shutdown, a corrupt row and
//! private file modes. Each test names the issue item it covers.
#![cfg(all(
    feature = "http-ingest",
    feature = "disk-queue",
    feature = "file",
    feature = "stdout"
))]

mod support;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loggier_core::{
    BoxFuture, FileSink, FullPolicy, HttpSink, Loggier, Payload, Record, SendOutcome, ServiceInfo,
    Sink, StdoutFormat, StdoutSink,
};
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, first_occurrences_in_order, log_ids,
    missing_and_duplicates, wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);

fn queue_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME)
}

fn http_sink(url: &str) -> HttpSink {
    HttpSink::builder(url)
        .api_key("test-key")
        .timeout(Duration::from_millis(500))
        .build()
        .expect("http sink")
}

/// Batch ids the receiver answered 200 for, with how often each arrived.
fn batch_id_counts(rx: &Receiver) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for s in rx.requests() {
        if s.status == 200 {
            *m.entry(s.batch_id.unwrap_or_default()).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn item1_failed_delete_is_not_resent() {
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

    // A second connection takes the write lock: the delete after a successful send
    // cannot commit (busy) for a while.
    let other = rusqlite::Connection::open(queue_file(dir.path())).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    rx.up(Mode::Accept);
    let seen = rx.wait_for(WAIT, |ids| !ids.is_empty());
    assert!(!seen.is_empty(), "the parked batch was sent");
    // Hold the lock across several busy timeouts.
    std::thread::sleep(Duration::from_millis(4500));
    let counts = batch_id_counts(&rx);
    assert_eq!(
        counts.values().copied().max(),
        Some(1),
        "a delivered batch was sent again while its delete failed: {counts:?}"
    );
    let s = log.stats();
    assert_eq!(s.sinks[0].written + s.sinks[0].pending, 5, "{s:?}");
    assert_eq!(s.sinks[0].dropped(), 0, "{s:?}");

    other.execute_batch("ROLLBACK").expect("release");
    drop(other);
    let s = wait_stats(&log, WAIT, |s| {
        s.sinks[0].written == 5 && s.sinks[0].pending == 0
    });
    assert_eq!(s.sinks[0].written, 5, "{s:?}");
    assert_eq!(s.sinks[0].pending_disk, 0, "{s:?}");
    assert_conservation(&s);
    let counts = batch_id_counts(&rx);
    assert_eq!(counts.values().copied().max(), Some(1), "{counts:?}");
    let (missing, dups) = missing_and_duplicates(&rx.accepted_ids(), 5);
    assert!(missing.is_empty() && dups == 0, "{missing:?} {dups}");
    assert!(log.flush(Duration::from_secs(5)));
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn item2_replay_does_not_starve_live_records() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    const PARKED: u64 = 200;
    const LIVE: u64 = 100;
    {
        // 200 one-record batches parked on disk.
        let opts = ClientOpts {
            max_batch_size: 1,
            ..ClientOpts::default()
        };
        let log = client(&rx.url(), dir.path(), &opts);
        log_ids(&log, 0..PARKED);
        log.shutdown(Duration::from_secs(5));
        let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending_disk == PARKED);
        assert_eq!(s.sinks[0].pending_disk, PARKED, "{s:?}");
    }
    rx.up(Mode::Accept);
    let log = Loggier::builder()
        .service_name("delivery-test")
        .data_dir(dir.path())
        .cache_dir(dir.path().join("queue"))
        .channel_capacity(20)
        .max_batch_size(10)
        .flush_interval(Duration::from_millis(20))
        .retry_initial_backoff(Duration::from_millis(10))
        .retry_max_backoff(Duration::from_millis(50))
        .network_check_interval(Duration::from_millis(50))
        .sink(http_sink(&rx.url()))
        .build()
        .expect("client");
    assert_eq!(log.stats().sinks[0].restored, PARKED);
    // Live records at a rate the sink carries easily (one per 2 ms), while the
    // backlog replays one batch per request.
    for i in PARKED..PARKED + LIVE {
        log.event(loggier_core::Level::Info, format!("record {i}"))
            .field("i", i)
            .emit();
        std::thread::sleep(Duration::from_millis(2));
    }
    let ids = rx.wait_for(WAIT, |ids| {
        missing_and_duplicates(ids, PARKED + LIVE).0.is_empty()
    });
    let s = log.stats();
    assert_eq!(s.dropped_queue_full, 0, "{s:?}");
    assert_eq!(s.sinks[0].dropped(), 0, "live records dropped: {s:?}");
    let (missing, dups) = missing_and_duplicates(&ids, PARKED + LIVE);
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(dups, 0);
    assert!(first_occurrences_in_order(&ids), "out of order: {ids:?}");
    assert!(log.flush(Duration::from_secs(5)));
    assert_conservation(&log.stats());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn item3_second_client_on_one_queue_is_refused_naming_the_holder() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = client(&rx.url(), dir.path(), &ClientOpts::default());
    log_ids(&first, 0..3);
    wait_stats(&first, WAIT, |s| s.sinks[0].pending_disk == 3);

    let second = Loggier::builder()
        .data_dir(dir.path())
        .cache_dir(dir.path().join("queue"))
        .sink(http_sink(&rx.url()))
        .build();
    let err = second.expect_err("a second client on the same cache_dir must be refused");
    assert_eq!(err.setting(), "cache_dir", "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "names the holder: {text}"
    );

    // The first client's rows are untouched, and once it is gone the queue opens.
    rx.up(Mode::Accept);
    assert!(first.flush(Duration::from_secs(10)), "{:?}", first.stats());
    assert_eq!(first.stats().sinks[0].written, 3);
    first.shutdown(Duration::from_secs(5));
    drop(first);
    let third = client(&rx.url(), dir.path(), &ClientOpts::default());
    log_ids(&third, 3..5);
    assert!(third.flush(Duration::from_secs(10)));
    assert_eq!(rx.accepted_ids(), vec![0, 1, 2, 3, 4]);
    third.shutdown(Duration::from_secs(5));
}

/// A sink that panics while sending a payload containing `boom`, and counts the
/// records it delivered.
struct Panicky {
    delivered: Arc<AtomicU64>,
    panic_in_encode: bool,
}

impl Sink for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        let text: Vec<u8> = records
            .iter()
            .flat_map(|r| r.message.as_bytes().iter().copied())
            .collect();
        if self.panic_in_encode && records.iter().any(|r| r.message.contains("encode-boom")) {
            panic!("encoder bug");
        }
        Ok(vec![Payload::new(text, records.len() as u32)])
    }
    fn send<'a>(&'a mut self, p: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let delivered = Arc::clone(&self.delivered);
        Box::pin(async move {
            tokio::task::yield_now().await;
            if p.bytes.windows(4).any(|w| w == b"boom") {
                panic!("sink bug: cannot send {} records", p.records);
            }
            delivered.fetch_add(u64::from(p.records), Ordering::SeqCst);
            SendOutcome::Delivered
        })
    }
    fn is_local(&self) -> bool {
        true
    }
}

#[test]
fn item4_a_panicking_sink_counts_the_batch_and_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered = Arc::new(AtomicU64::new(0));
    let log = Loggier::builder()
        .data_dir(dir.path())
        .max_batch_size(1)
        .flush_interval(Duration::from_millis(10))
        .sink(Panicky {
            delivered: Arc::clone(&delivered),
            panic_in_encode: false,
        })
        .sink(
            FileSink::builder(dir.path().join("app.ndjson"))
                .build()
                .expect("file"),
        )
        .build()
        .expect("client");
    log.info("first");
    log.info("boom");
    log.info("after the panic");
    assert!(!log.flush(Duration::from_secs(5)), "a batch was lost");
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].written == 2);
    let k = s.sink("panicky").expect("panicky");
    assert_eq!(k.written, 2, "{s:?}");
    assert_eq!(delivered.load(Ordering::SeqCst), 2);
    assert_eq!(k.dropped_failed, 1, "{k:?}");
    assert!(
        k.last_error
            .as_deref()
            .is_some_and(|e| e.contains("sink bug: cannot send 1 records")),
        "{k:?}"
    );
    assert_eq!(k.dropped_backlog, 0, "{k:?}");
    assert_eq!(s.sink("file").expect("file").written, 3);
    // Still running afterwards.
    log.info("later");
    assert!(log.flush(Duration::from_secs(5)));
    assert_eq!(delivered.load(Ordering::SeqCst), 3);
    log.shutdown(Duration::from_secs(5));
    assert_conservation(&log.stats());
}

#[test]
fn item4_a_panicking_encoder_counts_the_batch_and_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered = Arc::new(AtomicU64::new(0));
    let log = Loggier::builder()
        .data_dir(dir.path())
        .max_batch_size(1)
        .sink(Panicky {
            delivered: Arc::clone(&delivered),
            panic_in_encode: true,
        })
        .build()
        .expect("client");
    log.info("encode-boom");
    log.info("fine");
    assert!(!log.flush(Duration::from_secs(5)), "a batch was lost");
    let k = log.stats().sinks[0].clone();
    assert_eq!(k.dropped_encode, 1, "{k:?}");
    assert!(
        k.last_error
            .as_deref()
            .is_some_and(|e| e.contains("encoder bug")),
        "{k:?}"
    );
    assert_eq!(delivered.load(Ordering::SeqCst), 1);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn item4_out_of_range_durations_are_config_errors() {
    type Set = fn(loggier_core::LoggierBuilder) -> loggier_core::LoggierBuilder;
    let cases: [(&str, Set); 7] = [
        ("flush_interval", |b| b.flush_interval(Duration::MAX)),
        ("http_timeout", |b| b.http_timeout(Duration::MAX)),
        ("network_check_interval", |b| {
            b.network_check_interval(Duration::MAX)
        }),
        ("retry_initial_backoff", |b| {
            b.retry_initial_backoff(Duration::MAX)
                .retry_max_backoff(Duration::MAX)
        }),
        ("retry_max_backoff", |b| b.retry_max_backoff(Duration::MAX)),
        ("cache_max_age", |b| b.cache_max_age(Duration::MAX)),
        ("flush_interval", |b| {
            b.flush_interval(Duration::from_secs(u64::MAX / 2))
        }),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (setting, set) in cases {
        let b = set(Loggier::builder().data_dir(dir.path()));
        let err = b.build().expect_err(setting);
        assert_eq!(err.setting(), setting, "{err}");
        assert!(err.to_string().contains("at most"), "{err}");
    }
}

#[test]
fn item4_flush_and_shutdown_with_duration_max_saturate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .build()
        .expect("client");
    log.info("one");
    assert!(log.flush(Duration::MAX));
    log.shutdown(Duration::MAX);
    let s = log.stats();
    assert_eq!(s.sinks[0].written, 1, "{s:?}");
}

#[cfg(unix)]
#[test]
fn item5_a_stdout_nobody_reads_delays_no_other_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A socket pair whose reading end is never read: the writer blocks once the
    // kernel buffer is full, like a stdout piped into a stalled process.
    let (writer, _never_read) = std::os::unix::net::UnixStream::pair().expect("pair");
    let path = dir.path().join("app.ndjson");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .max_batch_size(50)
        .flush_interval(Duration::from_millis(10))
        .sink(StdoutSink::with_writer(
            StdoutFormat::Json,
            Box::new(writer),
        ))
        .sink(FileSink::builder(&path).build().expect("file"))
        .build()
        .expect("client");
    const N: u64 = 5_000;
    let padding = "x".repeat(400);
    let start = Instant::now();
    for i in 0..N {
        log.event(loggier_core::Level::Info, format!("record {i} {padding}"))
            .field("i", i)
            .emit();
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let logging_took = start.elapsed();
    let s = wait_stats(&log, WAIT, |s| {
        s.sink("file").is_some_and(|f| f.written == N)
    });
    let file = s.sink("file").expect("file");
    let stdout = s.sink("stdout").expect("stdout");
    assert_eq!(
        file.written, N,
        "the file sink stalled behind stdout: {s:?}"
    );
    assert!(
        stdout.written < N,
        "the stdout reader never reads, so it cannot have taken everything: {stdout:?}"
    );
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count() as u64, N);
    assert!(
        logging_took < Duration::from_secs(5),
        "callers waited on a stalled sink: {logging_took:?}"
    );
    // A bounded shutdown returns although stdout is stuck forever.
    log.shutdown(Duration::from_millis(500));
    let s = log.stats();
    assert_eq!(s.sink("file").expect("file").written, N);
}

#[test]
fn item6_records_racing_shutdown_are_all_counted() {
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Loggier::builder()
            .data_dir(dir.path())
            .channel_capacity(64)
            .full_policy(if round % 2 == 0 {
                FullPolicy::DropNewest
            } else {
                FullPolicy::Block
            })
            .build()
            .expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let log = log.clone();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        log.event(loggier_core::Level::Info, "race")
                            .field("t", t)
                            .field("i", i)
                            .emit();
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        log.shutdown(Duration::from_secs(5));
        // Keep logging a little after the shutdown returned.
        std::thread::sleep(Duration::from_millis(5));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("logger thread");
        }
        let s = log.stats();
        let k = &s.sinks[0];
        assert_eq!(
            s.in_channel, 0,
            "round {round}: records stuck in the channel: {s:?}"
        );
        assert_eq!(k.pending, 0, "round {round}: {s:?}");
        assert_eq!(
            s.enqueued,
            s.dropped() + k.written + k.dropped() + k.pending,
            "round {round}: conservation: {s:?}"
        );
        assert_conservation(&s);
    }
}

#[test]
fn item7_a_corrupt_row_is_quarantined_and_later_batches_deliver() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // Creates the queue file.
        let log = client(&rx.url(), dir.path(), &ClientOpts::default());
        log.shutdown(Duration::from_secs(5));
    }
    {
        let c = rusqlite::Connection::open(queue_file(dir.path())).expect("open queue");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        c.execute(
            "INSERT INTO batches (sink, batch_id, created_at_ms, attempts, bytes, records, payload)
             VALUES ('http', ?1, ?2, 0, 11, 2, 'not a blob!')",
            rusqlite::params![uuid::Uuid::now_v7().to_string(), now_ms],
        )
        .expect("insert a TEXT payload");
    }
    let log = client(&rx.url(), dir.path(), &ClientOpts::default());
    assert_eq!(log.stats().sinks[0].restored, 2);
    log_ids(&log, 0..10);
    let ids = rx.wait_for(Duration::from_secs(5), |ids| ids.len() >= 10);
    assert_eq!(ids, (0..10).collect::<Vec<_>>(), "{:?}", log.stats());
    assert!(log.flush(Duration::from_secs(5)) || log.stats().sinks[0].dropped_corrupt == 2);
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.dropped_corrupt, 2, "{k:?}");
    assert_eq!(k.written, 10, "{k:?}");
    assert_eq!(k.pending, 0, "{k:?}");
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[cfg(unix)]
#[test]
fn item11_log_file_and_queue_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("private.ndjson");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .cache_dir(dir.path().join("queue"))
        .delivery_mode(loggier_core::DeliveryMode::Durable)
        .sink(http_sink(&rx.url()))
        .sink(FileSink::builder(&log_path).build().expect("file"))
        .build()
        .expect("client");
    log.info("secret-ish");
    assert!(log.flush(Duration::from_secs(5)));
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&log_path), 0o600, "log file");
    let q = queue_file(dir.path());
    assert_eq!(mode(&q), 0o600, "queue file");
    let mut wal = q.clone().into_os_string();
    wal.push("-wal");
    assert_eq!(mode(std::path::Path::new(&wal)), 0o600, "queue WAL");
    log.shutdown(Duration::from_secs(5));
    let _ = std::io::stdout().flush();
}

#[test]
fn item13_dropping_the_last_client_does_not_wait_out_a_retrying_sink() {
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let dir = tempfile::tempdir().expect("tempdir");
    // No disk queue, long backoffs: a patient shutdown would retry until its 2 s
    // bound; nothing the wait could achieve.
    let log = Loggier::builder()
        .data_dir(dir.path())
        .enable_caching(false)
        .max_batch_size(5)
        .flush_interval(Duration::from_millis(10))
        .max_retries(10)
        .retry_initial_backoff(Duration::from_millis(400))
        .retry_max_backoff(Duration::from_secs(1))
        .sink(http_sink(&rx.url()))
        .build()
        .expect("client");
    log_ids(&log, 0..5);
    rx.wait_requests(1, WAIT);
    // The last handle dropped on an async runtime's thread (a handler, a task).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let took = rt.block_on(async move {
        let t = Instant::now();
        drop(log);
        t.elapsed()
    });
    assert!(
        took < Duration::from_secs(1),
        "dropping the client held the runtime thread for {took:?}"
    );
}
