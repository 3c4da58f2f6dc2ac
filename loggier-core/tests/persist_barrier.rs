//! `Loggier::persist`: the barrier a relay awaits before answering 2xx. In durable
//! mode every record logged before it is committed to the disk queue (counted by
//! opening the SQLite file read-only) without waiting for the sink, and arrives
//! after a restart; a commit that fails answers `false`; in offline-cache mode it
//! answers once the records are handed to the sinks.
#![cfg(all(feature = "http-ingest", feature = "disk-queue", feature = "file"))]

mod support;

use std::time::Duration;

use loggier_core::{DeliveryMode, FileSink, HttpSink, Loggier};
use support::{ClientOpts, Mode, Receiver, client, log_ids, missing_and_duplicates};

const WAIT: Duration = Duration::from_secs(15);

fn queue_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME)
}

/// Records in the queue file's rows, read by a read-only connection of our own.
fn records_on_disk(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        queue_file(dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("read-only connection");
    c.query_row(
        "SELECT COALESCE(SUM(records), 0) FROM batches WHERE sink = 'http'",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

fn durable() -> ClientOpts {
    ClientOpts {
        mode: DeliveryMode::Durable,
        ..ClientOpts::default()
    }
}

#[test]
fn durable_persist_commits_earlier_records_to_disk_without_waiting_for_the_sink() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = client(&rx.url(), dir.path(), &durable());
        log_ids(&log, 0..30);
        assert!(log.persist(WAIT), "{:?}", log.stats());
        // Right after the answer: all 30 on disk, none delivered (the sink is down).
        assert_eq!(records_on_disk(dir.path()), 30);
        let s = log.stats();
        assert_eq!(s.sinks[0].written, 0, "{s:?}");
        assert_eq!(s.sinks[0].pending_disk, 30, "{s:?}");
        log_ids(&log, 30..35);
        assert!(log.persist(WAIT));
        assert_eq!(records_on_disk(dir.path()), 35);
        // A crash now would keep them: simulate with an impatient exit.
        log.shutdown(Duration::from_millis(200));
    }
    rx.up(Mode::Accept);
    let log = client(&rx.url(), dir.path(), &durable());
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 35);
    let (missing, _) = missing_and_duplicates(&ids, 35);
    assert!(missing.is_empty(), "missing after restart: {missing:?}");
    assert!(log.flush(WAIT));
    assert_eq!(records_on_disk(dir.path()), 0);
    log.shutdown(WAIT);
}

#[test]
fn durable_persist_answers_false_when_the_commit_fails_and_recovers() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &durable());
    log_ids(&log, 0..3);
    assert!(log.persist(WAIT));
    // Another connection holds the write lock: commits fail after the queue's busy
    // timeout (2 s), the batch is dropped and counted, the barrier says so.
    let other = rusqlite::Connection::open(queue_file(dir.path())).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    log_ids(&log, 3..6);
    assert!(
        !log.persist(WAIT),
        "a failed commit must not be reported as persisted"
    );
    let s = log.stats();
    assert_eq!(s.sinks[0].dropped_queue_io, 3, "{s:?}");
    other.execute_batch("ROLLBACK").expect("release");
    drop(other);
    // The failure was reported once; the next barrier covers only new records.
    log_ids(&log, 6..8);
    assert!(log.persist(WAIT), "{:?}", log.stats());
    assert_eq!(records_on_disk(dir.path()), 5);
    log.shutdown(Duration::from_millis(200));
}

#[test]
fn durable_persist_waits_for_a_local_sink_to_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.ndjson");
    let log = Loggier::builder()
        .service_name("persist-test")
        .data_dir(dir.path())
        .cache_dir(dir.path().join("queue"))
        .delivery_mode(DeliveryMode::Durable)
        .flush_interval(Duration::from_secs(60))
        .sink(FileSink::builder(&file).build().expect("file sink"))
        .build()
        .expect("client");
    log_ids(&log, 0..7);
    assert!(log.persist(WAIT));
    // The batch was due in 60 s; the barrier sealed and wrote it.
    let text = std::fs::read_to_string(&file).expect("file written");
    assert_eq!(text.lines().count(), 7);
    log.shutdown(WAIT);
    assert!(!log.persist(WAIT), "a shut-down client persists nothing");
}

