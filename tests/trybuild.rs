//! Compile-pass and compile-fail cases of `#[instrumented]`, with `.stderr` snapshots.
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test trybuild`.

#[test]
fn trybuild() {
    let cases = trybuild::TestCases::new();
    cases.pass("trybuild/pass/*.rs");
    cases.compile_fail("trybuild/fail/*.rs");
}
