#[loggier_core::trace_http(include_args = true)]
fn a() {}

#[loggier_core::trace_database(mask_headers = ["x"])]
fn b() {}

#[loggier_core::capture_exceptions(threshold_ms = 10)]
fn c() {}

fn main() {
    a();
    b();
    c();
}
