//! `#[trace_function]` behaviour against the real file sink (global client: its own
//! test binary).

mod support;

use std::error::Error;
use std::time::Duration;

use loggier_core::trace_function;
use support::{install, one_named, records_named};

#[trace_function(name = "t.sync_slow", threshold_ms = 20, tags = ["batch"])]
fn sync_slow(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    7
}

#[test]
fn slow_sync_call_emits_one_timing_record() {
    install();
    assert_eq!(sync_slow(30), 7);
    let r = one_named("t.sync_slow");
    assert_eq!(r["level"], "INFO");
    assert_eq!(r["logger"], "trace_function");
    assert_eq!(r["timing"]["kind"], "function");
    assert_eq!(r["timing"]["threshold_ms"], 20.0);
    assert!(
        r["timing"]["duration_ms"].as_f64().expect("ms") >= 30.0,
        "{r}"
    );
    let id = r["timing"]["id"].as_str().expect("id");
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(r["timing"].get("parent").is_none(), "{r}");
    assert_eq!(r["tags"], serde_json::json!(["batch"]));
    assert!(r["message"].as_str().expect("msg").contains("t.sync_slow"));
}

#[trace_function(name = "t.fast", threshold_ms = 10_000)]
fn fast(x: u32) -> u32 {
    x + 1
}

#[test]
fn call_under_the_threshold_emits_nothing() {
    install();
    assert_eq!(fast(1), 2);
    assert!(records_named("t.fast").is_empty());
}

#[trace_function(threshold_ms = 0)]
fn default_named() {}

#[trace_function(threshold_ms = 0)]
async fn default_named_async() {}

struct Named;

impl Named {
    #[trace_function(threshold_ms = 0)]
    fn method(&self) {}
}

#[test]
fn default_name_is_the_function_path_and_threshold_zero_always_records() {
    install();
    default_named();
    let r = one_named("trace_function::default_named");
    assert_eq!(r["timing"]["threshold_ms"], 0.0);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(default_named_async());
    one_named("trace_function::default_named_async");
    Named.method();
    one_named("trace_function::Named::method");
}

#[trace_function(name = "t.async_slow", threshold_ms = 20, level = "warning")]
async fn async_slow() -> u32 {
    tokio::time::sleep(Duration::from_millis(30)).await;
    tokio::task::yield_now().await;
    3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_async_call_is_timed_across_awaits_at_its_level() {
    install();
    // Spawned: the future of a timed async fn is Send.
    let v = tokio::spawn(async_slow()).await.expect("join");
    assert_eq!(v, 3);
    let r = one_named("t.async_slow");
    assert_eq!(r["level"], "WARNING");
    assert!(
        r["timing"]["duration_ms"].as_f64().expect("ms") >= 30.0,
        "{r}"
    );
}

#[derive(Debug, Default)]
struct Cart {
    items: Vec<u32>,
}

impl Cart {
    #[trace_function(name = "t.add", threshold_ms = 0, include_args = true)]
    fn add(&mut self, price: u32) -> usize {
        self.items.push(price);
        self.items.len()
    }

    #[trace_function(name = "t.total", threshold_ms = 0, include_return = true)]
    fn total(&self) -> u32 {
        self.items.iter().sum()
    }

    #[trace_function(name = "t.into_items", threshold_ms = 0)]
    fn into_items(self) -> Vec<u32> {
        self.items
    }
}

#[test]
fn methods_with_self_mut_self_and_owned_self() {
    install();
    let mut cart = Cart::default();
    assert_eq!(cart.add(250), 1);
    assert_eq!(cart.add(100), 2);
    assert_eq!(cart.total(), 350);
    assert_eq!(cart.into_items(), vec![250, 100]);
    let adds = records_named("t.add");
    assert_eq!(adds.len(), 2);
    // `self` is never recorded, named arguments are.
    let args = adds[0]["context"]["args"].as_object().expect("args");
    assert_eq!(args.len(), 1, "{args:?}");
    assert!(args["price"] == "250" || args["price"] == "100");
    assert_eq!(one_named("t.total")["context"]["return"], "350");
    one_named("t.into_items");
}

#[trace_function(
    name = "t.largest",
    threshold_ms = 0,
    include_args = true,
    include_return = true
)]
fn largest<T: PartialOrd + Copy + std::fmt::Debug>(xs: &[T]) -> Option<T> {
    let mut best = *xs.first()?;
    for &x in xs {
        if x > best {
            best = x;
        }
    }
    Some(best)
}

