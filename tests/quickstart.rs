//! README's first set-up command runs `examples/quickstart.rs`; this runs the same code, so a
//! change that breaks the example fails the tests (it quantizes a generated model to Q4_K_M and
//! decodes a tensor back, checking the error).

#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn the_quickstart_example_runs() {
    quickstart::main().expect("the quickstart example");
}
