//! `log::` macros through the installed `LogBridge` land in the file sink as records.
//! Own file: `log` allows one logger per process.
#![cfg(feature = "log")]

use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::{Level, Loggier};
use serde_json::{Value, json};

#[test]
fn log_macros_become_records_with_scope_fields_and_masking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .log_level(Level::Debug)
        .build()
        .expect("valid");
    loggier_core::log_bridge::init(log.clone(), log::LevelFilter::Debug).expect("first logger");

    // `log` allows one logger: a second install is refused with a clear error.
    let err = loggier_core::log_bridge::init(log.clone(), log::LevelFilter::Info)
        .expect_err("already installed");
    assert_eq!(err.setting(), "log_bridge");
    assert!(err.to_string().contains("already installed"), "{err}");

    log::trace!("below the bridge level");
    {
        let _scope = Scope::new()
            .request_id("req-42")
            .field("tenant", "acme")
            .enter();
        log::warn!(target: "payments", retry = 2, ratio = 0.5, ok = false, password = "hunter2", provider = "acme"; "provider slow: {}", "acme");
    }
    log::error!("plain {}", 7);
    log::debug!("debug passes the bridge level");

    // Records raised on the Loggier worker thread (our sinks' HTTP client logs through
    // `log`) are dropped; the guard goes by thread name.
    std::thread::Builder::new()
        .name("loggier-worker".to_string())
        .spawn(|| log::error!("from the worker thread"))
        .expect("thread")
        .join()
        .expect("joined");

    // The client's level applies at run time, whatever `log`'s max level is.
    log.set_level(Level::Error);
    log::warn!("below the client level now");
    log.set_level(Level::Debug);

    assert!(log.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("log file");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("worker thread"), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let w = &lines[0];
    assert_eq!(w["level"], "WARNING");
    assert_eq!(w["message"], "provider slow: acme");
    assert_eq!(w["logger"], "payments");
    assert_eq!(
        w["context"],
        json!({"tenant": "acme", "retry": 2, "ratio": 0.5, "ok": false,
               "password": "[FILTERED]", "provider": "acme", "request_id": "req-42"})
    );
    let e = &lines[1];
    assert_eq!(e["level"], "ERROR");
    assert_eq!(e["message"], "plain 7");
    assert_eq!(e["logger"], module_path!());
    assert!(e.get("context").is_none(), "no scope, no fields: {e}");
    assert_eq!(lines[2]["level"], "DEBUG");
}
