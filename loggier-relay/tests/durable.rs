//! Durable mode: a 2xx means on disk. With Loki down, every record the relay
//! answered 2xx for is in the SQLite disk queue right after the answer (counted by
//! a read-only connection of the test's own) and reaches a loopback Loki after a
//! restart; when the queue cannot commit (its write lock held by another
//! connection), the relay answers 503 `not_persisted`, not 2xx.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{FakeLoki, TestRelay, http, seed_body};
use loggier_relay::{Relay, RelayConfig, build_pipeline};
use serde_json::{Value, json};

/// A Loki URL that refuses connections, and the socket holding its port (bound,
/// never listening): keep it alive as long as the URL is used. A port that was only
/// freed can be taken by another test's receiver meanwhile, which then accepts the
/// pushes and empties the queue (seen once in the SIGKILL test: "0 records on disk,
/// 2150 answered 202").
fn dead_loki() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    (socket, url)
}

/// Durable relay over `dir` shipping to `loki_url` only. The batch interval is a
/// minute, so a record can only be on disk at the answer because the relay waited
/// for the commit.
async fn durable_relay(dir: tempfile::TempDir, loki_url: &str, config: RelayConfig) -> TestRelay {
    durable_relay_with(dir, loki_url, config, &[]).await
}

async fn durable_relay_with(
    dir: tempfile::TempDir,
    loki_url: &str,
    config: RelayConfig,
    extra: &[(&str, &str)],
) -> TestRelay {
    let mut env: HashMap<String, String> = [
        ("LOGGIER_DATA_DIR", dir.path().display().to_string()),
        ("LOGGIER_DELIVERY_MODE", "durable".into()),
        ("LOGGIER_SINKS", "loki".into()),
        ("LOKI_URL", loki_url.into()),
        ("LOKI_TIMEOUT_MS", "500".into()),
        ("LOGGIER_FLUSH_INTERVAL_MS", "60000".into()),
        ("LOGGIER_MAX_RETRIES", "0".into()),
        ("LOGGIER_NETWORK_CHECK_INTERVAL_MS", "60000".into()),
        ("APP_NAME", "relay-test".into()),
        ("ENV", "test".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let p = build_pipeline(&env).expect("pipeline builds");
    let relay = Relay::builder(p.loggier.clone())
        .config(config)
        .pipeline_config(&p.config)
        .build();
    TestRelay::serve(relay, dir).await
}

fn queue_file(dir: &Path) -> PathBuf {
    dir.join("queue")
        .join(loggier_core::config::QUEUE_FILE_NAME)
}

/// Records of the Loki sink in the queue file, read by a read-only connection.
fn records_on_disk(dir: &Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        queue_file(dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.query_row(
        "SELECT COALESCE(SUM(records), 0) FROM batches WHERE sink = 'loki'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_2xx_record_is_on_disk_at_the_answer_and_reaches_loki_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_dead, dead_url) = dead_loki();
    let relay = durable_relay(dir, &dead_url, RelayConfig::default()).await;
    let path = relay.dir.path().to_path_buf();
    let mut expected = 0;
    let mut messages: Vec<String> = Vec::new();

    // POST /log, the seeds' shape.
    let res = http()
        .post(relay.url("/log"))
        .json(&seed_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    expected += 1;
    messages.push("EscrowCreateAccount error for 615".into());
    assert_eq!(records_on_disk(&path), expected, "after /log");

    // POST /logs, a JSON array and NDJSON.
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"message": format!("array-{i}"), "service": "web"}))
        .collect();
    let res = http()
        .post(relay.url("/logs"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    expected += 3;
    messages.extend((0..3).map(|i| format!("array-{i}")));
    assert_eq!(records_on_disk(&path), expected, "after /logs");
    let res = http()
        .post(relay.url("/logs"))
        .header("content-type", "application/x-ndjson")
        .body("{\"message\":\"nd-0\"}\n{\"message\":\"nd-1\",\"level\":\"warn\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    expected += 2;
    messages.extend(["nd-0".to_string(), "nd-1".to_string()]);
    assert_eq!(records_on_disk(&path), expected, "after NDJSON");

    // POST /api/ingest with a batch id.
    let ingest = json!([
        {"level":"INFO","message":"ingest-0","service":"checkout","environment":"prod"},
        {"level":"ERROR","message":"ingest-1","service":"checkout","environment":"prod"}
    ]);
    let res = http()
        .post(relay.url("/api/ingest"))
        .header("content-type", "application/json")
        .header("x-loggier-batch-id", "durable-batch-1")
        .body(ingest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expected += 2;
    messages.extend(["ingest-0".to_string(), "ingest-1".to_string()]);
    assert_eq!(records_on_disk(&path), expected, "after /api/ingest");

    // Loki push (JSON).
    let push = json!({"streams":[{"stream":{"service":"pusher"},
        "values":[["1796119200000000000","pushed-0"]]}]});
    let res = http()
        .post(relay.url("/api/v1/loki/push"))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expected += 1;
    messages.push("pushed-0".into());
    assert_eq!(records_on_disk(&path), expected, "after the Loki push");
    assert_eq!(relay.loggier.stats().sinks[0].written, 0, "Loki is down");

    // Restart against a Loki that is up: everything answered 2xx arrives.
    relay.loggier.shutdown(Duration::from_millis(200));
    let TestRelay { dir, .. } = relay;
    let loki = FakeLoki::start().await;
    let relay = durable_relay(dir, &loki.url, RelayConfig::default()).await;
    let got = loki.wait_for(messages.len()).await;
    let mut lines: Vec<String> = got
        .iter()
        .map(|e| {
            e.json()["message"]
                .as_str()
                .map_or_else(|| e.line.clone(), str::to_string)
        })
        .collect();
    lines.sort();
    messages.sort();
    assert_eq!(lines, messages, "each 2xx record arrives exactly once");
    let seed = got
        .iter()
        .find(|e| e.line.contains("EscrowCreateAccount"))
        .unwrap();
    assert_eq!(seed.labels["service"], "app");
    assert_eq!(seed.labels["component"], "pubsub");
    assert_eq!(seed.metadata["msg_id"], "123456");
    relay.flush().await;
    assert_eq!(
        records_on_disk(relay.dir.path()),
        0,
        "delivered rows deleted"
    );
    relay.loggier.shutdown(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_cannot_happen_answers_503_not_2xx() {
    let dir = tempfile::tempdir().unwrap();
    let config = RelayConfig {
        persist_timeout: Duration::from_secs(15),
        ..RelayConfig::default()
    };
    let (_dead, dead_url) = dead_loki();
    let relay = durable_relay(dir, &dead_url, config).await;
    let path = relay.dir.path().to_path_buf();
    let res = http()
        .post(relay.url("/log"))
        .json(&json!({"message": "before"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(records_on_disk(&path), 1);

    // Fault: another connection holds the queue's write lock, so no batch can be
    // committed (the queue gives up after its 2 s busy timeout).
    let other = rusqlite::Connection::open(queue_file(&path)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let res = http()
        .post(relay.url("/log"))
        .json(&json!({"message": "locked out"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_persisted", "{v}");

    let ingest = json!([{"level":"INFO","message":"ingest-locked","service":"s"}]);
    let send_ingest = || {
        http()
            .post(relay.url("/api/ingest"))
            .header("content-type", "application/json")
            .header("x-loggier-batch-id", "locked-batch")
            .body(ingest.to_string())
            .send()
    };
    let res = send_ingest().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_persisted", "{v}");
    assert_eq!(records_on_disk(&path), 1, "nothing new committed");

    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    // The retry of the batch is stored, not taken for a duplicate.
    let res = send_ingest().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicate"].as_bool()),
        (Some(1), Some(false)),
        "{v}"
    );
    assert_eq!(records_on_disk(&path), 2);
    let res = http()
        .post(relay.url("/log"))
        .json(&json!({"message": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(records_on_disk(&path), 3);

    let metrics = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loggier_relay_rejected_total{reason=\"not_persisted\"} 2"),
        "{metrics}"
    );
    // The two refused records were dropped by the queue and counted, not lost silently.
    assert_eq!(relay.loggier.stats().sinks[0].dropped_queue_io, 2);
    relay.loggier.shutdown(Duration::from_millis(200));
}

/// A Loki that accepts connections and never answers: each send hangs until the
/// sink's timeout. Commits do not wait for the send in progress, so the relay
/// keeps answering 2xx (and the records are on disk) instead of 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_loki_keeps_answers_2xx_and_on_disk() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let relay = durable_relay_with(
        dir,
        &url,
        RelayConfig::default(),
        &[
            ("LOKI_TIMEOUT_MS", "700"),
            ("LOGGIER_NETWORK_CHECK_INTERVAL_MS", "200"),
        ],
    )
    .await;
    let path = relay.dir.path().to_path_buf();
    for i in 0..8 {
        let res = http()
            .post(relay.url("/log"))
            .json(&json!({"message": format!("hang-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "request {i}");
        assert_eq!(records_on_disk(&path), i + 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let s = relay.loggier.stats();
    assert_eq!(s.sinks[0].written, 0, "{s:?}");
    assert!(
        s.sinks[0].errors >= 1,
        "sends were attempted and timed out: {s:?}"
    );
    relay.loggier.shutdown(Duration::from_millis(200));
}

/// A Loki that accepts connections and never answers, with a send timeout (5 s)
/// far above the answers' bound: while the one push hangs, every request is
/// answered 2xx within a second (a bound on blocking, not a speed claim) with its
/// records on disk, and no second push starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_loki_does_not_hold_up_durable_answers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let relay = durable_relay_with(
        dir,
        &url,
        RelayConfig::default(),
        &[("LOKI_TIMEOUT_MS", "5000")],
    )
    .await;
    let path = relay.dir.path().to_path_buf();
    let post = |i: i64| {
        http()
            .post(relay.url("/log"))
            .json(&json!({"message": format!("hang-{i}")}))
            .send()
    };
    let res = post(0).await.unwrap();
    assert_eq!(res.status(), 202);
    // The first record is committed; its push starts and hangs.
    let start = Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "Loki never got a push");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 1..=20 {
        let t = Instant::now();
        let res = post(i).await.unwrap();
        let waited = t.elapsed();
        assert_eq!(res.status(), 202, "request {i}");
        assert!(
            waited < Duration::from_secs(1),
            "request {i} waited {waited:?} behind the hanging push"
        );
        assert_eq!(records_on_disk(&path), i + 1, "request {i}");
    }
    let s = relay.loggier.stats();
    assert_eq!(s.sinks[0].written, 0, "{s:?}");
    assert_eq!(s.sinks[0].pending_disk, 21, "{s:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "still the one push");
    relay.loggier.shutdown(Duration::from_millis(200));
}

/// The binary in durable mode, killed with SIGKILL (no shutdown, no flush) while
/// clients send: every record it answered 202 for is in the disk queue, and a new
/// relay over the same directory delivers all of them to Loki. (In offline-cache
/// mode the same run loses the open batch: this test fails there.)
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_loses_nothing_answered_2xx_in_durable_mode() {
    use std::collections::HashSet;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (dead, dead_url) = dead_loki();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loggier-relay"))
        .env_clear()
        .env("LOGGIER_RELAY_ADDR", format!("127.0.0.1:{port}"))
        .env("LOGGIER_DATA_DIR", dir.path())
        .env("LOGGIER_DELIVERY_MODE", "durable")
        .env("LOGGIER_SINKS", "loki")
        .env("LOKI_URL", &dead_url)
        .env("LOKI_TIMEOUT_MS", "500")
        .env("LOGGIER_MAX_RETRIES", "0")
        .env("LOGGIER_NETWORK_CHECK_INTERVAL_MS", "60000")
        .env("LOGGIER_FLUSH_INTERVAL_MS", "60000")
        .env("LOGGIER_MAX_BATCH_SIZE", "1000")
        .env("LOGGIER_RELAY_RATE_PER_SEC", "1000000")
        .env("LOGGIER_RELAY_RATE_BURST", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http().get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "relay did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let base = base.clone();
        let accepted = Arc::clone(&accepted);
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                let batch: Vec<Value> = (0..10)
                    .map(|j| json!({"message": format!("t{t}-b{i}-r{j}")}))
                    .collect();
                match http()
                    .post(format!("{base}/logs"))
                    .json(&batch)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => accepted
                        .lock()
                        .unwrap()
                        .extend((0..10).map(|j| format!("t{t}-b{i}-r{j}"))),
                    Ok(r) if r.status() == 503 => {}
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => return, // killed
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    for t in tasks {
        t.await.unwrap();
    }
    let _ = child.wait();
    drop(dead);
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 100, "load ran: {}", accepted.len());
    let on_disk = records_on_disk(dir.path());
    assert!(
        on_disk >= accepted.len() as i64,
        "{on_disk} records on disk, {} answered 202",
        accepted.len()
    );

    let loki = FakeLoki::start().await;
    let relay = durable_relay(dir, &loki.url, RelayConfig::default()).await;
    let until = Instant::now() + Duration::from_secs(60);
    let mut got = loki.entries();
    while got.len() < on_disk as usize && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = loki.entries();
    }
    let delivered: HashSet<String> = got
        .iter()
        .filter_map(|e| e.json()["message"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|m| !delivered.contains(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} records answered 202 lost, e.g. {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
    relay.loggier.shutdown(Duration::from_secs(2));
}
