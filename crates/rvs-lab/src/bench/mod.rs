//! Side-by-side benchmarks: rvs against kernel NAT, HAProxy and the direct path.
