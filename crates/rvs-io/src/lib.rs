//! rvs-io
