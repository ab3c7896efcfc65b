//! Director benchmarks (criterion).
fn main() {}
