//! What each API call writes to the embedded file sink, read back from the NDJSON file.
#![cfg(feature = "file")]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loggier_core::context::Scope;
use loggier_core::mask::{DEFAULT_SENSITIVE_KEYS, FILTERED};
use loggier_core::{Config, FullPolicy, Level, Loggier, fields};
use serde_json::{Value, json};

const FLUSH: Duration = Duration::from_secs(10);

fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("log file exists");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn client(dir: &Path) -> Loggier {
    Loggier::builder()
        .service_name("orders")
        .environment("test")
        .project_name("shop")
        .version("1.2.3")
        .log_level(Level::Debug)
        .tags(["global-tag"])
        .data_dir(dir)
        .build()
        .expect("valid config")
}

#[test]
fn each_level_and_the_builder_write_one_line_with_identity_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(dir.path());
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    log.trace("below the level: not written");
    log.debug("d");
    log.info("i");
    log.warning("w");
    log.error("e");
    log.critical("c");
    log.event(Level::Info, "built")
        .field("user_id", 7)
        .tag("call-tag")
        .emit();
    assert!(log.flush(FLUSH));
    let lines = read_lines(&dir.path().join("loggier.ndjson"));
    let levels: Vec<&str> = lines
        .iter()
        .map(|l| l["level"].as_str().expect("level"))
        .collect();
    assert_eq!(
        levels,
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "INFO"]
    );
    for l in &lines {
        assert_eq!(l["service"], "orders");
        assert_eq!(l["environment"], "test");
        assert_eq!(l["project"], "shop");
        assert_eq!(l["version"], "1.2.3");
        let ts = l["timestamp"].as_str().expect("timestamp");
        let parsed =
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        assert_eq!(parsed.offset(), time::UtcOffset::UTC);
        assert!(parsed.unix_timestamp() as u64 >= before, "{ts}");
    }
    let built = &lines[5];
    assert_eq!(built["message"], "built");
    assert_eq!(built["context"]["user_id"], 7);
    assert_eq!(built["tags"], json!(["global-tag", "call-tag"]));
    let s = log.stats();
    assert_eq!(s.enqueued, 6, "trace is below the level and not counted");
    assert_eq!(s.sinks[0].written, 6);
}

#[test]
fn context_merges_global_then_scope_then_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(dir.path());
    log.update_global(fields! { "k" => "global", "g" => 1 });
    {
        let _outer = Scope::new()
            .field("k", "outer")
            .field("o", 2)
            .tag("scope-tag")
            .route("/orders/{id}")
            .enter();
        let _inner = log.context(fields! { "k" => "inner", "i" => 3 }).enter();
        loggier_core::info!(log, i = 30, "call {}", 1);
        log.event(Level::Info, "call 2").field("k", "call").emit();
    }
    log.info("after scopes");
    assert!(log.flush(FLUSH));
    let lines = read_lines(&dir.path().join("loggier.ndjson"));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["message"], "call 1");
    assert_eq!(
        lines[0]["context"],
        json!({"k": "inner", "g": 1, "o": 2, "route": "/orders/{id}", "i": 30})
    );
    assert_eq!(lines[0]["tags"], json!(["global-tag", "scope-tag"]));
    assert_eq!(lines[0]["logger"], module_path!());
    assert_eq!(lines[1]["context"]["k"], "call");
    assert_eq!(lines[2]["context"], json!({"k": "global", "g": 1}));
}

#[test]
fn exception_records_type_message_and_source_chain() {
    #[derive(Debug)]
    struct LoadConfig(std::io::Error);
    impl std::fmt::Display for LoadConfig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot load settings")
        }
    }
    impl std::error::Error for LoadConfig {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(dir.path());
    let err = LoadConfig(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "settings.toml: permission denied",
    ));
    log.exception("startup failed", &err);
    assert!(log.flush(FLUSH));
    let lines = read_lines(&dir.path().join("loggier.ndjson"));
    let e = &lines[0]["exception"];
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        e["type"].as_str().expect("type").ends_with("LoadConfig"),
        "{e}"
    );
    assert_eq!(e["message"], "cannot load settings");
    assert_eq!(e["chain"][0]["message"], "settings.toml: permission denied");
}

