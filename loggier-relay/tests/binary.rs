//! The `loggier-relay` binary: zero-setup defaults, and SIGTERM during load loses no
//! record that was answered 2xx.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loggier_relay::RelayConfig;
use serde_json::{Value, json};

#[test]
fn defaults_need_no_setup() {
    let c = RelayConfig::from_lookup(|_| None).unwrap();
    assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
    assert!(c.keys.is_empty());
    let core = loggier_core::Config::from_vars(Vec::<(String, String)>::new()).unwrap();
    assert_eq!(core.sinks, ["file"]);
    assert_eq!(
        core.default_log_file(),
        std::path::Path::new("./loggier-data").join("loggier.ndjson")
    );
    // Open mode on a public address must be asked for.
    let e =
        RelayConfig::from_lookup(|k| (k == "LOGGIER_RELAY_ADDR").then(|| "0.0.0.0:8000".into()))
            .unwrap_err();
    assert_eq!(e.setting(), "LOGGIER_RELAY_ALLOW_ANONYMOUS");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_loses_nothing_answered_2xx() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_loggier-relay"))
        .env_clear()
        .env("LOGGIER_RELAY_ADDR", format!("127.0.0.1:{port}"))
        .env("LOGGIER_DATA_DIR", dir.path())
        // Long interval: records are still batched in memory when SIGTERM arrives.
        .env("LOGGIER_FLUSH_INTERVAL_MS", "2000")
        .env("LOGGIER_MAX_BATCH_SIZE", "1000")
        .env("APP_NAME", "sigterm-test")
        .env("LOGGIER_RELAY_RATE_PER_SEC", "1000000")
        .env("LOGGIER_RELAY_RATE_BURST", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "relay did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let client = client.clone();
        let base = base.clone();
        let accepted = Arc::clone(&accepted);
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let batch: Vec<Value> = (0..10)
                    .map(|j| json!({"message": format!("t{t}-b{i}-r{j}"), "level": "info"}))
                    .collect();
                match client
                    .post(format!("{base}/logs"))
                    .json(&batch)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => {
                        accepted
                            .lock()
                            .unwrap()
                            .extend((0..10).map(|j| format!("t{t}-b{i}-r{j}")));
                    }
                    Ok(r) if r.status() == 503 => {}
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => return, // server gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    for t in tasks {
        t.await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr).to_string();
    assert!(
        status.status.success(),
        "exit {:?}: {stderr}",
        status.status
    );
    assert!(stderr.contains("flushed: true"), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).unwrap();
    let written: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let unique: HashSet<&String> = written.iter().collect();
    assert_eq!(unique.len(), written.len(), "no duplicates");
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 100, "load ran: {}", accepted.len());
    let missing: Vec<&String> = accepted.iter().filter(|m| !unique.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted records lost, e.g. {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
}
