//! `#[trace_http]`, `#[trace_database]`, `#[capture_exceptions]` and `timed!`.
#![deny(warnings)]

use loggier_core::{capture_exceptions, timed, trace_database, trace_http};

#[trace_http]
fn http_default() {}

#[trace_http(name = "rates", threshold_ms = 2000, tags = ["fx"], mask_headers = ["x-key"], mask_params = ["sig"], include_body = true, level = "info")]
async fn fetch(url: &str) -> Result<String, std::io::Error> {
    Ok(url.to_string())
}

#[trace_database]
fn db_default() {}

#[trace_database(name = "orders.by_id", threshold_ms = 50, tags = ["pg"], include_params = true, log_level = "debug")]
fn query(id: u64) -> Option<u64> {
    Some(id)
}

#[capture_exceptions]
fn parse(text: &str) -> Result<u8, std::num::ParseIntError> {
    text.parse()
}

#[capture_exceptions(name = "jobs.run", tags = ["jobs"], level = "critical")]
async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

fn main() {
    http_default();
    db_default();
    assert_eq!(query(2), Some(2));
    assert!(parse("x").is_err());
    drop(fetch("u"));
    drop(run());
    let v = timed!("block", { 1 + 1 });
    let w = timed!("block", threshold_ms = 5, { v * 2 });
    assert_eq!(w, 4);
}
