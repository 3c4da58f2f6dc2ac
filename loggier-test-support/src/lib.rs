//! Shared test scenarios for the Loggier HTTP adapters (tower/hyper, axum, actix-web).
//!
//! One policy, one scenario list: each adapter's test starts a real server on
//! `127.0.0.1:0` that serves the [route contract](app) with [`scenario_settings`],
//! logging through a client built by [`test_client`], and runs every function of
//! [`scenarios`] against it with a real HTTP client (reqwest).
//!
//! ```text
//! let (loggier, records) = loggier_test_support::test_client("axum");
//! let base = start_my_server(loggier, scenario_settings()).await; // "http://127.0.0.1:PORT"
//! loggier_test_support::scenarios::run_common(&base, &records).await;
//! // A second server with `endpoint_settings()` and the `#[track_endpoint]` routes:
//! loggier_test_support::scenarios::run_endpoint(&endpoint_base, &records).await;
//! ```
#![allow(missing_docs)] // test-only crate; items are documented where it helps

pub mod app;
pub mod scenarios;
mod sink;

pub use app::{StreamGate, endless_chunks, endpoint_settings, scenario_settings, stream_chunks};
pub use sink::{CollectingSink, Records, WAIT, is_transaction, request_id, test_client};

/// A reqwest client for the scenarios: no proxy, 10 s timeout, no connection reuse
/// surprises (each scenario may drop responses mid-body).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("reqwest client builds")
}
