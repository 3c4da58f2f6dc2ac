//! `tracing` events through the TracingLayer land in the file sink as records.
#![cfg(feature = "tracing")]

use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::{Level, Loggier, TracingLayer};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn events_carry_span_fields_levels_target_scope_and_masking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .log_level(Level::Debug)
        .build()
        .expect("valid");
    let subscriber = tracing_subscriber::registry().with(TracingLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::trace!("below the client level");
        let _scope = Scope::new().request_id("req-42").enter();
        let outer = tracing::info_span!(
            "checkout",
            order_id = "ORD-7",
            attempt = tracing::field::Empty
        );
        let _o = outer.enter();
        outer.record("attempt", 2);
        let inner = tracing::debug_span!("charge", order_id = "ORD-7b", provider = "acme");
        let _i = inner.enter();
        tracing::warn!(target: "payments", retry = 2u64, ratio = 0.5, ok = false, password = "hunter2", "provider slow: {}", "acme");
        tracing::error!(error = %std::io::Error::other("boom"), "charge failed");
    });
    assert!(log.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("log file");
    assert!(!text.contains("hunter2"), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let w = &lines[0];
    assert_eq!(w["level"], "WARNING");
    assert_eq!(w["message"], "provider slow: acme");
    assert_eq!(w["logger"], "payments");
    assert_eq!(
        w["context"],
        json!({"order_id": "ORD-7b", "attempt": 2, "provider": "acme", "retry": 2, "ratio": 0.5, "ok": false,
               "password": "[FILTERED]", "request_id": "req-42"})
    );
    let e = &lines[1];
    assert_eq!(e["level"], "ERROR");
    assert_eq!(e["message"], "charge failed");
    assert_eq!(e["context"]["error"], "boom");
    assert_eq!(e["logger"], module_path!());
}