#[test]
fn offline_cache_persist_answers_once_handed_to_the_sinks() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = HttpSink::builder(rx.url())
        .api_key("test-key")
        .timeout(Duration::from_millis(500))
        .build()
        .expect("http sink");
    let log = Loggier::builder()
        .service_name("persist-test")
        .data_dir(dir.path())
        .cache_dir(dir.path().join("queue"))
        .flush_interval(Duration::from_secs(60))
        .sink(sink)
        .build()
        .expect("client");
    log_ids(&log, 0..4);
    assert!(log.persist(WAIT));
    let s = log.stats();
    // Handed over (the batch waits in the sink's memory), not delivered.
    assert_eq!(s.dispatched, 4, "{s:?}");
    assert_eq!(s.sinks[0].written, 0, "{s:?}");
    assert_eq!(s.sinks[0].pending, 4, "{s:?}");
    log.shutdown(Duration::from_millis(200));
}

/// A receiver on 127.0.0.1 that accepts TCP connections and never answers: every
/// accepted socket is held open (never read, never written) until it is dropped.
struct Hanging {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hanging {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        held.push(sock);
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Hanging {
            addr,
            accepted,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/api/ingest", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn durable_persist_is_answered_while_a_send_hangs_and_the_records_are_on_disk() {
    use std::time::Instant;
    let hang = Hanging::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClientOpts {
        mode: DeliveryMode::Durable,
        http_timeout: Duration::from_secs(5),
        max_retries: 0,
        // No probe of the hanging receiver within the test: one send only.
        network_check_interval: Duration::from_secs(60),
        ..ClientOpts::default()
    };
    let log = client(&hang.url(), dir.path(), &opts);
    log_ids(&log, 0..10);
    assert!(log.persist(WAIT), "{:?}", log.stats());
    // The batch is committed; its send is now under way and will hang for 5 s.
    let start = Instant::now();
    while hang.accepted() == 0 && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(hang.accepted(), 1, "the sink never connected");
    std::thread::sleep(Duration::from_millis(100));
    // Every stats snapshot taken meanwhile balances (records counted exactly once
    // while they move from the task's memory to the disk queue during the send).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            let mut unbalanced = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let k = log.stats().sinks[0].clone();
                if k.balance() != 0 && unbalanced.len() < 5 {
                    unbalanced.push(k);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            unbalanced
        })
    };
    let mut expected: i64 = 10;
    for round in 0..5u64 {
        let first = 10 + round * 20;
        log_ids(&log, first..first + 20);
        expected += 20;
        let t = Instant::now();
        assert!(log.persist(WAIT), "round {round}: {:?}", log.stats());
        let waited = t.elapsed();
        // A bound on blocking (the send's timeout is 5 s), not a speed claim.
        assert!(
            waited < Duration::from_secs(1),
            "round {round}: persist waited {waited:?} behind the hanging send"
        );
        assert_eq!(records_on_disk(dir.path()), expected, "round {round}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let unbalanced = reader.join().expect("reader");
    assert!(unbalanced.is_empty(), "unbalanced: {unbalanced:#?}");
    let s = log.stats();
    let k = &s.sinks[0];
    assert_eq!(k.written, 0, "{k:?}");
    assert_eq!(k.pending_disk, expected as u64, "{k:?}");
    assert_eq!(k.balance(), 0, "{k:?}");
    // Still the one send: nothing was sent twice meanwhile.
    assert_eq!(hang.accepted(), 1);
    log.shutdown(Duration::from_millis(200));
    drop(log);

    // A restart delivers every one of them to a working receiver.
    let rx = Receiver::start();
    let log = client(&rx.url(), dir.path(), &durable());
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= expected as usize);
    let (missing, _) = missing_and_duplicates(&ids, expected as u64);
    assert!(missing.is_empty(), "missing after restart: {missing:?}");
    assert!(log.flush(WAIT));
    assert_eq!(records_on_disk(dir.path()), 0);
    log.shutdown(WAIT);
}
