#[loggier_core::trace_function(threshold_ms = "500")]
fn a() {}

#[loggier_core::trace_function(include_args = 1)]
fn b() {}

#[loggier_core::trace_function(tags = "web")]
fn c() {}

#[loggier_core::trace_function(tags = ["web", 5])]
fn d() {}

#[loggier_core::trace_function(level = "loud")]
fn e() {}

#[loggier_core::trace_database(include_params = "yes")]
fn g() {}

fn main() {
    a();
    b();
    c();
    d();
    e();
    g();
}