#[test]
fn every_default_secret_key_is_masked_nested_and_never_reaches_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .sensitive_fields(["favourite_colour"])
        .build()
        .expect("valid");
    let mut nested = serde_json::Map::new();
    for (i, k) in DEFAULT_SENSITIVE_KEYS.iter().enumerate() {
        nested.insert((*k).to_string(), json!(format!("s3cr3t-{i}")));
        nested.insert(
            k.to_ascii_uppercase().replace('_', "-"),
            json!(format!("s3cr3t-UP-{i}")),
        );
    }
    log.update_global(fields! { "api_key" => "s3cr3t-GLOBAL" });
    let _scope = Scope::new().field("session", "s3cr3t-SCOPE").enter();
    log.event(Level::Info, "login")
        .field("user", json!({"name": "ann", "profile": {"credentials": nested}, "list": [{"password": "s3cr3t-LIST"}]}))
        .field("Favourite-Colour", "s3cr3t-CUSTOM")
        .field("refresh_token", "s3cr3t-SUBSTRING")
        .emit();
    assert!(log.flush(FLUSH));
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("read");
    assert!(
        !text.contains("s3cr3t"),
        "a secret reached the file: {text}"
    );
    let line: Value = serde_json::from_str(text.trim()).expect("json");
    let creds = &line["context"]["user"]["profile"]["credentials"];
    assert_eq!(creds["password"], FILTERED);
    assert_eq!(creds["X-API-KEY"], FILTERED);
    assert_eq!(line["context"]["user"]["name"], "ann");
    assert_eq!(line["context"]["api_key"], FILTERED);
    assert_eq!(line["context"]["session"], FILTERED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_never_see_each_others_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(dir.path());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(
            Scope::new()
                .field("task", t)
                .request_id(format!("req-{t}"))
                .instrument(async move {
                    for i in 0..25 {
                        log.event(Level::Info, format!("task {t} step {i}"))
                            .field("step", i)
                            .emit();
                        tokio::task::yield_now().await;
                    }
                }),
        ));
    }
    for t in tasks {
        t.await.expect("task");
    }
    log.info("outside any scope");
    assert!(log.flush_async(FLUSH).await);
    let lines = read_lines(&dir.path().join("loggier.ndjson"));
    assert_eq!(lines.len(), 8 * 25 + 1);
    for l in &lines[..] {
        let msg = l["message"].as_str().expect("message");
        if msg == "outside any scope" {
            assert!(l["context"].get("task").is_none(), "{l}");
            assert!(l["context"].get("request_id").is_none(), "{l}");
            continue;
        }
        let t: i64 = msg
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("task number");
        assert_eq!(l["context"]["task"], t, "{l}");
        assert_eq!(l["context"]["request_id"], format!("req-{t}"), "{l}");
    }
}

/// A sink that holds every send until the test opens the gate: a stalled backend.
struct GatedSink {
    gate: flume::Receiver<()>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl loggier_core::Sink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }
    fn encode(
        &mut self,
        records: &[std::sync::Arc<loggier_core::Record>],
        _service: &loggier_core::ServiceInfo,
    ) -> Result<Vec<loggier_core::Payload>, loggier_core::Error> {
        Ok(vec![loggier_core::Payload::new(
            Vec::new(),
            records.len() as u32,
        )])
    }
    fn send<'a>(
        &'a mut self,
        p: &'a loggier_core::Payload,
    ) -> loggier_core::BoxFuture<'a, loggier_core::SendOutcome> {
        Box::pin(async move {
            let _ = self.gate.recv_async().await;
            self.written
                .fetch_add(u64::from(p.records), std::sync::atomic::Ordering::Relaxed);
            loggier_core::SendOutcome::Delivered
        })
    }
}

