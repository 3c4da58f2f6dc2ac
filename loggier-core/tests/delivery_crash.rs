//! Durable mode: every batch is committed before its first send, so a process killed
//! with SIGKILL after `flush()` returned loses nothing it had logged before.
//!
//! The child process is this test binary itself, re-run with a filter that selects
//! the ignored `crash_child` test and environment variables that tell it what to do.
#![cfg(all(feature = "http-ingest", feature = "disk-queue", unix))]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loggier_core::DeliveryMode;
use support::{
    ClientOpts, Mode, Receiver, assert_conservation, client, log_ids, missing_and_duplicates,
    wait_stats,
};

const WAIT: Duration = Duration::from_secs(15);
const N: u64 = 400;
const URL_VAR: &str = "LOGGIER_TEST_CHILD_URL";
const DIR_VAR: &str = "LOGGIER_TEST_CHILD_DIR";

fn durable() -> ClientOpts {
    ClientOpts {
        mode: DeliveryMode::Durable,
        ..ClientOpts::default()
    }
}

/// The child: logs `N` records, flushes, prints `flushed <result>`, then keeps
/// logging until it is killed. Does nothing unless run by the parent test.
#[test]
#[ignore = "child process of durable_mode_survives_kill_9"]
fn crash_child() {
    let (Ok(url), Ok(dir)) = (std::env::var(URL_VAR), std::env::var(DIR_VAR)) else {
        return;
    };
    let log = client(&url, std::path::Path::new(&dir), &durable());
    log_ids(&log, 0..N);
    let ok = log.flush(Duration::from_secs(10));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "flushed {ok}");
    let _ = out.flush();
    drop(out);
    // Keep logging; the parent kills us at some point in here.
    let mut i = N;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        log_ids(&log, i..i + 10);
        i += 10;
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn durable_mode_survives_kill_9() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(URL_VAR, rx.url())
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let flushed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // libtest prints "test crash_child ... " before it, on the same line.
            Ok(l) if l.contains("flushed ") => {
                break l[l.find("flushed ").unwrap_or(0)..].trim().to_string();
            }
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("child never printed flushed: {e}");
            }
        }
    };
    assert_eq!(flushed, "flushed true");
    // Let it log (and commit) a little more, then SIGKILL it mid-flight.
    std::thread::sleep(Duration::from_millis(150));
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(rx.requests().is_empty(), "the receiver was down");

    // Second run on the same queue file, receiver up.
    rx.up(Mode::Accept);
    let log = client(&rx.url(), dir.path(), &durable());
    let restored = log.stats().sinks[0].restored;
    assert!(restored >= N, "only {restored} records were on disk");
    let ids = rx.wait_for(WAIT, |ids| missing_and_duplicates(ids, N).0.is_empty());
    let (missing, dups) = missing_and_duplicates(&ids, N);
    assert!(missing.is_empty(), "lost after kill -9: {missing:?}");
    assert_eq!(dups, 0);
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].written == restored);
    let k = &s.sinks[0];
    assert_eq!(k.written, restored, "{k:?}");
    assert_eq!(k.replayed, restored);
    assert_eq!(k.pending, 0);
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn durable_mode_commits_every_batch_and_deletes_it_after_the_ack() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &durable());
    log_ids(&log, 0..200);
    assert!(log.flush(Duration::from_secs(5)));
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 200);
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
    let s = wait_stats(&log, WAIT, |s| s.sinks[0].pending == 0);
    let k = &s.sinks[0];
    assert_eq!(k.cached, 200, "every batch went through the disk: {k:?}");
    assert_eq!(k.written, 200);
    assert_eq!(k.replayed, 0, "first sends are not replays");
    assert_eq!(k.pending_disk, 0);
    assert_conservation(&s);
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn durable_flush_is_true_while_down_because_the_records_are_on_disk() {
    let rx = Receiver::start_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(&rx.url(), dir.path(), &durable());
    log_ids(&log, 0..120);
    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    assert_eq!(s.sinks[0].pending_disk, 120, "{s:?}");
    assert_conservation(&s);
    rx.up(Mode::Accept);
    let ids = rx.wait_for(WAIT, |ids| ids.len() >= 120);
    assert_eq!(ids, (0..120).collect::<Vec<_>>());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn durable_without_caching_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = loggier_core::Loggier::builder()
        .data_dir(dir.path())
        .delivery_mode(DeliveryMode::Durable)
        .enable_caching(false)
        .build()
        .expect_err("durable needs the queue");
    assert_eq!(err.setting(), "delivery_mode");
}
