//! The IPVS TCP state machine (`ip_vs_proto_tcp.c`) and the protocol timeouts.
//!
//! The event of a segment is chosen by priority RST > SYN > FIN > ACK; a segment with none of
//! these flags moves the session to CLOSE (`set_tcp_state` starts from `IP_VS_TCP_S_CLOSE`).
//! Three tables: INPUT (client to server) and OUTPUT (server to client) for NAT/FULLNAT,
//! INPUT-ONLY for sessions whose replies bypass the director (DR, TUN, local: the
//! `NOOUTPUT` flag); an OUTPUT segment seen on such a session clears `NOOUTPUT`.

use crate::flow::TcpFlags;

/// TCP session states (`IP_VS_TCP_S_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// NONE (new session, before its first segment).
    None = 0,
    /// ESTABLISHED.
    Established = 1,
    /// SYN_SENT.
    SynSent = 2,
    /// SYN_RECV.
    SynRecv = 3,
    /// FIN_WAIT.
    FinWait = 4,
    /// TIME_WAIT.
    TimeWait = 5,
    /// CLOSE.
    Close = 6,
    /// CLOSE_WAIT.
    CloseWait = 7,
    /// LAST_ACK.
    LastAck = 8,
    /// LISTEN.
    Listen = 9,
    /// SYNACK.
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    /// All states in kernel order.
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state for its number (unknown numbers give CLOSE).
    pub fn from_u8(v: u8) -> TcpState {
        TcpState::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(TcpState::Close)
    }

    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK",
        ][self as usize]
    }

    /// Counted in ActiveConn (`tcp_state_active`): ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }
}

/// A session's state as `ipvsadm -Lc` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// A TCP session in this state.
    Tcp(TcpState),
    /// A UDP session (`UDP`).
    Udp,
    /// A persistence template: `NONE`, or `ASSURED` once its state is 1.
    Template {
        /// The template's state is 1 (`ASSURED`).
        assured: bool,
    },
    /// A session of another protocol (`NONE`).
    Other,
}

impl SessionState {
    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Tcp(t) => t.name(),
            SessionState::Udp => "UDP",
            SessionState::Template { assured: true } => "ASSURED",
            SessionState::Template { assured: false } | SessionState::Other => "NONE",
        }
    }
}

/// Direction of a packet relative to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (`IP_VS_DIR_INPUT`).
    Input,
    /// Server to client (`IP_VS_DIR_OUTPUT`).
    Output,
}

#[allow(non_upper_case_globals, dead_code)]
mod s {
    pub const sNO: u8 = 0;
    pub const sES: u8 = 1;
    pub const sSS: u8 = 2;
    pub const sSR: u8 = 3;
    pub const sFW: u8 = 4;
    pub const sTW: u8 = 5;
    pub const sCL: u8 = 6;
    pub const sCW: u8 = 7;
    pub const sLA: u8 = 8;
    pub const sLI: u8 = 9;
    pub const sSA: u8 = 10;
}
use s::*;

/// Row sets: INPUT, OUTPUT, INPUT-ONLY; events syn, fin, ack, rst; columns = current state.
#[rustfmt::skip]
const TABLE: [[[u8; TCP_STATES]; 4]; 3] = [
    // INPUT          sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
    [/* syn */ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
     /* fin */ [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW],
     /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
     /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR]],
    // OUTPUT
    [/* syn */ [sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR],
     /* fin */ [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
     /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
     /* rst */ [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL]],
    // INPUT-ONLY
    [/* syn */ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
     /* fin */ [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
     /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
     /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL]],
];

/// Which rows apply to a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// INPUT rows.
    Input = 0,
    /// OUTPUT rows.
    Output = 1,
    /// INPUT-ONLY rows.
    InputOnly = 2,
}

/// The next TCP state (`set_tcp_state`'s table lookup, event priority rst > syn > fin > ack;
/// no flag at all gives CLOSE).
#[inline(always)]
pub fn next_tcp_state(rows: Rows, flags: TcpFlags, cur: TcpState) -> TcpState {
    let ev = if flags.has(TcpFlags::RST) {
        3
    } else if flags.has(TcpFlags::SYN) {
        0
    } else if flags.has(TcpFlags::FIN) {
        1
    } else if flags.has(TcpFlags::ACK) {
        2
    } else {
        return TcpState::Close;
    };
    TcpState::from_u8(TABLE[rows as usize][ev][cur as usize])
}

