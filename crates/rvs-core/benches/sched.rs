//! Scheduler benchmarks (criterion).
fn main() {}
