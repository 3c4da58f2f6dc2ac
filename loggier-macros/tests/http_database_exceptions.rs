//! `#[trace_http]`, `#[trace_database]`, `#[capture_exceptions]`, `Loggier::timer`
//! and `timed!` against the real file sink (global client: its own test binary).

mod support;

use std::time::Duration;

use loggier_core::{capture_exceptions, timed, trace_database, trace_http};
use support::{install, one_named, records_named};

#[trace_http(name = "h.fetch", threshold_ms = 0, include_body = true, mask_params = ["sig"], mask_headers = ["x-tenant-key"])]
fn fetch(url: &str, headers: &[(&str, &str)]) -> Result<u16, std::io::Error> {
    let _ = (url, headers);
    Ok(200)
}

#[test]
fn trace_http_records_request_and_response_with_extra_masks() {
    install();
    let status = fetch(
        "https://rates.test/v1?sig=abc123&page=2",
        &[("accept", "json"), ("x-tenant-key", "tk-998877")],
    )
    .expect("ok");
    assert_eq!(status, 200);
    let r = one_named("h.fetch");
    assert_eq!(r["timing"]["kind"], "http");
    assert_eq!(
        r["context"]["request"]["url"],
        "\"https://rates.test/v1?sig=[FILTERED]&page=2\""
    );
    let headers = r["context"]["request"]["headers"]
        .as_str()
        .expect("headers");
    assert!(headers.contains("accept"), "{headers}");
    assert_eq!(r["context"]["response"], "Ok(200)");
    let text = support::file_text();
    assert!(
        !text.contains("abc123") && !text.contains("tk-998877"),
        "{text}"
    );
}

#[trace_http(name = "h.default")]
fn http_default() {}

#[trace_database(name = "d.default")]
fn db_default() {}

#[test]
fn default_thresholds_keep_fast_calls_out() {
    install();
    http_default(); // 1000 ms
    db_default(); // 100 ms
    assert!(records_named("h.default").is_empty());
    assert!(records_named("d.default").is_empty());
}

#[trace_database(name = "d.orders", include_params = true)]
async fn load_orders(customer: u64, api_key: &str) -> Vec<u64> {
    tokio::time::sleep(Duration::from_millis(120)).await;
    let _ = api_key;
    vec![customer * 10]
}

#[tokio::test]
async fn trace_database_default_threshold_is_100_ms_and_params_are_masked() {
    install();
    assert_eq!(load_orders(4, "k-55").await, vec![40]);
    let r = one_named("d.orders");
    assert_eq!(r["timing"]["kind"], "database");
    assert_eq!(r["timing"]["threshold_ms"], 100.0);
    assert!(r["timing"]["duration_ms"].as_f64().expect("ms") >= 100.0);
    assert_eq!(r["context"]["params"]["customer"], "4");
    assert_eq!(r["context"]["params"]["api_key"], "[FILTERED]");
}

#[derive(Debug)]
struct PaymentDeclined;
impl std::fmt::Display for PaymentDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for PaymentDeclined {}

#[capture_exceptions(name = "e.charge", tags = ["payments"])]
fn charge(cents: u64) -> Result<u64, PaymentDeclined> {
    if cents > 10_000 {
        return Err(PaymentDeclined);
    }
    Ok(cents)
}

#[capture_exceptions(name = "e.refund")]
async fn refund(panic: bool) -> u32 {
    tokio::task::yield_now().await;
    if panic {
        panic!("refund ledger corrupt");
    }
    1
}

#[tokio::test]
async fn capture_exceptions_records_err_and_panic_only() {
    install();
    assert_eq!(charge(500).expect("ok"), 500);
    assert!(records_named("e.charge").is_empty());
    assert!(charge(50_000).is_err());
    let r = one_named("e.charge");
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["context"]["function"], "e.charge");
    assert_eq!(r["exception"]["message"], "card declined");
    assert_eq!(r["tags"], serde_json::json!(["payments"]));
    assert!(r.get("timing").is_none());

    assert_eq!(refund(false).await, 1);
    let joined = tokio::spawn(refund(true)).await;
    assert!(joined.expect_err("panics").is_panic());
    let r = one_named("e.refund");
    assert_eq!(r["exception"]["type"], "panic");
    assert_eq!(r["exception"]["message"], "refund ledger corrupt");
}

#[test]
fn timer_guard_and_timed_macro_record_blocks() {
    install();
    let client = loggier_core::global().expect("client");
    let _outer = loggier_core::context::Scope::new()
        .request_id("req-timer-1")
        .enter();
    {
        let t = client
            .timer("b.rebuild")
            .threshold_ms(5)
            .kind(loggier_core::TimingKind::Database)
            .tag("nightly");
        std::thread::sleep(Duration::from_millis(10));
        assert!(t.elapsed() >= Duration::from_millis(10));
    }
    let r = one_named("b.rebuild");
    assert_eq!(r["logger"], "timer");
    assert_eq!(r["timing"]["kind"], "database");
    assert_eq!(r["timing"]["parent"], "req-timer-1");
    assert_eq!(r["context"]["request_id"], "req-timer-1");
    assert_eq!(r["tags"], serde_json::json!(["nightly"]));

    {
        let _quick = client.timer("b.quick"); // default 500 ms: not reached
    }
    assert!(records_named("b.quick").is_empty());

    let sum = timed!("b.sum", threshold_ms = 0, { (1..=4).sum::<u32>() });
    assert_eq!(sum, 10);
    one_named("b.sum");
    let fast = timed!("b.fast", { 2 + 2 });
    assert_eq!(fast, 4);
    assert!(records_named("b.fast").is_empty());
}

#[test]
fn a_timer_dropped_by_a_panic_records_it() {
    install();
    let client = loggier_core::global().expect("client");
    let r = std::panic::catch_unwind(move || {
        let _t = client.timer("b.panics").threshold_ms(60_000);
        panic!("in the block");
    });
    assert!(r.is_err());
    let rec = one_named("b.panics");
    assert_eq!(rec["level"], "ERROR");
    assert_eq!(rec["exception"]["type"], "panic");
}
