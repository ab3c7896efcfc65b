//! ipvsadm command line (todo)
