//! `examples/library.rs` (the library used without the CLI: one tensor encoded and decoded, a
//! model quantized with a custom progress sink, a run cancelled halfway) runs as a test, so a
//! change that breaks it fails the tests; the example checks its own results.

#[path = "../examples/library.rs"]
mod library;

#[test]
fn the_library_example_runs() {
    library::main().expect("the library example");
}
