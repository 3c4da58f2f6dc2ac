//! What the provisional request-body copy for `#[track_endpoint(capture_request_body =
//! true)]` costs per request, on the capture policy alone (no server, no sink): one
//! [`Exchange`] from arrival to decision for a 4 KiB JSON request body pushed in four
//! 1 KiB frames, answered 200 (not recorded).
//!
//! - `off`: `endpoint_request_body(false)`, no copy (the cost before this feature);
//! - `provisional_no_endpoint`: the default; the handler has no `#[track_endpoint]`,
//!   so the whole body (≤ `max_body_size`) is copied and dropped at the end;
//! - `provisional_endpoint_declines`: the default; the handler's endpoint is known
//!   after the first frame and does not ask, so the copy stops and is freed there;
//! - `endpoint_asks`: the endpoint asks (`capture_request_body = true`): the copy is
//!   kept, as `capture_request_body(true)` would.
//!
//! Run: `cargo bench -p loggier-core --features http-capture --bench endpoint_tee`.
//! Quote results as differences against `off`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use loggier_core::context::{EndpointOptions, set_endpoint_options};
use loggier_core::http::{CaptureSettings, Exchange};

static DECLINES: EndpointOptions = EndpointOptions::new("bench::declines");
static ASKS: EndpointOptions = EndpointOptions::new("bench::asks").capture_request_body(true);

fn one_request(
    settings: &Arc<CaptureSettings>,
    body: &[u8],
    endpoint: Option<&'static EndpointOptions>,
) {
    let mut x = Exchange::start(Arc::clone(settings), Some(b"req-bench-1"), None);
    let capture = x.request_body_capture(Some(b"application/json"));
    let frame = x.scope().into_frame();
    if let Some(mut c) = capture {
        for (i, chunk) in body.chunks(1024).enumerate() {
            if i == 1 {
                if let Some(e) = endpoint {
                    let _g = loggier_core::context::enter_frame(&frame);
                    set_endpoint_options(e);
                }
            }
            c.push(chunk);
        }
        x.set_request_body(c);
    }
    let _ = x.on_response(200, None);
    black_box(x.finish());
}

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = br#"{"sku":"A-1","qty":2}"#.iter().copied().cycle().take(4096).collect();
    let build = |on: bool| {
        Arc::new(
            CaptureSettings::builder()
                .endpoint_request_body(on)
                .build()
                .expect("valid settings"),
        )
    };
    let (off, on) = (build(false), build(true));
    let mut g = c.benchmark_group("endpoint_tee_4KiB");
    g.bench_function("off", |b| b.iter(|| one_request(&off, &body, None)));
    g.bench_function("provisional_no_endpoint", |b| {
        b.iter(|| one_request(&on, &body, None))
    });
    g.bench_function("provisional_endpoint_declines", |b| {
        b.iter(|| one_request(&on, &body, Some(&DECLINES)))
    });
    g.bench_function("endpoint_asks", |b| {
        b.iter(|| one_request(&on, &body, Some(&ASKS)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
