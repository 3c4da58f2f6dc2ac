//! Caller-thread cost of one `info!` with a message and 3 fields, side by side in one
//! process (read the ratios, not the absolute numbers):
//!
//! - `loggier`: `loggier_core::info!` into a client whose sink is the file sink
//!   (encoding and I/O on the Loggier worker);
//! - `tracing_json_nonblocking`: `tracing::info!` through a `fmt().json()` subscriber
//!   over `tracing_appender::non_blocking` (not lossy) to a file — formats on the caller;
//! - `otel_batch`: `tracing::info!` through `opentelemetry-appender-tracing` into an
//!   `opentelemetry_sdk` `BatchLogProcessor` whose exporter only counts the records
//!   (the cheapest possible export, so only the caller side is compared);
//! - `*_disabled`: the same call one level below the configured level.
//!
//! Only the calls are timed. Every 2 000 calls each pipeline is drained outside the
//! timed region (`flush`, `force_flush`, or a wait for the appender's file to grow), so
//! no call is measured as a cheap drop; at the end each bench asserts that its
//! back end really received every call (the Loggier stats, the exporter's count, the
//! lines in the tracing file).
//!
//! Run: `cargo bench -p loggier-bench --bench caller`.

#![allow(missing_docs)]

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use loggier_core::Loggier;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider,
};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

const CHUNK: u64 = 2_000;

/// Times `iters` calls in chunks of [`CHUNK`], running `between` untimed after each.
fn timed_chunks(iters: u64, mut call: impl FnMut(), mut between: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..n {
            call();
        }
        total += start.elapsed();
        between();
        left -= n;
    }
    total
}

/// An OpenTelemetry exporter that drops every record after counting it.
#[derive(Clone)]
struct CountingExporter(Arc<AtomicU64>);

impl fmt::Debug for CountingExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingExporter")
    }
}

impl LogExporter for CountingExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0
            .fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn loggier_benches(c: &mut Criterion, dir: &std::path::Path) {
    // The embedded file sink, without rotation so every line can be counted.
    let file = loggier_core::FileSink::builder(dir.join("loggier.ndjson"))
        .max_file_bytes(1 << 40)
        .build()
        .expect("file sink");
    let log = Loggier::builder()
        .service_name("bench")
        .data_dir(dir)
        .channel_capacity(CHUNK as usize * 4)
        .sink(file)
        .build()
        .expect("valid bench config");
    let mut g = c.benchmark_group("caller");
    g.bench_function("loggier", |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                || {
                    loggier_core::info!(
                        log,
                        user_id = black_box(42),
                        route = "/orders/{id}",
                        status = 200,
                        "request handled"
                    )
                },
                || {
                    assert!(
                        log.flush(Duration::from_secs(30)),
                        "loggier flush timed out"
                    );
                },
            )
        })
    });
    g.bench_function("loggier_disabled", |b| {
        b.iter(|| {
            loggier_core::debug!(
                log,
                user_id = black_box(42),
                route = "/orders/{id}",
                status = 200,
                "request handled"
            )
        })
    });
    g.finish();
    log.shutdown(Duration::from_secs(30));
    let s = log.stats();
    let lines = loggier_bench::count_lines(&dir.join("loggier.ndjson")).expect("read file sink");
    assert!(s.enqueued > 0, "loggier bench logged nothing: {s:?}");
    assert_eq!(
        lines, s.enqueued,
        "file sink lines != records enqueued (a drop?): {s:?}"
    );
}

fn tracing_benches(c: &mut Criterion, dir: &std::path::Path) {
    let path = dir.join("tracing.ndjson");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::fs::File::create(&path).expect("create tracing file"));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(writer)
        .finish();
    let calls = AtomicU64::new(0);
    let mut g = c.benchmark_group("caller");
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tracing_json_nonblocking", |b| {
            b.iter_custom(|iters| {
                calls.fetch_add(iters, Ordering::Relaxed);
                timed_chunks(
                    iters,
                    || {
                        tracing::info!(
                            user_id = black_box(42),
                            route = "/orders/{id}",
                            status = 200,
                            "request handled"
                        )
                    },
                    // Let the appender's worker catch up before the next chunk.
                    || std::thread::sleep(Duration::from_millis(3)),
                )
            })
        });
        g.bench_function("tracing_disabled", |b| {
            b.iter(|| {
                tracing::debug!(
                    user_id = black_box(42),
                    route = "/orders/{id}",
                    status = 200,
                    "request handled"
                )
            })
        });
    });
    g.finish();
    drop(guard); // flushes and joins the appender's worker
    let lines = loggier_bench::count_lines(&path).expect("read tracing file");
    assert_eq!(
        lines,
        calls.load(Ordering::Relaxed),
        "tracing wrote a different number of lines than calls"
    );
}

fn otel_benches(c: &mut Criterion) {
    let exported = Arc::new(AtomicU64::new(0));
    let processor = BatchLogProcessor::builder(CountingExporter(Arc::clone(&exported)))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(CHUNK as usize * 4)
                .build(),
        )
        .build();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(OpenTelemetryTracingBridge::new(&provider));
    let calls = AtomicU64::new(0);
    let mut g = c.benchmark_group("caller");
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("otel_batch", |b| {
            b.iter_custom(|iters| {
                calls.fetch_add(iters, Ordering::Relaxed);
                timed_chunks(
                    iters,
                    || {
                        tracing::info!(
                            user_id = black_box(42),
                            route = "/orders/{id}",
                            status = 200,
                            "request handled"
                        )
                    },
                    || provider.force_flush().expect("otel force_flush"),
                )
            })
        });
        g.bench_function("otel_disabled", |b| {
            b.iter(|| {
                tracing::debug!(
                    user_id = black_box(42),
                    route = "/orders/{id}",
                    status = 200,
                    "request handled"
                )
            })
        });
    });
    g.finish();
    provider.force_flush().expect("otel force_flush");
    assert_eq!(
        exported.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
        "the OpenTelemetry exporter did not receive every call (dropped at the queue?)"
    );
    provider.shutdown().expect("otel shutdown");
}

fn caller_cost(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    loggier_benches(c, dir.path());
    tracing_benches(c, dir.path());
    otel_benches(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = caller_cost
}
criterion_main!(benches);
