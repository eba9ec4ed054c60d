//! Store benchmarks. TODO.
fn main() {}