#[trace_function(name = "t.evens", threshold_ms = 0)]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

struct Opaque;

#[trace_function(name = "t.opaque", threshold_ms = 0, include_args = true)]
fn takes_opaque(o: Opaque, n: impl Into<u64>) -> u64 {
    let _ = o;
    n.into()
}

#[test]
fn generics_impl_trait_and_arguments_without_debug() {
    install();
    assert_eq!(largest(&[3, 9, 4]), Some(9));
    assert_eq!(largest::<u8>(&[]), None); // `?` on the Option: early return
    assert_eq!(evens(7).collect::<Vec<_>>(), vec![0, 2, 4, 6]);
    assert_eq!(takes_opaque(Opaque, 5u8), 5);

    let mut recs = records_named("t.largest");
    recs.sort_by_key(|r| r["context"]["return"].as_str().map(str::to_string));
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["context"]["return"], "None");
    assert_eq!(recs[1]["context"]["return"], "Some(9)");
    assert_eq!(recs[1]["context"]["args"]["xs"], "[3, 9, 4]");
    // `None` from `?` is not an error.
    assert!(
        recs.iter()
            .all(|r| r["level"] == "INFO" && r.get("exception").is_none())
    );
    one_named("t.evens");
    let o = one_named("t.opaque");
    assert!(
        o["context"]["args"]["o"]
            .as_str()
            .expect("o")
            .ends_with("Opaque without Debug>"),
        "{o}"
    );
    // An `impl Into<u64>` argument has no `Debug` bound in the function: the
    // placeholder names its concrete type.
    assert_eq!(o["context"]["args"]["n"], "<u8 without Debug>");
}

#[derive(Debug)]
struct ConfigError {
    source: std::io::Error,
}
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot load config")
    }
}
impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

#[trace_function(name = "t.parse", threshold_ms = 10_000)]
fn parse_qty(text: &str) -> Result<u32, Box<dyn Error + Send + Sync>> {
    if text.is_empty() {
        return Ok(0);
    }
    let n: u32 = text.trim().parse()?;
    Ok(n)
}

#[trace_function(name = "t.load", threshold_ms = 10_000)]
fn load_config() -> Result<(), ConfigError> {
    Err(ConfigError {
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "app.toml missing"),
    })
}

#[trace_function(name = "t.plain_err", threshold_ms = 10_000)]
fn plain_err(fail: bool) -> Result<u8, &'static str> {
    if fail { Err("out of stock") } else { Ok(1) }
}

#[test]
fn early_return_ok_is_silent_and_question_mark_err_is_recorded_with_its_chain() {
    install();
    assert_eq!(parse_qty("").expect("empty is zero"), 0);
    assert_eq!(parse_qty(" 12 ").expect("number"), 12);
    assert!(parse_qty("twelve").is_err());
    let r = one_named("t.parse");
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["exception"]["type"], "ParseIntError");
    assert_eq!(r["exception"]["message"], "invalid digit found in string");
    assert!(r["message"].as_str().expect("msg").contains("failed after"));

    assert!(load_config().is_err());
    let r = one_named("t.load");
    assert!(
        r["exception"]["type"]
            .as_str()
            .expect("type")
            .ends_with("ConfigError")
    );
    assert_eq!(r["exception"]["message"], "cannot load config");
    assert_eq!(r["exception"]["chain"][0]["message"], "app.toml missing");

    // A non-Error `E: Debug` is recorded through Debug.
    assert_eq!(plain_err(false), Ok(1));
    assert_eq!(plain_err(true), Err("out of stock"));
    let r = one_named("t.plain_err");
    assert_eq!(r["exception"]["message"], "\"out of stock\"");
}

#[trace_function(name = "t.boom", threshold_ms = 10_000)]
fn boom(n: u32) -> u32 {
    if n > 1 {
        panic!("kaboom {n}");
    }
    n
}

#[trace_function(name = "t.async_boom", threshold_ms = 10_000)]
async fn async_boom() -> u32 {
    tokio::task::yield_now().await;
    panic!("async kaboom");
}

#[test]
fn a_panic_is_recorded_and_keeps_unwinding() {
    install();
    let caught = std::panic::catch_unwind(|| boom(5));
    let payload = caught.expect_err("still panics");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("kaboom 5")
    );
    let r = one_named("t.boom");
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["exception"]["type"], "panic");
    assert_eq!(r["exception"]["message"], "kaboom 5");
    assert!(r["message"].as_str().expect("msg").contains("panicked"));
}

