//! Compile-time behaviour of the attributes: accepted shapes compile, bad input is
//! a spanned error (the `.stderr` files are the expected diagnostics).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
