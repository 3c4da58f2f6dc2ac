//! The Loggier HTTP ingest sink against a real receiver on 127.0.0.1: wire format,
//! headers, and how each answer is classified.
#![cfg(feature = "http-ingest")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use loggier_core::{HttpSink, Level, Record, SendOutcome, ServiceInfo, Sink};
use support::{Mode, Receiver};

fn records(n: u64) -> Vec<Arc<Record>> {
    (0..n)
        .map(|i| Record::new(Level::Info, format!("record {i}")).with_field("i", i))
        .map(Arc::new)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn posts_gzip_json_array_with_bearer_key_and_batch_id() {
    let rx = Receiver::start();
    let mut sink = HttpSink::builder(rx.url())
        .api_key("k-123")
        .build()
        .expect("build");
    let svc = ServiceInfo {
        service: "billing".into(),
        environment: "test".into(),
        ..ServiceInfo::default()
    };
    let recs = records(3);
    let payloads = sink.encode(&recs, &svc).expect("encode");
    assert_eq!(payloads.len(), 1);
    let outcome = runtime().block_on(sink.send(&payloads[0]));
    assert_eq!(outcome, SendOutcome::Delivered);

    let seen = rx.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.authorization.as_deref(), Some("Bearer k-123"));
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    assert_eq!(req.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(
        req.batch_id.as_deref(),
        Some(payloads[0].id.to_string().as_str())
    );
    assert_eq!(req.ids, [0, 1, 2]);
    assert_eq!(req.records[1]["message"], "record 1");
    assert_eq!(req.records[1]["level"], "INFO");
    assert_eq!(req.records[1]["service"], "billing");
    assert_eq!(req.records[1]["environment"], "test");
}

#[test]
fn answers_are_classified_retry_reject_and_retry_after() {
    let rx = Receiver::start();
    let mut sink = HttpSink::builder(rx.url())
        .timeout(Duration::from_millis(300))
        .build()
        .expect("build");
    let p = sink
        .encode(&records(1), &ServiceInfo::default())
        .expect("encode")
        .remove(0);
    let rt = runtime();

    rx.set_mode(Mode::Status(500));
    assert!(matches!(
        rt.block_on(sink.send(&p)),
        SendOutcome::Retry {
            retry_after: None,
            ..
        }
    ));

    rx.set_mode(Mode::TooMany {
        retry_after_secs: 7,
    });
    match rt.block_on(sink.send(&p)) {
        SendOutcome::Retry {
            retry_after,
            reason,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    rx.set_mode(Mode::Status(400));
    match rt.block_on(sink.send(&p)) {
        SendOutcome::Reject { reason } => {
            assert!(reason.contains("400"), "{reason}");
            assert!(reason.contains("receiver answered 400"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    rx.set_mode(Mode::Slow {
        delay: Duration::from_secs(2),
    });
    match rt.block_on(sink.send(&p)) {
        SendOutcome::Retry { reason, .. } => assert!(reason.contains("timeout"), "{reason}"),
        other => panic!("{other:?}"),
    }

    rx.down();
    assert!(matches!(
        rt.block_on(sink.send(&p)),
        SendOutcome::Retry { .. }
    ));

    rx.up(Mode::Accept);
    assert_eq!(rt.block_on(sink.send(&p)), SendOutcome::Delivered);
    // Every attempt carried the same batch id.
    let ids: std::collections::HashSet<_> = rx
        .requests()
        .into_iter()
        .filter_map(|s| s.batch_id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(rx.accepted_ids(), [0]);
}
