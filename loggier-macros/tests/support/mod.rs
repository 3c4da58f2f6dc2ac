//! One global client per test binary, writing to the embedded NDJSON file sink, and
//! readers for what actually landed in the file.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

struct Installed {
    dir: tempfile::TempDir,
    _guard: loggier_core::InitGuard,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the global client once (file sink in a temp dir, no panic hook, level
/// debug) and returns the NDJSON file's path.
pub fn install() -> PathBuf {
    let i = INSTALLED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = loggier_core::Loggier::builder()
            .service_name("macro-tests")
            .data_dir(dir.path())
            .log_level(loggier_core::Level::Debug)
            .capture_uncaught(false)
            .flush_interval(Duration::from_millis(20));
        let guard = loggier_core::init_with(builder).expect("init");
        Installed { dir, _guard: guard }
    });
    i.dir.path().join("loggier.ndjson")
}

/// Flushes the global client and returns every record in the file.
pub fn all_records() -> Vec<Value> {
    let path = install();
    let client = loggier_core::global().expect("global client");
    assert!(client.flush(Duration::from_secs(5)), "flush");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The raw file text (after a flush).
pub fn file_text() -> String {
    let path = install();
    let client = loggier_core::global().expect("global client");
    assert!(client.flush(Duration::from_secs(5)), "flush");
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Records whose `timing.name` or `context.function` is `name`.
pub fn records_named(name: &str) -> Vec<Value> {
    all_records()
        .into_iter()
        .filter(|r| r["timing"]["name"] == name || r["context"]["function"] == name)
        .collect()
}

/// The single record named `name` (fails when there is not exactly one).
pub fn one_named(name: &str) -> Value {
    let mut v = records_named(name);
    assert_eq!(v.len(), 1, "records named {name}: {v:#?}");
    v.remove(0)
}
