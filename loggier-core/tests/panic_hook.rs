//! The panic hook installed by `init` (global state: its own test binary).
//! It reads the record back from the default file sink (a default feature).
#![cfg(feature = "file")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loggier_core::Config;
use serde_json::Value;

#[test]
fn panic_writes_one_critical_record_and_chains_to_the_previous_hook() {
    let previous_calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&previous_calls);
    std::panic::set_hook(Box::new(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    }));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.service_name = "panicky".into();
    let first = loggier_core::init(config.clone()).expect("init");
    drop(first);
    // A second init must not chain the hook twice (the panic is recorded once).
    let guard = loggier_core::init(config).expect("init again");

    let joined = std::thread::Builder::new()
        .name("job-runner".into())
        .spawn(|| {
            let v: Vec<u32> = Vec::new();
            let i = v.len() + 3;
            v[i]
        })
        .expect("spawn")
        .join();
    assert!(joined.is_err(), "the thread panicked");
    assert_eq!(
        previous_calls.load(Ordering::SeqCst),
        1,
        "previous hook chained once"
    );

    // The hook flushed before returning: the record is already in the file.
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("log file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let r = &lines[0];
    assert_eq!(r["level"], "CRITICAL");
    assert_eq!(r["logger"], "panic");
    assert_eq!(r["service"], "panicky");
    assert!(
        r["message"]
            .as_str()
            .expect("msg")
            .contains("index out of bounds"),
        "{r}"
    );
    assert_eq!(r["context"]["thread"], "job-runner");
    assert!(
        r["context"]["file"]
            .as_str()
            .expect("file")
            .ends_with("panic_hook.rs")
    );
    assert!(
        r["exception"]["stacktrace"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    drop(guard);
    assert!(loggier_core::global().is_none());
    // With no global client the hook only chains.
    let _ = std::thread::spawn(|| panic!("after guard")).join();
    assert_eq!(previous_calls.load(Ordering::SeqCst), 2);
    let after = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("log file");
    assert_eq!(after.lines().count(), 1);
}