/// Protocol timeouts in seconds (`tcp_timeouts`, `udp_timeouts`), changeable at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Per TCP state.
    pub tcp: [u32; TCP_STATES],
    /// UDP.
    pub udp: u32,
}

/// Timeout of a session before its first transition (`ip_vs_conn_new`: 3 s).
pub const NEW_CONN_TIMEOUT: u32 = 3;
/// Retry period of a template that still controls sessions when it expires.
pub const TEMPLATE_RETRY: u32 = 60;
/// The state of an assured persistence template (templates are in state 0 or this one).
pub const TEMPLATE_ASSURED: u8 = 1;
/// Timeout of a synced template whose message carries none (v0), seconds.
pub const SYNCED_TEMPLATE_TIMEOUT: u32 = 180;

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            //    NONE ES   SS   SR  FW   TW   CL  CW  LA  LI   SA
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
        }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 keeps a value.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// `(tcp, tcpfin, udp)` for `Timeout (tcp tcpfin udp): %d %d %d`.
    pub fn get(&self) -> (u32, u32, u32) {
        (
            self.tcp[TcpState::Established as usize],
            self.tcp[TcpState::FinWait as usize],
            self.udp,
        )
    }

    /// Timeout of a TCP state.
    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::*;

    #[test]
    fn cells_from_the_spec_table() {
        let f = TcpFlags::FIN;
        let a = TcpFlags::ACK;
        // INPUT: SYN from NONE -> SYN_RECV; ACK from SYN_RECV -> ESTABLISHED.
        assert_eq!(next_tcp_state(Rows::Input, TcpFlags::SYN, None), SynRecv);
        assert_eq!(next_tcp_state(Rows::Input, a, SynRecv), Established);
        // FIN in ES: INPUT -> CLOSE_WAIT, INPUT-ONLY -> FIN_WAIT, OUTPUT -> FIN_WAIT.
        assert_eq!(next_tcp_state(Rows::Input, f | a, Established), CloseWait);
        assert_eq!(next_tcp_state(Rows::InputOnly, f | a, Established), FinWait);
        assert_eq!(next_tcp_state(Rows::Output, f, Established), FinWait);
        // OUTPUT SYN+ACK on SYN_RECV stays SYN_RECV (syn has priority over ack).
        assert_eq!(
            next_tcp_state(Rows::Output, TcpFlags::SYN_ACK, SynRecv),
            SynRecv
        );
        // RST beats SYN; RST in LAST_ACK: INPUT keeps LAST_ACK, OUTPUT closes.
        let rs = TcpFlags::RST | TcpFlags::SYN;
        assert_eq!(next_tcp_state(Rows::Input, rs, Established), Close);
        assert_eq!(next_tcp_state(Rows::Input, TcpFlags::RST, LastAck), LastAck);
        assert_eq!(next_tcp_state(Rows::Output, TcpFlags::RST, LastAck), Close);
        // RST on SYNACK: INPUT -> SYN_RECV, INPUT-ONLY -> CLOSE.
        assert_eq!(next_tcp_state(Rows::Input, TcpFlags::RST, SynAck), SynRecv);
        assert_eq!(
            next_tcp_state(Rows::InputOnly, TcpFlags::RST, SynAck),
            Close
        );
        // OUTPUT ACK in LISTEN -> ESTABLISHED; OUTPUT RST in TIME_WAIT stays.
        assert_eq!(next_tcp_state(Rows::Output, a, Listen), Established);
        assert_eq!(
            next_tcp_state(Rows::Output, TcpFlags::RST, TimeWait),
            TimeWait
        );
        // No flags at all -> CLOSE.
        assert_eq!(
            next_tcp_state(Rows::Input, TcpFlags::NONE, Established),
            Close
        );
    }

    #[test]
    fn timeouts_and_set() {
        let mut t = Timeouts::default();
        assert_eq!(t.get(), (900, 120, 300));
        assert_eq!(t.tcp(SynRecv), 60);
        assert_eq!(t.tcp(Close), 10);
        assert_eq!(t.tcp(TimeWait), 120);
        assert_eq!(t.tcp(LastAck), 30);
        t.set(3600, 0, 60);
        assert_eq!(t.get(), (3600, 120, 60));
        t.set(0, 30, 0);
        assert_eq!(t.get(), (3600, 30, 60));
        assert_eq!(Established.name(), "ESTABLISHED");
        assert!(SynAck.is_active() && !Close.is_active() && !None.is_active());
    }
}
