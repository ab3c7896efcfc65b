//! IPVS's `sloppy_tcp` and `sloppy_sctp` sysctls: may a packet with no connection entry create one?
//!
//! Without them, only a connection's first packet schedules (TCP: a SYN without RST, `tcp_conn_schedule` in
//! ip_vs_proto_tcp.c; SCTP: an INIT chunk, `sctp_conn_schedule` in ip_vs_proto_sctp.c). With them, any packet
//! except a reset/abort does: a director that sees a mid-stream packet of a connection it does not know (ECMP moved
//! the flow to it, or it just restarted) creates the connection from that packet instead of dropping it. With a
//! consistent scheduler (mh, sh: every director maps a flow alike) the flow keeps its real server.
//!
//! A TCP connection created from a mid-stream ACK goes straight to ESTABLISHED: the kernel's state table has
//! `INPUT ack: sNO -> sES` (and the same in INPUT-ONLY) since sloppy TCP was added (Linux 3.12); [`crate::tcp`]
//! follows it.

/// SCTP chunk types that matter here (RFC 9260).
pub const SCTP_CID_INIT: u8 = 1;
pub const SCTP_CID_ABORT: u8 = 6;

/// `tcp_conn_schedule`: `(th->syn || sloppy_tcp) && !th->rst`.
#[inline]
pub fn tcp_may_schedule(syn: bool, rst: bool, sloppy_tcp: bool) -> bool {
    (syn || sloppy_tcp) && !rst
}

/// `sctp_conn_schedule`: not an ABORT, and an INIT unless `sloppy_sctp`.
#[inline]
pub fn sctp_may_schedule(first_chunk_type: u8, sloppy_sctp: bool) -> bool {
    first_chunk_type != SCTP_CID_ABORT && (sloppy_sctp || first_chunk_type == SCTP_CID_INIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_as_the_kernel() {
        // (syn, rst, sloppy) -> schedules
        let cases = [
            ((true, false, false), true),
            ((false, false, false), false),
            ((true, true, false), false),
            ((false, false, true), true),
            ((true, false, true), true),
            ((false, true, true), false),
            ((true, true, true), false),
        ];
        for ((syn, rst, sloppy), want) in cases {
            assert_eq!(
                tcp_may_schedule(syn, rst, sloppy),
                want,
                "{syn} {rst} {sloppy}"
            );
        }
    }

    #[test]
    fn sctp_as_the_kernel() {
        assert!(sctp_may_schedule(SCTP_CID_INIT, false));
        assert!(!sctp_may_schedule(0 /* DATA */, false));
        assert!(sctp_may_schedule(0, true));
        assert!(sctp_may_schedule(11 /* COOKIE ECHO */, true));
        assert!(!sctp_may_schedule(SCTP_CID_ABORT, true));
        assert!(!sctp_may_schedule(SCTP_CID_ABORT, false));
    }
}
