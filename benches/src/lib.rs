//! Shared pieces of the Loggier benchmarks (not published).
//!
//! - [`fixtures`]: the realistic record mix the encode benches and pipeline runs use
//!   (plain, with context, HTTP transaction, exception);
//! - [`LokiReceiver`]: a loopback Loki push receiver (axum on 127.0.0.1:0) that decodes
//!   the real wire format (snappy block + `logproto.PushRequest`) and counts entries,
//!   and can be switched "down" (answers 503) for the outage run;
//! - [`proc_stats`]: peak/current RSS and process CPU time from `/proc/self`;
//! - [`count_lines`], [`median`]: what the harnesses use to validate and summarise.
//!
//! The binaries `http-bench` and `pipeline-bench` and the criterion benches `caller`
//! and `encode` are driven by `scripts/bench.sh`, which writes `target/bench-report.md`.
//!
//! ```
//! let recs = loggier_bench::fixtures::mix(8);
//! assert_eq!(recs.len(), 8);
//! assert_eq!(loggier_bench::median(&mut [3.0, 1.0, 2.0]), 2.0);
//! ```

pub mod fixtures;
pub mod loki_receiver;
pub mod proc_stats;

pub use loki_receiver::LokiReceiver;

use std::io::{BufRead, BufReader};
use std::path::Path;

/// Number of `\n`-terminated lines in the file at `path` (0 when it does not exist).
///
/// # Errors
/// An I/O error other than "not found" while reading.
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut n = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let len = buf.len();
        reader.consume(len);
    }
}

/// Number of lines of the file at `path` that contain `needle` (0 when the file
/// does not exist).
///
/// # Errors
/// An I/O error other than "not found" while reading.
pub fn count_lines_containing(path: &Path, needle: &str) -> std::io::Result<u64> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0u64;
    for line in BufReader::with_capacity(1 << 16, file).split(b'\n') {
        let line = line?;
        if line.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            n += 1;
        }
    }
    Ok(n)
}

/// Median of `values` (sorts them in place; mean of the two middle values for an even
/// count). `NaN` for an empty slice.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Thousands-separated integer rendering for report tables, e.g. `12,345`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let n = v.round() as i64;
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The modes of the axum HTTP benches (`http-bench`, `http-count`), in run order.
pub const AXUM_MODES: &[&str] = &[
    "bare",
    "identity",
    "loggier",
    "tracelayer-errors",
    "loggier-all",
    "tracelayer",
];

/// The modes of the actix-web HTTP benches, in run order (`http-count` runs all but
/// `logger`, whose `env_logger` global only `http-bench` sets up).
pub const ACTIX_MODES: &[&str] = &["bare", "identity", "loggier", "loggier-all", "logger"];

/// Sends `tracing` events as JSON lines to the file at `path` through
/// `tracing_appender`'s non-blocking writer, at `INFO` and above, as the global
/// subscriber: what the tracing peers of the benches write with. `lossy`: the
/// writer's mode — `true` (its default, what `tracing_appender::non_blocking` gives)
/// drops lines while its queue is full, `false` blocks the caller instead.
///
/// Drop the returned guard to flush the lines still queued.
///
/// # Panics
/// When the file cannot be created or a global subscriber is already set (bench
/// set-up; each server or scenario runs in a process of its own).
pub fn tracing_json_to_file(
    path: &Path,
    lossy: bool,
) -> tracing_appender::non_blocking::WorkerGuard {
    let file = std::fs::File::create(path).expect("create the tracing log file");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(lossy)
        .finish(file);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("set tracing subscriber");
    guard
}

/// `router` with the layers of an axum peer mode of the HTTP benches, or `None` for a
/// mode that is not one of them:
///
/// - `"identity"`: a layer that hands the route back unchanged
///   (`tower_layer::layer_fn(|route| route)`): what `Router::layer` itself costs (axum
///   boxes the layered route and its response future), the floor under any
///   middleware;
/// - `"tracelayer"`: tower-http `TraceLayer` with the span and the response event at
///   `INFO`, so every request writes a line;
/// - `"tracelayer-errors"`: what tower-http offers for Loggier's default settings —
///   `TraceLayer::new_for_http()` as it comes (span, request and response at `DEBUG`,
///   5xx and errors at `ERROR`, so with an `INFO` subscriber only failures write a
///   line) behind `SetRequestIdLayer::x_request_id(MakeRequestUuid)` and
///   `PropagateRequestIdLayer::x_request_id()`, which give every request a UUID and
///   echo it as `x-request-id`, as Loggier does.
///
/// The tracing modes need [`tracing_json_to_file`] installed to write anything.
pub fn axum_peer(router: axum::Router, mode: &str) -> Option<axum::Router> {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
    Some(match mode {
        "identity" => router.layer(tower_layer::layer_fn(|route| route)),
        "tracelayer" => router.layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        ),
        // One `Router::layer` (as Loggier's is), outermost last: the id is set, then
        // copied to the response, around the trace.
        "tracelayer-errors" => router.layer(tower_layer::Stack::new(
            tower_layer::Stack::new(
                TraceLayer::new_for_http(),
                PropagateRequestIdLayer::x_request_id(),
            ),
            SetRequestIdLayer::x_request_id(MakeRequestUuid),
        )),
        _ => return None,
    })
}

/// The capture settings of an HTTP bench mode: the defaults (only errors, slow
/// requests and tracked statuses recorded), or every request recorded for
/// `"loggier-all"`.
///
/// # Panics
/// Never in practice: the default settings are valid.
pub fn capture_settings(mode: &str) -> loggier_core::http::CaptureSettings {
    let b = loggier_core::http::CaptureSettings::builder();
    let b = if mode == "loggier-all" {
        b.log_all_requests(true)
    } else {
        b
    };
    b.build().expect("valid capture settings")
}

/// The JSON body every HTTP bench handler answers with (57 bytes), so the load
/// generators can check each response's length.
pub const HANDLER_BODY: &str = r#"{"id":42,"status":"shipped","items":3,"total_cents":5997}"#;

/// A Loggier client for the HTTP benches: service `bench-http`, data in `dir`, and
/// only the embedded file sink at `dir/loggier.ndjson`, without rotation, so every
/// line can be counted. `policy` is the full-channel policy (`http-count` uses
/// `Block`, so no record is dropped; `http-bench` keeps the default).
///
/// # Panics
/// When the file cannot be created in `dir` (a bench cannot run without it).
pub fn file_client(dir: &Path, policy: loggier_core::FullPolicy) -> loggier_core::Loggier {
    let file = loggier_core::FileSink::builder(dir.join("loggier.ndjson"))
        .max_file_bytes(1 << 40)
        .build()
        .expect("file sink");
    loggier_core::Loggier::builder()
        .service_name("bench-http")
        .data_dir(dir)
        .full_policy(policy)
        .sink(file)
        .build()
        .expect("valid loggier config")
}
