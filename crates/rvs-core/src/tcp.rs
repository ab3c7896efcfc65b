//! IPVS's TCP state machine (net/netfilter/ipvs/ip_vs_proto_tcp.c) as data.

/// A connection's protocol state. TCP uses all of them; UDP and templates stay `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    /// All states by index.
    pub const ALL: [TcpState; TCP_STATES] = [
        Self::None,
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::SynAck,
    ];

    /// IPVS's state name (as `ipvsadm -L -c` prints it).
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait => "FIN_WAIT",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::SynAck => "SYNACK",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Self::Close)
    }

    /// IPVS's default timeout of this state, in seconds.
    pub const fn default_timeout_s(self) -> u32 {
        match self {
            Self::None => 2,
            Self::Established => 900,
            Self::SynSent => 120,
            Self::SynRecv => 60,
            Self::FinWait => 120,
            Self::TimeWait => 120,
            Self::Close => 10,
            Self::CloseWait => 60,
            Self::LastAck => 30,
            Self::Listen => 120,
            Self::SynAck => 120,
        }
    }
}

/// Which table a packet uses (IPVS's state_off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpDir {
    /// Client -> server.
    Input = 0,
    /// Server -> client.
    Output = 1,
    /// Client -> server on a connection that never saw output (route/tunnel: NOOUTPUT).
    InputOnly = 2,
}

/// Flag row of the table (IPVS's tcp_state_idx: rst beats syn beats fin beats ack).
fn flag_row(syn: bool, ack: bool, fin: bool, rst: bool) -> Option<usize> {
    if rst {
        Some(3)
    } else if syn {
        Some(0)
    } else if fin {
        Some(1)
    } else if ack {
        Some(2)
    } else {
        None
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// Which of IPVS's two state tables a transition uses (ip_vs_proto_tcp.c, tcp_timeout_change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateTable {
    /// `tcp_states`: the normal table.
    Normal,
    /// `tcp_states_dos`: the secure_tcp defence's table. A connection reaches ESTABLISHED only
    /// after the real server answered the client's ACK (SYN_RECV + server SYN-ACK -> SYNACK, and
    /// only a server segment moves SYNACK on), so a flood of SYNs or of SYN+ACKs never creates
    /// active (ESTABLISHED, 900 s) entries.
    Secure,
}

/// tcp_states[] from ip_vs_proto_tcp.c: [dir][syn/fin/ack/rst][current state]. As in the kernel since sloppy TCP
/// (3.12), an input ACK on a connection in NONE moves it to ESTABLISHED (a connection created from a mid-stream
/// packet, [`crate::sloppy`]; also a synced connection in NONE).
#[rustfmt::skip]
const TABLE: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// tcp_states_dos[] from ip_vs_proto_tcp.c (secure_tcp): [dir][syn/fin/ack/rst][current state], with the same
/// sloppy-TCP change as [`TABLE`] (input ACK on NONE -> ESTABLISHED).
#[rustfmt::skip]
const TABLE_DOS: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        /*ack*/ [CL, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next state for a segment with these flags (IPVS's set_tcp_state: a segment with none of
/// SYN/FIN/ACK/RST moves the connection to CLOSE).
pub fn next_state(
    cur: TcpState,
    dir: TcpDir,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
) -> TcpState {
    next_state_in(StateTable::Normal, cur, dir, syn, ack, fin, rst)
}

/// [`next_state`] in a chosen table (secure_tcp switches to [`StateTable::Secure`]).
pub fn next_state_in(
    table: StateTable,
    cur: TcpState,
    dir: TcpDir,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
) -> TcpState {
    let t = match table {
        StateTable::Normal => &TABLE,
        StateTable::Secure => &TABLE_DOS,
    };
    match flag_row(syn, ack, fin, rst) {
        Some(row) => t[dir as usize][row][cur as usize],
        None => TcpState::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_way_handshake_and_close() {
        let s = next_state(TcpState::None, TcpDir::Input, true, false, false, false);
        assert_eq!(s, TcpState::SynRecv);
        let s = next_state(s, TcpDir::Output, true, true, false, false);
        assert_eq!(s, TcpState::SynRecv);
        let s = next_state(s, TcpDir::Input, false, true, false, false);
        assert_eq!(s, TcpState::Established);
        let s = next_state(s, TcpDir::Input, false, true, true, false);
        assert_eq!(s, TcpState::CloseWait);
        let s = next_state(s, TcpDir::Output, false, true, true, false);
        assert_eq!(s, TcpState::TimeWait);
        let s = next_state(s, TcpDir::Input, false, true, false, false);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn rst_wins_and_flagless_closes() {
        assert_eq!(
            next_state(
                TcpState::Established,
                TcpDir::Input,
                true,
                false,
                false,
                true
            ),
            TcpState::Close
        );
        assert_eq!(
            next_state(TcpState::SynRecv, TcpDir::Input, false, false, false, true),
            TcpState::SynRecv
        );
        assert_eq!(
            next_state(
                TcpState::Established,
                TcpDir::Output,
                false,
                false,
                false,
                false
            ),
            TcpState::Close
        );
    }

    #[test]
    fn secure_table_needs_the_servers_answer_to_establish() {
        use StateTable::Secure;
        // SYN in, SYN-ACK out: SYNACK (not SYN_RECV); the client's ACK alone keeps it there.
        let s = next_state_in(
            Secure,
            TcpState::None,
            TcpDir::Input,
            true,
            false,
            false,
            false,
        );
        assert_eq!(s, TcpState::SynRecv);
        let s = next_state_in(Secure, s, TcpDir::Output, true, true, false, false);
        assert_eq!(s, TcpState::SynAck);
        let s = next_state_in(Secure, s, TcpDir::Input, false, true, false, false);
        assert_eq!(s, TcpState::SynAck);
        // The server's next segment establishes.
        let s = next_state_in(Secure, s, TcpDir::Output, false, true, false, false);
        assert_eq!(s, TcpState::Established);
        // A flood of bare ACKs on a SYN_RECV entry never establishes it (normal table would).
        assert_eq!(
            next_state_in(
                Secure,
                TcpState::SynRecv,
                TcpDir::Input,
                false,
                true,
                false,
                false
            ),
            TcpState::SynRecv
        );
        assert_eq!(
            next_state(TcpState::SynRecv, TcpDir::Input, false, true, false, false),
            TcpState::Established
        );
    }

    #[test]
    fn names_and_timeouts() {
        assert_eq!(TcpState::SynAck.name(), "SYNACK");
        assert_eq!(TcpState::Established.default_timeout_s(), 900);
        assert_eq!(TcpState::Close.default_timeout_s(), 10);
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(TcpState::from_u8(i as u8), *s);
        }
    }
}
