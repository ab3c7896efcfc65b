//! rvs-lab
