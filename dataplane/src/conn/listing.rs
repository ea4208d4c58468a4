//! The rows of `ipvsadm -Lnc`.

#[cfg(test)]
use crate::flow::endpoint;
use crate::flow::{Addr, Proto};

use super::session::Session;
use super::state::SessionState;
use super::table::ConnTable;
use super::ConnId;

/// One row of `ipvsadm -Lnc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnListing {
    /// Protocol (`IP` for fwmark templates).
    pub proto: Proto,
    /// Seconds until expiry.
    pub expire_secs: u64,
    /// State (its `name()` is what `ipvsadm -Lnc` prints).
    pub state: SessionState,
    /// Source (client) address and port.
    pub caddr: Addr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: Addr,
    /// Virtual port.
    pub vport: u16,
    /// Destination (real server) address.
    pub daddr: Addr,
    /// Real server port.
    pub dport: u16,
    /// FULLNAT local address (= caddr otherwise).
    pub laddr: Addr,
    /// FULLNAT local port (= cport otherwise).
    pub lport: u16,
    /// IPVS conn flags.
    pub flags: u16,
}

#[cfg(test)]
impl ConnListing {
    /// The row as `ipvsadm -Lnc` prints it: `"%-3s %-6s %-11s %-18s %-18s %s"`, expire
    /// `%02d:%02d`.
    pub fn format_row(&self) -> String {
        let exp = format!("{:02}:{:02}", self.expire_secs / 60, self.expire_secs % 60);
        format!(
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            self.proto.name(),
            exp,
            self.state.name(),
            endpoint(&self.caddr, self.cport),
            endpoint(&self.vaddr, self.vport),
            endpoint(&self.daddr, self.dport)
        )
    }
}

impl ConnTable {
    /// Live sessions and templates, for listing.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Session)> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, s)| (ConnId(i as u32), s))
    }

    /// The rows of `ipvsadm -Lnc`.
    pub fn list(&self, now_ms: u64) -> impl Iterator<Item = ConnListing> + '_ {
        self.iter().map(move |(_, s)| ConnListing {
            proto: s.proto,
            expire_secs: self.expires_in_secs(s, now_ms),
            state: s.session_state(),
            caddr: s.caddr(),
            cport: s.cport,
            vaddr: s.vaddr(),
            vport: s.vport,
            daddr: s.daddr(),
            dport: s.dport,
            laddr: s.laddr(),
            lport: s.lport,
            flags: s.flags(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn listing_row_like_ipvsadm() {
        let mut h = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(Addr::v4(10, 1, 1, 2), 80, FwdMethod::Route)],
        );
        let id = h.syn(C1, 51234, 0).unwrap();
        h.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        let rows: Vec<String> = h.t.list(SEC).map(|e| e.format_row()).collect();
        assert_eq!(
            rows,
            vec![
                "TCP 14:59  ESTABLISHED 203.0.113.5:51234  192.168.1.100:80   10.1.1.2:80"
                    .to_string()
            ]
        );
        assert_eq!(h.t.dest_of(id), Some(h.id_of(Addr::v4(10, 1, 1, 2))));
    }
}