#[test]
fn full_channel_drops_newest_without_blocking_and_counts_everything() {
    let (open, gate) = flume::unbounded();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log = Loggier::builder()
        .channel_capacity(16)
        .max_batch_size(4)
        .full_policy(FullPolicy::DropNewest)
        // A custom sink counts as a network sink: keep its disk queue out of the
        // working directory (this test is about the channel, not the queue).
        .enable_caching(false)
        .sink(GatedSink {
            gate,
            written: written.clone(),
        })
        .build()
        .expect("valid");
    // The sink is stalled: 5 000 calls must all return (a blocking call would hang here).
    for i in 0..5_000 {
        log.info(format!("record {i}"));
    }
    let during = log.stats();
    assert_eq!(during.enqueued, 5_000);
    let dropped_during = during.dropped() + during.sinks[0].dropped();
    assert!(
        dropped_during > 4_000,
        "most records must be dropped while stalled: {during:?}"
    );
    // Open the gate for good and drain.
    for _ in 0..10_000 {
        let _ = open.send(());
    }
    assert!(log.flush(FLUSH));
    let s = log.stats();
    let sink = &s.sinks[0];
    assert_eq!(sink.pending, 0);
    assert_eq!(s.in_channel, 0);
    assert_eq!(
        sink.written,
        written.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(
        s.enqueued,
        sink.written + s.dropped() + sink.dropped(),
        "{s:?}"
    );
    assert_eq!(log.pending_count(), 0);
}

#[test]
fn bad_settings_return_config_errors_naming_the_setting() {
    let zero_batch = Loggier::builder()
        .max_batch_size(0)
        .build()
        .expect_err("zero batch");
    assert_eq!(zero_batch.setting(), "max_batch_size");
    let bad_level = Config::from_vars([("LOGGIER_LEVEL", "verbose")]).expect_err("unknown level");
    assert_eq!(bad_level.setting(), "log_level");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let unwritable = Loggier::builder()
        .data_dir(file.join("sub"))
        .build()
        .expect_err("unwritable");
    assert_eq!(unwritable.setting(), "data_dir");
    let mut cfg = Config::from_vars([("LOGGIER_SINKS", "file,carrier-pigeon")]).expect("parses");
    cfg.data_dir = dir.path().to_path_buf();
    let err = loggier_core::LoggierBuilder::from_config(cfg)
        .build()
        .expect_err("unknown sink");
    assert_eq!(err.setting(), "sinks");
    assert!(err.to_string().contains("carrier-pigeon"));
}

#[test]
fn logging_after_shutdown_is_counted_not_lost_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client(dir.path());
    log.info("before");
    log.shutdown(FLUSH);
    log.info("after");
    let s = log.stats();
    assert_eq!(s.sinks[0].written, 1);
    assert_eq!(s.dropped_closed, 1);
    assert_eq!(read_lines(&dir.path().join("loggier.ndjson")).len(), 1);
}

#[cfg(feature = "stdout")]
#[test]
fn stdout_sink_in_logfmt_writes_tskv_lines() {
    #[derive(Clone)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Shared(Default::default());
    let log = Loggier::builder()
        .service_name("svc")
        .sink(loggier_core::StdoutSink::with_writer(
            loggier_core::StdoutFormat::Logfmt,
            Box::new(buf.clone()),
        ))
        .build()
        .expect("valid");
    loggier_core::info!(
        log,
        status_code = 200,
        token = "s3cr3t",
        "Request completed\nlevel='error'"
    );
    assert!(log.flush(FLUSH));
    let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(r"event='Request completed\nlevel=\'error\''"),
        "{text}"
    );
    assert!(text.contains(" status_code=200"), "{text}");
    assert!(text.contains(" token='[FILTERED]'"), "{text}");
    assert!(!text.contains("s3cr3t"));
}
