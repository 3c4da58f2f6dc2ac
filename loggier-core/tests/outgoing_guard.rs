//! `TraceHttp` records a failed call made by the application, and passes through
//! untouched a call made on the Loggier worker thread (where our own sinks send), so
//! delivery can never produce outgoing-call records about itself.
#![cfg(feature = "reqwest")]

use std::time::Duration;

use loggier_core::Loggier;
use loggier_core::outgoing::TraceHttp;
use serde_json::Value;

/// Nothing listens on the discard port of the loopback address: the call fails fast.
const REFUSED: &str = "http://127.0.0.1:9/unreachable";

fn call(client: &reqwest_middleware::ClientWithMiddleware) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(client.get(REFUSED).send());
    assert!(result.is_err(), "nothing listens on {REFUSED}");
}

#[test]
fn calls_on_the_worker_thread_are_never_traced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .build()
        .expect("valid");
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
    )
    .with(TraceHttp::new(log.clone()))
    .build();

    call(&client);
    let worker_client = client.clone();
    std::thread::Builder::new()
        .name("loggier-worker".to_string())
        .spawn(move || call(&worker_client))
        .expect("thread")
        .join()
        .expect("joined");

    assert!(log.flush(Duration::from_secs(10)));
    let records: Vec<Value> = std::fs::read_to_string(dir.path().join("loggier.ndjson"))
        .expect("log file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["logger"], "http.client");
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["timing"]["kind"], "http");
    assert!(
        r["message"]
            .as_str()
            .expect("message")
            .starts_with("Outgoing request failed: GET http://127.0.0.1:9/unreachable"),
        "{r}"
    );
}
