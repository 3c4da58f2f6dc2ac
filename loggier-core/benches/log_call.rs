//! Caller-thread cost of one log call with two fields, against baselines run in the
//! same process:
//!
//! - `loggier_info`: `info!(log, user_id = 42, route = "/orders/{id}", "request handled")`
//!   into a pipeline whose sink is the file sink (encoding and I/O on the worker);
//! - `loggier_disabled`: the same call below the level (one atomic load);
//! - `tracing_nonblocking_json`: the same event through `tracing` with a JSON `fmt`
//!   layer over `tracing-appender::non_blocking` to a file — the usual peer setup;
//!   it formats on the caller's thread;
//! - `encode_on_caller`: building the record and encoding its JSON line on the
//!   caller, what a synchronous logger pays before any I/O.
//!
//! Only the calls are timed: every 2 000 calls the pipeline is flushed outside the
//! timed region, so the channel never fills and no call is measured as a cheap drop.
//!
//! Run: `cargo bench -p loggier-core --bench log_call`. Quote results as ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use loggier_core::{Level, Loggier, Record, ServiceInfo, record::encode_json_line};

const CHUNK: u64 = 2_000;

fn loggier(dir: &std::path::Path) -> Loggier {
    Loggier::builder()
        .service_name("bench")
        .data_dir(dir)
        .channel_capacity(CHUNK as usize * 2)
        .build()
        .expect("valid bench config")
}

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

fn caller_cost(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("caller_cost");

    let log = loggier(dir.path());
    g.bench_function("loggier_info", |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                || {
                    loggier_core::info!(
                        log,
                        user_id = black_box(42),
                        route = "/orders/{id}",
                        "request handled"
                    )
                },
                || {
                    log.flush(Duration::from_secs(30));
                },
            )
        })
    });
    let s = log.stats();
    assert_eq!(
        s.dropped() + s.sinks[0].dropped(),
        0,
        "a bench call was a drop: {s:?}"
    );

    g.bench_function("loggier_disabled", |b| {
        b.iter(|| {
            loggier_core::debug!(
                log,
                user_id = black_box(42),
                route = "/orders/{id}",
                "request handled"
            )
        })
    });

    let (writer, guard) = tracing_appender::non_blocking(
        std::fs::File::create(dir.path().join("tracing.ndjson")).expect("create tracing file"),
    );
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tracing_nonblocking_json", |b| {
            b.iter_custom(|iters| {
                timed_chunks(
                    iters,
                    || {
                        tracing::info!(
                            user_id = black_box(42),
                            route = "/orders/{id}",
                            "request handled"
                        )
                    },
                    // Let the appender's worker drain so its lossy buffer never drops.
                    || std::thread::sleep(Duration::from_millis(2)),
                )
            })
        });
    });
    drop(guard);

    let svc = ServiceInfo {
        service: "bench".into(),
        environment: "development".into(),
        ..ServiceInfo::default()
    };
    let mut buf = Vec::with_capacity(512);
    g.bench_function("encode_on_caller", |b| {
        b.iter(|| {
            buf.clear();
            let r = Record::new(Level::Info, "request handled")
                .with_field("user_id", black_box(42))
                .with_field("route", "/orders/{id}");
            encode_json_line(&r, &svc, &mut buf).expect("encodes");
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = caller_cost
}
criterion_main!(benches);
