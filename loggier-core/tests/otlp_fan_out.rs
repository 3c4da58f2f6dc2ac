//! Fan-out: several sinks at once, one of them stalled. Each sink has its own task,
//! batcher and retry state, so a receiver that accepts the request and never answers
//! must not delay the records of the others.
#![cfg(all(feature = "otlp", feature = "file"))]

mod otlp_support;

use std::time::Duration;

use loggier_core::{FileSink, Level, Loggier, OtlpSink};
use otlp_support::{DEADLINE, HttpCollector, body_text, wait_until};

fn file_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn a_stalled_sink_never_delays_another() {
    let stalled = HttpCollector::start();
    let healthy = HttpCollector::start();
    stalled.stall();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fan-out.ndjson");

    let otlp = |name: &str, c: &HttpCollector| {
        OtlpSink::builder()
            .name(name)
            .endpoint(c.base_url())
            // Far longer than the test: the stalled request stays in flight until released.
            .timeout(Duration::from_secs(120))
            .build()
            .expect("valid sink")
    };
    let log = Loggier::builder()
        .log_level(Level::Info)
        .max_batch_size(5)
        .flush_interval(Duration::from_millis(50))
        // The stalled sink comes first, so dispatch order cannot favour the others.
        .sink(otlp("otlp-stalled", &stalled))
        .sink(otlp("otlp-healthy", &healthy))
        .sink(FileSink::builder(&file).build().expect("file sink"))
        .build()
        .expect("client");

    for i in 0..5 {
        log.info(format!("first {i}"));
    }
    assert!(
        wait_until(|| healthy.records().len() == 5 && file_lines(&file) == 5),
        "healthy sinks got {} / {} records while the other sink is stalled",
        healthy.records().len(),
        file_lines(&file)
    );
    assert!(
        wait_until(|| stalled.arrived() == 1),
        "the stalled sink's first request is in flight"
    );

    // A second wave while that request still hangs.
    for i in 0..5 {
        log.info(format!("second {i}"));
    }
    assert!(
        wait_until(|| healthy.records().len() == 10 && file_lines(&file) == 10),
        "second wave reached the healthy sinks: {} / {}",
        healthy.records().len(),
        file_lines(&file)
    );
    assert!(
        stalled.received().is_empty(),
        "still stalled, nothing answered"
    );
    // The receivers have the records before the sinks see the answers: wait for the
    // counters too.
    let written = |name: &str| log.stats().sink(name).map_or(0, |s| s.written);
    assert!(
        wait_until(|| written("otlp-healthy") == 10 && written("file") == 10),
        "{:?}",
        log.stats()
    );
    let st = log.stats();
    let s = st.sink("otlp-stalled").expect("stalled stats");
    assert_eq!(s.written, 0, "{st:?}");
    assert_eq!(s.pending, 10, "held, not dropped: {st:?}");

    // Released, the stalled sink catches up with every record, in order.
    stalled.release();
    assert!(log.flush(DEADLINE), "flush after release");
    let bodies: Vec<String> = stalled
        .records()
        .iter()
        .filter_map(|r| body_text(r).map(str::to_string))
        .collect();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("first {i}"))
        .chain((0..5).map(|i| format!("second {i}")))
        .collect();
    assert_eq!(bodies, expected);
    let st = log.stats();
    assert!(
        st.sinks.iter().all(|s| s.written == 10 && s.dropped() == 0),
        "{st:?}"
    );
    log.shutdown(DEADLINE);
}
