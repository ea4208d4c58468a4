//! Applying a packet to its session: the TCP state table, ActiveConn/InActConn moves, the
//! timeout of the new state and the re-armed expiry.

use crate::flow::{Proto, TcpFlags};
use crate::sched::NO_SLOT;

use super::session::DYING;
use super::state::{next_tcp_state, Direction, Rows, TcpState};
use super::table::ConnTable;
use super::{flags, ConnId};

/// The result of a state transition (what sync needs to decide whether to send).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before the packet.
    pub old_state: u8,
    /// State after the packet.
    pub new_state: u8,
    /// `in_pkts` after the packet.
    pub in_pkts: u32,
}

impl ConnTable {
    /// Applies one packet to a session: the TCP state table (INPUT, OUTPUT or INPUT-ONLY rows),
    /// ActiveConn/InActConn moves, the timeout of the new state, `in_pkts` for client packets,
    /// and re-arms the expiry. No allocation.
    #[inline(always)]
    pub fn state_transition(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp: TcpFlags,
        now_ms: u64,
    ) -> Option<Transition> {
        // Borrowed, not copied: the table of timeouts is a dozen words.
        let timeouts = &self.cfg.timeouts;
        let s = self.slab.get_mut(id.0 as usize).filter(|s| s.is_live())?;
        if s.flags & flags::TEMPLATE != 0 {
            return None;
        }
        if dir == Direction::Input {
            s.in_pkts = s.in_pkts.wrapping_add(1);
        }
        let old = s.state;
        match s.proto {
            Proto::Tcp => {
                let mut rows = match dir {
                    Direction::Input => Rows::Input,
                    Direction::Output => Rows::Output,
                };
                if s.flags & flags::NOOUTPUT != 0 {
                    if dir == Direction::Output {
                        s.flags &= !flags::NOOUTPUT;
                    } else {
                        rows = Rows::InputOnly;
                    }
                }
                let new = next_tcp_state(rows, tcp, TcpState::from_u8(old));
                if new as u8 != old && s.dest != NO_SLOT {
                    let inactive = s.flags & flags::INACTIVE != 0;
                    if !inactive && !new.is_active() {
                        s.flags |= flags::INACTIVE;
                        self.dests.set_active(s.dest, false);
                    } else if inactive && new.is_active() {
                        s.flags &= !flags::INACTIVE;
                        self.dests.set_active(s.dest, true);
                    }
                }
                s.state = new as u8;
                s.timeout = timeouts.tcp(new);
            }
            Proto::Udp => s.timeout = timeouts.udp,
            Proto::Ip => {}
        }
        let t = Transition {
            old_state: old,
            new_state: s.state,
            in_pkts: s.in_pkts,
        };
        if s.flags & flags::ONE_PACKET == 0 && s.wheel_at != DYING {
            self.arm(id.0, now_ms);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn nat_tcp_walk_in_and_out_with_counters_and_expiry() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let a = h.id_of(RS1);
        let id = h.syn(C1, 51234, 0).unwrap();
        assert_eq!(h.state(id), "SYN_RECV");
        assert_eq!(h.counts(a), (1, 0, 0));
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 60);
        assert_eq!(h.t.get(id).unwrap().dport(), 8080);
        h.reply(id, TcpFlags::SYN_ACK, 0);
        assert_eq!(h.state(id), "SYN_RECV");
        assert_eq!(h.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::ACK, SEC), Ok(id));
        assert_eq!(h.state(id), "ESTABLISHED");
        assert_eq!(h.counts(a), (1, 0, 0));
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 900);
        // The client closes: INPUT fin on ES -> CLOSE_WAIT (inactive).
        h.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::FIN_ACK, 2 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "CLOSE_WAIT");
        assert_eq!(h.counts(a), (0, 1, 0));
        // The server closes: OUTPUT fin on CW -> TIME_WAIT; the last ACK keeps TIME_WAIT.
        h.reply(id, TcpFlags::FIN_ACK, 3 * SEC);
        assert_eq!(h.state(id), "TIME_WAIT");
        h.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::ACK, 4 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "TIME_WAIT");
        assert_eq!(h.t.get(id).unwrap().in_pkts(), 4);
        // TIME_WAIT lasts 120 s from the last packet.
        assert_eq!(h.expire(124 * SEC - 1), 0);
        assert!(h.t.get(id).is_some());
        assert_eq!(h.expire(124 * SEC), 1);
        assert!(h.t.get(id).is_none());
        assert_eq!(h.released, vec![(C1, 51234, C1, 51234)]);
        assert_eq!(h.counts(a), (0, 0, 0));
        assert_eq!(h.t.len(), 0);
    }

    #[test]
    fn nat_reset_by_server_closes_in_10s() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let a = h.id_of(RS1);
        let id = h.syn(C1, 1000, 0).unwrap();
        h.reply(id, TcpFlags::RST, 5 * SEC);
        assert_eq!(h.state(id), "CLOSE");
        assert_eq!(h.counts(a), (0, 1, 0));
        assert_eq!(h.expire(15 * SEC - 1), 0);
        assert_eq!(h.expire(15 * SEC), 1);
    }

    #[test]
    fn dr_uses_input_only_rows_and_has_no_out_entry() {
        let mut h = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(RS1, 80, FwdMethod::Route)],
        );
        let a = h.id_of(RS1);
        let id = h.syn(C1, 2000, 0).unwrap();
        let s = h.t.get(id).unwrap();
        assert_ne!(s.flags() & flags::NOOUTPUT, 0);
        assert_eq!(s.fwd(), FwdMethod::Route);
        assert_eq!(h.t.lookup_out(&s.out_key()), None);
        assert_eq!(h.state(id), "SYN_RECV");
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::ACK, SEC).unwrap();
        assert_eq!(h.state(id), "ESTABLISHED");
        // INPUT-ONLY fin on ES -> FIN_WAIT (INPUT would give CLOSE_WAIT).
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::FIN_ACK, 2 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "FIN_WAIT");
        assert_eq!(h.counts(a), (0, 1, 0));
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 120);
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::ACK, 3 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "FIN_WAIT");
        // A SYN on a FIN_WAIT session is no reuse (mode 1): INPUT-ONLY syn on sFW -> SYN_RECV.
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::SYN, 4 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "SYN_RECV");
        assert_eq!(h.counts(a), (1, 0, 0));
        // INPUT-ONLY rst on SYN_RECV -> SYN_RECV (kept), then ACK -> ES, RST -> CLOSE.
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::RST, 5 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "SYN_RECV");
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::ACK, 6 * SEC)
            .unwrap();
        h.pkt(C1, 2000, Proto::Tcp, 80, TcpFlags::RST, 7 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "CLOSE");
        assert_eq!(h.counts(a), (0, 1, 0));
    }

    #[test]
    fn tunnel_is_input_only_too() {
        let mut h = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(RS1, 80, FwdMethod::Tunnel)],
        );
        let id = h.syn(C1, 2001, 0).unwrap();
        h.pkt(C1, 2001, Proto::Tcp, 80, TcpFlags::ACK, SEC).unwrap();
        h.pkt(C1, 2001, Proto::Tcp, 80, TcpFlags::FIN, 2 * SEC)
            .unwrap();
        assert_eq!(h.state(id), "FIN_WAIT");
    }

    #[test]
    fn udp_sessions_are_inactive_and_last_300s() {
        let key = vip_key(Proto::Udp, 53);
        let mut h = H::new(
            Proto::Udp,
            ServiceConfig::new(key, SchedKind::Rr),
            &[DestConfig::new(RS1, 53, FwdMethod::Route)],
            8,
        );
        let a = h.id_of(RS1);
        let id = h.pkt(C1, 40000, Proto::Udp, 53, TcpFlags::NONE, 0).unwrap();
        assert_eq!(h.state(id), "UDP");
        assert_eq!(h.counts(a), (0, 1, 0));
        h.pkt(C1, 40000, Proto::Udp, 53, TcpFlags::NONE, 10 * SEC)
            .unwrap();
        assert_eq!(h.counts(a), (0, 1, 0));
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 300);
        let row = h.t.list(12 * SEC).next().unwrap().format_row();
        assert_eq!(
            row,
            "UDP 04:58  UDP         203.0.113.5:40000  192.168.1.100:53   10.1.1.1:53"
        );
        assert_eq!(h.expire(310 * SEC - 1), 0);
        assert_eq!(h.expire(310 * SEC), 1);
        assert_eq!(h.counts(a), (0, 0, 0));
    }

    #[test]
    fn set_timeouts_applies_from_the_next_packet() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let id = h.syn(C1, 1, 0).unwrap();
        h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        h.t.set_timeouts(3600, 0, 0);
        assert_eq!(h.t.timeouts().get(), (3600, 120, 300));
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 900);
        h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC).unwrap();
        assert_eq!(h.t.get(id).unwrap().timeout_secs(), 3600);
        // Longer than one turn of the wheel (27 min): still exact.
        assert_eq!(h.expire(3601 * SEC - 1), 0);
        assert_eq!(h.expire(3601 * SEC), 1);
    }
}