#[tokio::test]
async fn a_panic_in_an_async_fn_is_recorded_and_reaches_the_runtime() {
    install();
    let err = tokio::spawn(async_boom()).await.expect_err("panicked");
    assert!(err.is_panic());
    let r = one_named("t.async_boom");
    assert_eq!(r["exception"]["message"], "async kaboom");
}

#[trace_function(name = "t.outer", threshold_ms = 0)]
fn outer() -> u32 {
    inner() + inner()
}

#[trace_function(name = "t.inner", threshold_ms = 0)]
fn inner() -> u32 {
    1
}

#[trace_function(name = "t.async_outer", threshold_ms = 0)]
async fn async_outer() -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let a = async_inner().await;
    tokio::task::yield_now().await;
    a + inner_sync_in_async()
}

#[trace_function(name = "t.async_inner", threshold_ms = 0)]
async fn async_inner() -> u32 {
    tokio::task::yield_now().await;
    10
}

#[trace_function(name = "t.inner_sync_in_async", threshold_ms = 0)]
fn inner_sync_in_async() -> u32 {
    5
}

#[test]
fn nested_sync_timings_name_their_parent() {
    install();
    assert_eq!(outer(), 2);
    let o = one_named("t.outer");
    let inners = records_named("t.inner");
    assert_eq!(inners.len(), 2);
    for i in &inners {
        assert_eq!(i["timing"]["parent"], o["timing"]["id"], "{i}");
    }
    assert_ne!(inners[0]["timing"]["id"], inners[1]["timing"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_async_timings_follow_the_future_across_awaits_and_requests() {
    install();
    let request = loggier_core::context::Scope::new()
        .request_id("req-nested-42")
        .trace(
            "4bf92f3577b34da6a3ce929d0e0e4736",
            Some("00f067aa0ba902b7".into()),
        );
    let v = tokio::spawn(request.instrument(async_outer()))
        .await
        .expect("join");
    assert_eq!(v, 15);
    let o = one_named("t.async_outer");
    assert_eq!(o["timing"]["parent"], "req-nested-42");
    assert_eq!(o["context"]["request_id"], "req-nested-42");
    assert_eq!(o["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let i = one_named("t.async_inner");
    assert_eq!(i["timing"]["parent"], o["timing"]["id"]);
    assert_eq!(i["context"]["request_id"], "req-nested-42");
    let s = one_named("t.inner_sync_in_async");
    assert_eq!(s["timing"]["parent"], o["timing"]["id"]);
}

#[derive(Debug)]
struct Credentials {
    user: String,
    token: String,
}

#[trace_function(
    name = "t.login",
    threshold_ms = 0,
    include_args = true,
    include_return = true
)]
fn login(user: &str, password: &str, creds: &Credentials) -> String {
    format!(
        "session for {user} ({}, {} chars, {})",
        creds.user,
        password.len(),
        creds.token.len()
    )
}

#[test]
fn recorded_arguments_are_masked_by_the_clients_sensitive_names() {
    install();
    let creds = Credentials {
        user: "ann".into(),
        token: "tok-SECRET-123".into(),
    };
    let out = login("ann", "hunter2", &creds);
    assert!(out.starts_with("session for ann"));
    let r = one_named("t.login");
    assert_eq!(r["context"]["args"]["user"], "\"ann\"");
    assert_eq!(r["context"]["args"]["password"], "[FILTERED]");
    assert_eq!(
        r["context"]["args"]["creds"],
        "Credentials { user: \"ann\", token: \"[FILTERED]\" }"
    );
    let text = support::file_text();
    assert!(!text.contains("hunter2"), "password leaked");
    assert!(!text.contains("tok-SECRET-123"), "token leaked");
}

#[trace_function(name = "t.cancelled", threshold_ms = 5)]
async fn never_finishes() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn a_slow_future_dropped_before_completion_is_recorded_as_cancelled() {
    install();
    let timed_out = tokio::time::timeout(Duration::from_millis(30), never_finishes()).await;
    assert!(timed_out.is_err());
    let r = one_named("t.cancelled");
    assert_eq!(r["context"]["cancelled"], true);
    assert!(r["timing"]["duration_ms"].as_f64().expect("ms") >= 5.0);
}
