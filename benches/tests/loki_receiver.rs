//! The loopback Loki receiver the pipeline runs rely on: it must count exactly the
//! entries a real `LokiSink` pushed, and refuse (503, counted) while down.

use loggier_bench::{LokiReceiver, count_lines, count_lines_containing, fixtures};
use loggier_core::{LokiSink, SendOutcome, ServiceInfo, Sink};

fn service() -> ServiceInfo {
    ServiceInfo {
        service: "bench".into(),
        environment: "test".into(),
        ..ServiceInfo::default()
    }
}

#[test]
fn counts_the_entries_a_loki_sink_pushed_and_refuses_while_down() {
    let rx = LokiReceiver::start().expect("receiver");
    let mut sink = LokiSink::builder(rx.url()).build().expect("sink");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let records: Vec<std::sync::Arc<_>> = fixtures::mix(40)
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let payloads = sink.encode(&records, &service()).expect("encodes");
    for p in &payloads {
        assert_eq!(rt.block_on(sink.send(p)), SendOutcome::Delivered);
    }
    assert_eq!(rx.entries(), 40);
    assert_eq!(rx.bad_requests(), 0);

    rx.set_down(true);
    let outcome = rt.block_on(sink.send(&payloads[0]));
    assert!(
        matches!(outcome, SendOutcome::Retry { .. }),
        "a 503 must be retryable, got {outcome:?}"
    );
    assert_eq!(rx.refused(), 1);
    assert_eq!(rx.entries(), 40, "nothing counted while down");

    rx.set_down(false);
    assert_eq!(rt.block_on(sink.send(&payloads[0])), SendOutcome::Delivered);
    assert_eq!(rx.entries(), 40 + u64::from(payloads[0].records));
}

#[test]
fn counts_lines_and_matching_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    assert_eq!(count_lines(&path).expect("missing file is 0"), 0);
    std::fs::write(
        &path,
        "starting 2 workers\nGET /api/orders/1 200\nGET /api/orders/2 200\nshutting down\n",
    )
    .expect("write");
    assert_eq!(count_lines(&path).expect("count"), 4);
    assert_eq!(
        count_lines_containing(&path, "/api/orders/").expect("count"),
        2
    );
}
