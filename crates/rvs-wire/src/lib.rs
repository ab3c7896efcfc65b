//! rvs-wire
