#[loggier_core::trace_function(treshold_ms = 5)]
fn f() {}

fn main() {
    f();
}
