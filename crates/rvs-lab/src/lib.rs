//! rvs-lab: the LVS-NAT picture in network namespaces, for the demo, the end-to-end tests and the benchmarks.

pub mod bench;
