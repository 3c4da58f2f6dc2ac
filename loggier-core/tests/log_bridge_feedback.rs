//! The `log` bridge never feeds our own delivery back into the pipeline: reqwest logs
//! `starting new connection` through `log` both for the application's calls and for
//! the HTTP ingest sink's; only the application's arrives at the receiver. Own file:
//! installs the process-wide `log` logger.
#![cfg(all(feature = "log", feature = "http-ingest"))]

mod support;

use std::time::Duration;

use loggier_core::{HttpSink, Level, Loggier};
use support::Receiver;

const CONNECT: &str = "starting new connection";

#[test]
fn reqwest_logs_from_the_sink_worker_are_not_recorded() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .log_level(Level::Trace)
        .enable_caching(false)
        .flush_interval(Duration::from_millis(20))
        .sink(HttpSink::builder(rx.url()).build().expect("sink"))
        .build()
        .expect("valid");
    loggier_core::log_bridge::init(log.clone(), log::LevelFilter::Trace).expect("bridge");

    // The application's own reqwest call logs through `log` on this thread: recorded.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app_client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let _ = rt.block_on(app_client.get(rx.url()).send());
    log::info!("application record");

    // The sink connects (and reqwest logs it) on the worker thread while delivering.
    assert!(log.flush(Duration::from_secs(10)));
    // Anything fed back would be in a later batch: give it one more round.
    log::info!("second application record");
    assert!(log.flush(Duration::from_secs(10)));

    let records: Vec<serde_json::Value> =
        rx.requests().into_iter().flat_map(|r| r.records).collect();
    let messages: Vec<&str> = records
        .iter()
        .filter_map(|r| r["message"].as_str())
        .collect();
    assert!(messages.contains(&"application record"), "{messages:?}");
    assert!(
        messages.contains(&"second application record"),
        "{messages:?}"
    );
    let connects: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(CONNECT))
        })
        .collect();
    assert_eq!(
        connects.len(),
        1,
        "only the application's connection, never the sink's: {connects:?}"
    );
    assert!(
        connects[0]["logger"]
            .as_str()
            .is_some_and(|l| l.starts_with("reqwest")),
        "{connects:?}"
    );
}
