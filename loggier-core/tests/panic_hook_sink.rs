//! Issue 9 item 4 with the panic hook installed: a sink that panics on every batch
//! is counted and keeps running, and its panics are not fed back into the pipeline
//! as panic records (which would make it panic again, forever). Global state (panic
//! hook): its own test binary. Needs the file sink (a default feature).
#![cfg(feature = "file")]

use std::sync::Arc;
use std::time::Duration;

use loggier_core::{BoxFuture, FileSink, Loggier, Payload, Record, SendOutcome, ServiceInfo, Sink};

/// Panics on every send.
struct AlwaysPanics;

impl Sink for AlwaysPanics {
    fn name(&self) -> &str {
        "always-panics"
    }
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        Ok(vec![Payload::new(Vec::new(), records.len() as u32)])
    }
    fn send<'a>(&'a mut self, _p: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        panic!("this sink always panics")
    }
    fn is_local(&self) -> bool {
        true
    }
}

#[test]
fn item4_sink_panics_are_counted_not_fed_back_through_the_panic_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.ndjson");
    let guard = loggier_core::init_with(
        Loggier::builder()
            .data_dir(dir.path())
            .flush_interval(Duration::from_millis(10))
            .sink(AlwaysPanics)
            .sink(FileSink::builder(&path).build().expect("file")),
    )
    .expect("init");
    let log = guard.client().clone();
    for i in 0..3 {
        log.info(format!("record {i}"));
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(!log.flush(Duration::from_secs(5)));
    // Give a feedback loop time to show itself.
    std::thread::sleep(Duration::from_millis(300));
    let s = log.stats();
    assert_eq!(s.enqueued, 3, "panic records fed back: {s:?}");
    let k = s.sink("always-panics").expect("sink");
    assert_eq!(k.dropped_failed, 3, "{k:?}");
    assert!(
        k.last_error
            .as_deref()
            .is_some_and(|e| e.contains("this sink always panics")),
        "{k:?}"
    );
    assert_eq!(s.sink("file").expect("file").written, 3);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains("\"panic\""), "{text}");
    drop(log);
    drop(guard);
}
