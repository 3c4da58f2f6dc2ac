//! Caller-thread cost of a `#[trace_function]` call, against the same function
//! without the attribute, in the same process:
//!
//! - `plain`: the function without the attribute;
//! - `no_client`: with the attribute and no global client installed (the promised
//!   cost: one atomic load of the global slot and a branch, no clock read);
//! - `level_disabled`: a global client whose level (critical) disables both the
//!   timing's level and error, so the call is not timed either;
//! - `under_threshold`: a global client at info, the call timed (two clock reads,
//!   the scope captured, an id drawn) and not recorded (threshold 500 ms).
//!
//! Run: `cargo bench -p loggier-core --bench trace_function`. Quote results as
//! differences to `plain`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use loggier_core::{Level, Loggier, trace_function};

#[inline(never)]
fn plain(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[inline(never)]
#[trace_function(name = "bench.traced")]
fn traced(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

fn attribute_cost(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("trace_function");

    g.bench_function("plain", |b| b.iter(|| plain(black_box(7), black_box(9))));

    assert!(loggier_core::global().is_none());
    g.bench_function("no_client", |b| {
        b.iter(|| traced(black_box(7), black_box(9)))
    });

    let log = Loggier::builder()
        .service_name("bench")
        .data_dir(dir.path())
        .log_level(Level::Critical)
        .build()
        .expect("valid bench config");
    loggier_core::set_global(log.clone());
    g.bench_function("level_disabled", |b| {
        b.iter(|| traced(black_box(7), black_box(9)))
    });

    log.set_level(Level::Info);
    g.bench_function("under_threshold", |b| {
        b.iter(|| traced(black_box(7), black_box(9)))
    });
    g.finish();

    assert!(log.flush(Duration::from_secs(5)));
    let s = log.stats();
    assert_eq!(s.enqueued, 0, "no call reached the 500 ms threshold: {s:?}");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = attribute_cost
}
criterion_main!(benches);
