//! The session record kept in the per-core slab.

use crate::sched::DestSlot;
use crate::service::{Addr, FlowKey, FwdMethod, Proto};

use super::flags;
use super::state::TcpState;

/// "No entry" marker for slab links.
pub(crate) const NIL: u32 = u32::MAX;

/// One IPVS connection (or persistence template) owned by one core.
///
/// Client side: `caddr:cport -> vaddr:vport`; server side: `daddr:dport <- laddr:lport`,
/// where `laddr:lport` is `caddr:cport` except under FULLNAT (the chosen LIP and port).
/// Everything sync needs is here: protocol, state, flags (forwarding method, `NOOUTPUT`,
/// `INACTIVE`, `TEMPLATE`, ...), the full state timeout, the firewall mark, `in_pkts`.
///
/// Laid out as exactly two cache lines (`repr(C, align(64))`, 128 bytes): the four
/// addresses fill the first, everything else the second, so a lookup touches two lines,
/// never three, and a burst prefetches both ([`super::ConnTable::prefetch_session`]).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Session {
    pub(crate) caddr: Addr,
    pub(crate) vaddr: Addr,
    pub(crate) daddr: Addr,
    pub(crate) laddr: Addr,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    pub(crate) lport: u16,
    pub(crate) fwmark: u32,
    /// Full timeout of the current state, seconds.
    pub(crate) timeout: u32,
    /// Expiry tick.
    pub(crate) expires: u32,
    /// Tick of the wheel slot the entry is linked in (or `DYING`).
    pub(crate) wheel_at: u32,
    pub(crate) next: u32,
    pub(crate) prev: u32,
    pub(crate) dest: DestSlot,
    /// Controlling template (slab index) or `NIL`.
    pub(crate) control: u32,
    /// Number of sessions this template controls.
    pub(crate) n_control: u32,
    pub(crate) in_pkts: u32,
    pub(crate) flags: u16,
    pub(crate) proto: Proto,
    pub(crate) state: u8,
    /// Sync (master): state at the last send (`old_state`).
    pub(crate) sync_old: u8,
    /// Sync (master): announced end time, seconds, low 2 bits retries (`sync_endtime`).
    pub(crate) sync_end: u16,
}

impl Session {
    /// Client address.
    pub fn caddr(&self) -> Addr {
        self.caddr
    }
    /// Client port (0 in templates).
    pub fn cport(&self) -> u16 {
        self.cport
    }
    /// Virtual address (the fwmark for fwmark templates).
    pub fn vaddr(&self) -> Addr {
        self.vaddr
    }
    /// Virtual port.
    pub fn vport(&self) -> u16 {
        self.vport
    }
    /// Real server address.
    pub fn daddr(&self) -> Addr {
        self.daddr
    }
    /// Real server port.
    pub fn dport(&self) -> u16 {
        self.dport
    }
    /// Source address towards the real server (the LIP under FULLNAT, else `caddr`).
    pub fn laddr(&self) -> Addr {
        self.laddr
    }
    /// Source port towards the real server (the FULLNAT lport, else `cport`).
    pub fn lport(&self) -> u16 {
        self.lport
    }
    /// Protocol (`Ip` for fwmark templates).
    pub fn proto(&self) -> Proto {
        self.proto
    }
    /// Firewall mark of the packet that created the session (0 if none).
    pub fn fwmark(&self) -> u32 {
        self.fwmark
    }
    /// Raw state number (TCP: [`TcpState`]; UDP and templates: 0).
    pub fn state(&self) -> u8 {
        self.state
    }
    /// The TCP state (meaningful for TCP sessions).
    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_u8(self.state)
    }
    /// The state name `ipvsadm -Lc` prints (`NONE` for templates, `UDP` for UDP).
    pub fn state_name(&self) -> &'static str {
        if self.is_template() {
            return if self.state == 1 { "ASSURED" } else { "NONE" };
        }
        match self.proto {
            Proto::Tcp => self.tcp_state().name(),
            Proto::Udp => "UDP",
            Proto::Ip => "NONE",
        }
    }
    /// IPVS conn flags (`IP_VS_CONN_F_*`), without rvs's private bits.
    pub fn flags(&self) -> u16 {
        self.flags & !flags::PRIVATE
    }
    /// Forwarding method.
    pub fn fwd(&self) -> FwdMethod {
        FwdMethod::from_flags(self.flags)
    }
    /// A persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    /// Counted in InActConn.
    pub fn is_inactive(&self) -> bool {
        self.flags & flags::INACTIVE != 0
    }
    /// Full timeout of the current state, in seconds (what sync sends).
    pub fn timeout_secs(&self) -> u32 {
        self.timeout
    }
    /// Client packets seen.
    pub fn in_pkts(&self) -> u32 {
        self.in_pkts
    }
    /// Sessions controlled by this template.
    pub fn n_control(&self) -> u32 {
        self.n_control
    }
    /// True when the session has a controlling template.
    pub fn has_control(&self) -> bool {
        self.control != NIL
    }

    pub(crate) fn is_live(&self) -> bool {
        self.flags & flags::LIVE != 0
    }

    /// The client-side tuple (as the client's packets carry it).
    pub fn in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.caddr,
            daddr: self.vaddr,
            sport: self.cport,
            dport: self.vport,
        }
    }

    /// The server-side tuple (as the real server's replies carry it).
    pub fn out_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.daddr,
            daddr: self.laddr,
            sport: self.dport,
            dport: self.lport,
        }
    }

    pub(crate) fn in_eq(&self, k: &FlowKey) -> bool {
        self.cport == k.sport
            && self.vport == k.dport
            && self.proto == k.proto
            && self.caddr == k.saddr
            && self.vaddr == k.daddr
    }

    pub(crate) fn out_eq(&self, k: &FlowKey) -> bool {
        self.dport == k.sport
            && self.lport == k.dport
            && self.proto == k.proto
            && self.daddr == k.saddr
            && self.laddr == k.daddr
    }
}

#[inline(always)]
fn fm(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Keyed hash of a tuple (folded multiplies, wyhash/foldhash style); `template` keeps
/// templates and sessions with equal tuples apart.
#[inline]
pub(crate) fn hash_flow(seed: u64, k: &FlowKey, template: bool) -> u64 {
    const K1: u64 = 0x243f_6a88_85a3_08d3;
    const K2: u64 = 0x1319_8a2e_0370_7344;
    const K3: u64 = 0xa409_3822_299f_31d0;
    const K4: u64 = 0x082e_fa98_ec4e_6c89;
    let s = u128::from_le_bytes(k.saddr.0);
    let d = u128::from_le_bytes(k.daddr.0);
    let ports = (u64::from(k.sport) << 32)
        | (u64::from(k.dport) << 16)
        | (u64::from(k.proto as u8) << 1)
        | u64::from(template);
    let h1 = fm((s as u64) ^ seed, ((s >> 64) as u64) ^ K1);
    let h2 = fm((d as u64) ^ K2, ((d >> 64) as u64) ^ seed.rotate_left(29));
    fm(h1 ^ ports ^ K3, h2 ^ K4 ^ seed)
}
