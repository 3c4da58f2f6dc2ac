//! Compile-time behaviour of `#[track_endpoint]`: what compiles, and the errors (with
//! their spans) for bad options. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p loggier-macros --test track_endpoint_ui` after a
//! deliberate change, and review the diff.

#[test]
fn track_endpoint_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/track_endpoint/pass/*.rs");
    t.compile_fail("tests/ui/track_endpoint/fail/*.rs");
}
