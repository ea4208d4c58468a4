//! Replication of sessions to a standby director (the kernel's `ip_vs_sync.c` rules, without
//! the transport, which is the `sync` module): the record of a session ([`SyncConn`]), when the
//! master sends one ([`conn_needed`], the kernel's `ip_vs_sync_conn_needed`), and on the
//! standby the installation of a received record ([`ConnTable::install_synced`]).
//!
//! When the master sends a connection:
//!
//! Called for every client packet with `pkts = ++in_pkts`:
//! - templates are always sent when their connection is (subject to the refresh rule);
//! - TCP is synced only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT;
//!   entering one of these other than ESTABLISHED forces a send at once;
//! - otherwise a send happens when `pkts % sync_period == sync_threshold` (defaults 3 and
//!   50: packets 3, 53, 103, …); with `sync_period` 0 only packet `sync_threshold` is sent
//!   (when `sync_refresh_period` is 0 too);
//! - `sync_refresh_period` > 0 suppresses resends while the expiry announced last time is
//!   within `min(refresh, max(timeout/2, 10 s))` of the new one, with up to
//!   `sync_retries` retries after `refresh/8`.
//!
//! The per-connection memory is [`SyncMark`]: the state last sent (`old_state`) and the
//! announced end time in seconds (low 2 bits: retries), as the kernel's `sync_endtime`.

use crate::flow::{Addr, FlowKey, FwdMethod, Proto};
use crate::sched::{CoreSched, DestSlot, NO_SLOT};

use super::session::DYING;
use super::session::{cip, split_addrs, Session, NIL};
use super::state::{TcpState, SYNCED_TEMPLATE_TIMEOUT, TCP_STATES, TEMPLATE_ASSURED};
use super::table::{ConnTable, VACANT};
use super::wheel::MS_PER_SEC;
use super::{flags, ConnId};

/// The least change of the announced end time, seconds, that `sync_refresh_period` lets
/// through (the kernel's `max(timeout / 2, 10)`).
const MIN_REFRESH_DIFF_S: u32 = 10;
/// The low bits of `SyncMark::end` counting retries.
const RETRY_BITS: u16 = 3;

/// The sysctls that drive sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRules {
    /// `sync_threshold` (default 3).
    pub threshold: u32,
    /// `sync_period` (default 50).
    pub period: u32,
    /// `sync_refresh_period`, seconds (default 0: off).
    pub refresh_period: u32,
    /// `sync_retries` 0..=3 (default 0).
    pub retries: u8,
    /// `sync_persist_mode`: send only templates for persistent services (default off).
    pub persist_mode: bool,
}

impl Default for SyncRules {
    fn default() -> Self {
        SyncRules {
            threshold: 3,
            period: 50,
            refresh_period: 0,
            retries: 0,
            persist_mode: false,
        }
    }
}

/// What the master remembers per connection between sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncMark {
    /// State at the last send (`cp->old_state`).
    pub old_state: u8,
    /// Announced end time, seconds, low 2 bits = retries (`cp->sync_endtime`).
    pub end: u16,
}

/// The connection as the rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView {
    /// IP protocol number.
    pub protocol: u8,
    /// A persistence template.
    pub template: bool,
    /// Controlled by a template (`in_persistence`).
    pub persistent: bool,
    /// Current state.
    pub state: u8,
    /// Full timeout of the state, seconds.
    pub timeout: u32,
}

/// Decides whether to send; updates `mark` when it does. `pkts` is the connection's
/// `in_pkts` after this packet; `now_s` a monotonic clock in seconds.
pub fn conn_needed(
    r: &SyncRules,
    c: &ConnView,
    mark: &mut SyncMark,
    pkts: u32,
    now_s: u64,
) -> bool {
    let orig = mark.end;
    let mut n = ((now_s + u64::from(c.timeout)) as u16) & !RETRY_BITS;
    let force;
    if c.template {
        force = false;
    } else if r.persist_mode && c.persistent {
        return false;
    } else if c.protocol == Proto::Tcp as u8 {
        let st = TcpState::from_u8(c.state);
        if !matches!(
            st,
            TcpState::Established
                | TcpState::FinWait
                | TcpState::Close
                | TcpState::CloseWait
                | TcpState::TimeWait
        ) {
            return false;
        }
        force = c.state != mark.old_state;
        if force && st != TcpState::Established {
            mark.old_state = c.state;
            mark.end = n;
            return true;
        }
    } else {
        force = false;
    }
    if r.refresh_period > 0 {
        let diff = i64::from(n.wrapping_sub(orig) as i16);
        let min_diff = i64::from((c.timeout / 2).max(MIN_REFRESH_DIFF_S));
        if diff.abs() < i64::from(r.refresh_period).min(min_diff) {
            let retries = orig & RETRY_BITS;
            if retries >= u16::from(r.retries) {
                return false;
            }
            // time_before(now, orig - timeout + refresh/8)
            let since = (now_s as u16).wrapping_sub(orig.wrapping_sub(c.timeout as u16)) as i16;
            if i64::from(since) < i64::from(r.refresh_period >> 3) {
                return false;
            }
            n |= retries + 1;
        }
    }
    if r.period > 0 {
        if !c.template && pkts % r.period != r.threshold {
            return false;
        }
    } else if r.refresh_period == 0 && pkts != r.threshold {
        return false;
    }
    mark.old_state = c.state;
    let changed = mark.end == orig;
    mark.end = n;
    changed || force
}

/// One synchronised connection (or persistence template) as carried by a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncConn {
    /// IP protocol number (6 TCP, 17 UDP, 0 for fwmark templates).
    pub protocol: u8,
    /// IPv6 addresses (record type bit 0).
    pub v6: bool,
    /// IPVS conn flags (`IP_VS_CONN_F_*`, without `HASHED`).
    pub flags: u32,
    /// Protocol state (TCP state number; 0 for UDP and templates).
    pub state: u16,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub dport: u16,
    /// Firewall mark.
    pub fwmark: u32,
    /// Full timeout of the state, seconds (0 in v0 messages: take the local table's).
    pub timeout: u32,
    /// Client address.
    pub caddr: Addr,
    /// Virtual address.
    pub vaddr: Addr,
    /// Real server address.
    pub daddr: Addr,
    /// FULLNAT local address and port (rvs's option), if any.
    pub local: Option<(Addr, u16)>,
    /// The client-side sequence shift (`IPVS_OPT_SEQ_DATA`'s `in_seq`: initial sequence
    /// number and delta) of a session with `IP_VS_CONN_F_IN_SEQ`: a PROXY header in the
    /// stream toward the real server.
    pub in_seq: Option<(u32, u32)>,
    /// The server-side translation of a SYN-proxied session with
    /// `IP_VS_CONN_F_OUT_SEQ` (`IPVS_OPT_SEQ_DATA`'s `out_seq`): `init_seq` carries the
    /// legs' window scales (high 16 bits) and whether timestamps are translated (bit 0),
    /// `delta` the sequence delta, `previous_delta` the timestamp delta. (A kernel
    /// backup applies an `out_seq` only for an application helper, which such a session
    /// never has.)
    pub out_seq: Option<(u32, u32, u32)>,
}

impl ConnTable {
    /// The sync record of a session or template (what the master sends): flags without
    /// `HASHED`, the full timeout of the state, and for FULLNAT sessions rvs's option
    /// with the local address and port.
    pub fn sync_record(&self, id: ConnId) -> Option<SyncConn> {
        let s = self.slab.get(id.0 as usize).filter(|s| s.is_live())?;
        let local =
            (s.fwd() == FwdMethod::FullNat && !s.is_template()).then_some((s.laddr(), s.lport));
        // The record's family covers caddr, vaddr and daddr: IPv6 if any is (a NAT64
        // session's IPv4 real server goes IPv4-mapped); the LIP has its own.
        let v6 = !(s.caddr().is_v4() && s.vaddr().is_v4() && s.daddr().is_v4());
        Some(SyncConn {
            protocol: s.proto as u8,
            v6,
            flags: u32::from(s.flags() & !flags::HASHED),
            state: u16::from(s.state),
            cport: s.cport,
            vport: s.vport,
            dport: s.dport,
            fwmark: s.fwmark,
            timeout: s.timeout,
            caddr: s.caddr(),
            vaddr: s.vaddr(),
            daddr: s.daddr(),
            local,
            in_seq: (s.flags & flags::IN_SEQ != 0).then_some((s.seq_init, u32::from(s.seq_delta))),
            out_seq: (s.flags & (flags::OUT_SEQ | flags::SYNPROXY) == flags::OUT_SEQ && s.v6 == 0)
                .then(|| {
                    let st = s.synproxy();
                    let init = u32::from(st.scales) << 16 | u32::from(st.ts);
                    (init, st.delta, st.ts_delta)
                }),
        })
    }

    /// Bulk sync: the sync records of the live sessions and templates in slab slots
    /// `start..`, appended to `out`, stopping after `max_records` records or `max_slots`
    /// slots looked at, whichever comes first (so one call is a bounded amount of work).
    /// Returns the slot to continue from, `None` when the walk is done.
    ///
    /// A session expired at once ([`ConnTable::expire_now`]) is skipped. Slots are stable
    /// (an entry never moves), so across calls with the table changing
    /// in between, every entry live for the whole walk is returned exactly once; an entry
    /// added meanwhile is returned if it lands in a slot not yet walked.
    pub fn sync_records_from(
        &self,
        start: u32,
        max_records: usize,
        max_slots: usize,
        out: &mut Vec<SyncConn>,
    ) -> Option<u32> {
        let len = self.slab.len();
        let mut i = start as usize;
        let (mut taken, mut looked) = (0usize, 0usize);
        while i < len && taken < max_records.max(1) && looked < max_slots.max(1) {
            // A session expired at once (`expire_now`) is no longer sent.
            let dying = self.slab[i].wheel_at == DYING;
            if let Some(r) = (!dying)
                .then(|| self.sync_record(ConnId(i as u32)))
                .flatten()
            {
                out.push(r);
                taken += 1;
            }
            looked += 1;
            i += 1;
        }
        (i < len).then_some(i as u32)
    }

    /// Master side, after a client packet's [`ConnTable::state_transition`]: applies the
    /// IPVS sending rules ([`conn_needed`]) to the session and then to
    /// its controlling template (whose `in_pkts` counts its children's packets), and hands
    /// the records to send to `emit`. One-packet sessions are never sent (their template
    /// is). No allocation.
    pub fn sync_check(
        &mut self,
        id: ConnId,
        rules: &SyncRules,
        now_ms: u64,
        mut emit: impl FnMut(SyncConn),
    ) {
        let now_s = now_ms / MS_PER_SEC;
        let Some(s) = self.slab.get(id.0 as usize).filter(|s| s.is_live()) else {
            return;
        };
        let control = s.control;
        if s.flags & flags::ONE_PACKET == 0 && !s.is_template() {
            let view = ConnView {
                protocol: s.proto as u8,
                template: false,
                persistent: control != NIL,
                state: s.state,
                timeout: s.timeout,
            };
            let mut mark = SyncMark {
                old_state: s.sync_old,
                end: s.sync_end,
            };
            let pkts = s.in_pkts;
            let send = conn_needed(rules, &view, &mut mark, pkts, now_s);
            let s = &mut self.slab[id.0 as usize];
            s.sync_old = mark.old_state;
            s.sync_end = mark.end;
            if send {
                if let Some(r) = self.sync_record(id) {
                    emit(r);
                }
            }
        }
        if control == NIL {
            return;
        }
        let Some(t) = self.slab.get_mut(control as usize).filter(|t| t.is_live()) else {
            return;
        };
        t.in_pkts = t.in_pkts.wrapping_add(1);
        let view = ConnView {
            protocol: t.proto as u8,
            template: true,
            persistent: false,
            state: t.state,
            timeout: t.timeout,
        };
        let mut mark = SyncMark {
            old_state: t.sync_old,
            end: t.sync_end,
        };
        let send = conn_needed(rules, &view, &mut mark, t.in_pkts, now_s);
        t.sync_old = mark.old_state;
        t.sync_end = mark.end;
        if send {
            if let Some(r) = self.sync_record(ConnId(control)) {
                emit(r);
            }
        }
    }

    /// Standby side: installs (or updates) a session or template received from the
    /// master, as the kernel's `ip_vs_proc_conn`:
    /// - flags are masked to `FWD|NOOUTPUT|INACTIVE|SEQ|NO_CPORT|TEMPLATE` and `SYNC` is
    ///   added;
    /// - an existing entry only takes `INACTIVE|SEQ`, the state and the timeout; one whose
    ///   real server (daddr/dport) changed is replaced;
    /// - a new entry binds to the matching local real server of the matching local service
    ///   and takes its forwarding method; without one it stays unbound with the synced
    ///   method;
    /// - the timeout comes from the message (v0: the local protocol table, 180 s for
    ///   templates); `in_pkts` is set to `threshold` (`sync_threshold`).
    ///
    /// A new FULLNAT session needs the message's local address and port, and `reserve`
    /// must take that port from the local pool. Returns the entry and whether it is new.
    pub fn install_synced(
        &mut self,
        core: &mut CoreSched,
        c: &SyncConn,
        threshold: u32,
        now_ms: u64,
        reserve: impl FnOnce(Addr, u16) -> bool,
    ) -> Result<(ConnId, bool), SyncRefuse> {
        const MASK: u32 = (flags::FWD_MASK
            | flags::NOOUTPUT
            | flags::INACTIVE
            | flags::SEQ_MASK
            | flags::NO_CPORT
            | flags::TEMPLATE) as u32;
        let proto = Proto::from_number(c.protocol).ok_or(SyncRefuse::Protocol)?;
        let mut fl = (c.flags & MASK) as u16 | flags::SYNC;
        let template = fl & flags::TEMPLATE != 0;
        let mut state = c.state;
        if template {
            state = state.min(u16::from(TEMPLATE_ASSURED));
        } else {
            match proto {
                Proto::Ip => return Err(SyncRefuse::Protocol),
                Proto::Tcp if usize::from(state) >= TCP_STATES => return Err(SyncRefuse::State),
                Proto::Udp => state = 0,
                _ => {}
            }
        }
        let state = state as u8;
        let timeout = if c.timeout > 0 {
            c.timeout
        } else if template {
            SYNCED_TEMPLATE_TIMEOUT
        } else if proto == Proto::Tcp {
            self.cfg.timeouts.tcp(TcpState::from_u8(state))
        } else {
            self.cfg.timeouts.udp
        };
        let key = FlowKey {
            proto,
            saddr: c.caddr,
            daddr: c.vaddr,
            sport: c.cport,
            dport: c.vport,
        };
        let existing = if template {
            self.lookup_template(&key)
        } else {
            self.lookup_in(&key)
        };
        if let Some(id) = existing {
            let i = id.0;
            let s = &self.slab[i as usize];
            if s.daddr() == c.daddr && s.dport == c.dport {
                let synced = Synced {
                    flags: fl,
                    state,
                    timeout,
                    threshold,
                };
                self.update_synced(i, template, synced, now_ms);
                take_shift(&mut self.slab[i as usize], c.in_seq);
                take_synproxy(&mut self.slab[i as usize], c.out_seq);
                return Ok((id, false));
            }
            self.expire_now(id);
        }
        if self.is_full() {
            self.stats.table_full += 1;
            return Err(SyncRefuse::TableFull);
        }
        // The local real server, if the local configuration has it.
        let slot = local_binding(core, proto, c, &mut fl);
        let fwd = FwdMethod::from_flags(fl);
        let (laddr, lport) = if fwd == FwdMethod::FullNat && !template {
            let (a, p) = c.local.ok_or(SyncRefuse::NoLocalAddr)?;
            // The LIP is of the real server's family, as the data path picks it (an
            // IPv6 client of IPv4 servers has an IPv4 LIP: NAT64).
            if a.is_v4() != c.daddr.is_v4() {
                return Err(SyncRefuse::LocalFamily);
            }
            if !reserve(a, p) {
                return Err(SyncRefuse::LocalPortBusy);
            }
            (a, p)
        } else {
            (c.caddr, c.cport)
        };
        let Some(i) = self.alloc() else {
            self.stats.table_full += 1;
            return Err(SyncRefuse::TableFull);
        };
        let (lo, hi, v6) = split_addrs([c.caddr, c.vaddr, c.daddr, laddr]);
        self.slab[i as usize] = Session {
            lo,
            hi,
            v6,
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            lport,
            fwmark: c.fwmark,
            timeout,
            dest: slot,
            in_pkts: threshold,
            flags: flags::LIVE | fl,
            proto,
            state,
            sync_old: state,
            ..VACANT
        };
        if slot != NO_SLOT {
            self.dests.bind(slot, template, fl & flags::INACTIVE != 0);
        }
        take_shift(&mut self.slab[i as usize], c.in_seq);
        take_synproxy(&mut self.slab[i as usize], c.out_seq);
        self.hash_in(i, template);
        if !template && fl & flags::NOOUTPUT == 0 {
            self.hash_out(i);
        }
        self.arm(i, now_ms);
        self.stats.synced += 1;
        Ok((ConnId(i), true))
    }

    /// An existing entry takes a synced record's `INACTIVE|SEQ` flags, state and timeout
    /// (ActiveConn/InActConn follow), `in_pkts` = threshold, and its expiry is re-armed.
    fn update_synced(&mut self, i: u32, template: bool, r: Synced, now_ms: u64) {
        let upd = flags::INACTIVE | flags::SEQ_MASK;
        let s = &self.slab[i as usize];
        let was_inactive = s.flags & flags::INACTIVE != 0;
        let now_inactive = r.flags & flags::INACTIVE != 0;
        if !template && s.dest != NO_SLOT && was_inactive != now_inactive {
            self.dests.set_active(s.dest, !now_inactive);
        }
        let s = &mut self.slab[i as usize];
        s.flags = (s.flags & !upd) | (r.flags & upd);
        s.state = r.state;
        s.sync_old = r.state;
        s.timeout = r.timeout;
        s.in_pkts = r.threshold;
        if s.wheel_at != DYING {
            self.arm(i, now_ms);
        }
        self.stats.sync_updated += 1;
    }
}

/// A synced FULLNAT TCP session's client-side sequence shift (a PROXY header in the
/// stream toward its real server, `IN_SEQ` with the record's `in_seq`): taken, with the
/// header's version told by its length (v2's is fixed), so that a standby that takes
/// over keeps translating. A session past its handshake is settled (the header was
/// sent and acknowledged on the master); one still in it sends the header itself if it
/// is the first to see the client's first segment. Without sequence data there is no
/// shift.
fn take_shift(s: &mut Session, in_seq: Option<(u32, u32)>) {
    let fullnat_tcp = s.fwd() == FwdMethod::FullNat && s.proto == Proto::Tcp && !s.is_template();
    match in_seq {
        Some((init, delta))
            if s.flags & flags::IN_SEQ != 0 && fullnat_tcp && delta <= u32::from(u16::MAX) =>
        {
            s.seq_init = init;
            s.seq_delta = delta as u16;
            // The header names the client and the VIP: of the client's family.
            let v2 = if s.caddr().is_v4() {
                cip::V2_LEN_V4
            } else {
                cip::V2_LEN_V6
            };
            let pp = if delta as usize == v2 {
                cip::PP2
            } else {
                cip::PP1
            };
            let shaking = matches!(
                TcpState::from_u8(s.state),
                TcpState::None | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
            );
            let kept = s.cip & (cip::SENT | cip::ACKED);
            s.cip = pp
                | if shaking {
                    kept
                } else {
                    cip::SENT | cip::ACKED
                };
            if cip::settled(s.cip) {
                s.flags &= !flags::CIP;
            } else {
                s.flags |= flags::CIP;
            }
        }
        _ => {
            s.flags &= !(flags::IN_SEQ | flags::CIP);
            s.cip = 0;
        }
    }
}

/// A synced SYN-proxied session's translation (`OUT_SEQ` with the record's
/// `out_seq`): taken, so that a standby that takes over keeps translating its
/// established connection. Without it (or for a session that cannot have it: a
/// template, not TCP, not NAT or FULLNAT, IPv6) there is no translation.
fn take_synproxy(s: &mut Session, out_seq: Option<(u32, u32, u32)>) {
    let proxiable = matches!(s.fwd(), FwdMethod::Masq | FwdMethod::FullNat)
        && s.proto == Proto::Tcp
        && !s.is_template();
    match out_seq {
        Some((init, delta, ts_delta)) if s.flags & flags::OUT_SEQ != 0 && proxiable => {
            let st = super::SynProxyState {
                delta,
                ts_delta,
                scales: (init >> 16) as u16,
                ts: init & 1 != 0,
                ..super::SynProxyState::default()
            };
            if !s.set_synproxy(st) {
                s.flags &= !flags::OUT_SEQ;
            }
            s.flags &= !flags::SYNPROXY;
        }
        _ => s.flags &= !(flags::OUT_SEQ | flags::SYNPROXY),
    }
}

/// What a synced record sets in an existing entry.
struct Synced {
    flags: u16,
    state: u8,
    timeout: u32,
    threshold: u32,
}

/// The slot of the local real server matching a synced record (the local service's, same
/// address and port), with `fl` taking its forwarding method; `NO_SLOT` without one.
fn local_binding(core: &mut CoreSched, proto: Proto, c: &SyncConn, fl: &mut u16) -> DestSlot {
    let Some((snap, _)) = core.parts() else {
        return NO_SLOT;
    };
    let found = snap.find(proto, c.vaddr, c.vport, c.fwmark).and_then(|si| {
        let svc = snap.service(si)?;
        let pos = svc
            .dests
            .iter()
            .position(|d| d.addr == c.daddr && d.port == c.dport)?;
        Some((si, pos, svc.dests[pos].fwd))
    });
    let Some((si, pos, fwd)) = found else {
        return NO_SLOT;
    };
    *fl &= !(flags::FWD_MASK | flags::NOOUTPUT);
    *fl |= fwd as u16;
    if !fwd.replies_via_director() {
        *fl |= flags::NOOUTPUT;
    }
    core.slot(si as usize, pos)
}

/// Why a synced session was not installed on the standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefuse {
    /// A protocol rvs does not balance (or `IP` for a session that is not a template).
    #[error("unknown protocol")]
    Protocol,
    /// A TCP state number out of range.
    #[error("bad state")]
    State,
    /// The session table is full.
    #[error("session table full")]
    TableFull,
    /// A FULLNAT session without the local address option.
    #[error("FULLNAT session without local address")]
    NoLocalAddr,
    /// The FULLNAT local port is not free in this worker's slice (or not in the pool).
    #[error("local port not available")]
    LocalPortBusy,
    /// In a sync group: a session of a service this director does not have.
    #[error("no such service")]
    NoService,
    /// A FULLNAT session whose local address is not of its real server's family.
    #[error("local address of another family than the real server's")]
    LocalFamily,
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn tcp(state: TcpState) -> ConnView {
        ConnView {
            protocol: 6,
            template: false,
            persistent: false,
            state: state as u8,
            timeout: 900,
        }
    }

    fn sends(r: &SyncRules, states: &[TcpState]) -> Vec<u32> {
        let mut m = SyncMark::default();
        let mut v = Vec::new();
        for (i, s) in states.iter().enumerate() {
            let pkts = i as u32 + 1;
            if conn_needed(r, &tcp(*s), &mut m, pkts, 1000) {
                v.push(pkts);
            }
        }
        v
    }

    #[test]
    fn established_tcp_is_sent_at_packets_3_53_103() {
        let states = vec![TcpState::Established; 160];
        assert_eq!(sends(&SyncRules::default(), &states), vec![3, 53, 103, 153]);
    }

    #[test]
    fn handshake_states_are_not_sent_and_closing_forces_a_send() {
        let mut states = vec![
            TcpState::SynRecv,
            TcpState::Established,
            TcpState::Established,
        ];
        states.extend([TcpState::Established; 5]);
        states.push(TcpState::FinWait); // packet 9: forced
        states.push(TcpState::FinWait); // no change
        states.push(TcpState::TimeWait); // packet 11: forced
        assert_eq!(sends(&SyncRules::default(), &states), vec![3, 9, 11]);
    }

    #[test]
    fn udp_follows_threshold_and_period() {
        let r = SyncRules::default();
        let mut m = SyncMark::default();
        let udp = ConnView {
            protocol: 17,
            template: false,
            persistent: false,
            state: 0,
            timeout: 300,
        };
        let sent: Vec<u32> = (1..=110)
            .filter(|&p| conn_needed(&r, &udp, &mut m, p, 5))
            .collect();
        assert_eq!(sent, vec![3, 53, 103]);
    }

    #[test]
    fn period_zero_sends_once() {
        let r = SyncRules {
            period: 0,
            ..SyncRules::default()
        };
        let states = vec![TcpState::Established; 200];
        assert_eq!(sends(&r, &states), vec![3]);
    }

    #[test]
    fn templates_are_sent_whenever_asked_and_persist_mode_skips_children() {
        let r = SyncRules {
            persist_mode: true,
            ..SyncRules::default()
        };
        let mut m = SyncMark::default();
        let t = ConnView {
            protocol: 6,
            template: true,
            persistent: false,
            state: 0,
            timeout: 360,
        };
        assert!(conn_needed(&r, &t, &mut m, 7, 0));
        let mut child = tcp(TcpState::Established);
        child.persistent = true;
        assert!(!conn_needed(&r, &child, &mut SyncMark::default(), 3, 0));
    }

    #[test]
    fn refresh_period_suppresses_resends_until_the_expiry_moves() {
        let r = SyncRules {
            period: 0,
            refresh_period: 60,
            ..SyncRules::default()
        };
        let mut m = SyncMark::default();
        let c = tcp(TcpState::Established);
        // First time: sent (the end time changes from 0).
        assert!(conn_needed(&r, &c, &mut m, 1, 100));
        // 20 s later: the announced end moved by 20 s < 60 s: suppressed.
        assert!(!conn_needed(&r, &c, &mut m, 2, 120));
        // 80 s later: moved by 80 s: sent again.
        assert!(conn_needed(&r, &c, &mut m, 3, 180));
    }

    /// Master: SYN, ACK, data -> sent at packet 3 (ESTABLISHED); standby: installed with
    /// SYNC, the message's timeout, bound to its own server (ActiveConn), found by both
    /// tuples; a later record updates it in place; the standby then forwards it.
    #[test]
    fn synced_nat_session_lands_on_the_standby_bound_and_active() {
        let rules = SyncRules::default();
        let mut m = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let mut b = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let mut sent = Vec::new();
        let id = m.syn(C1, 51234, 0).unwrap();
        m.t.sync_check(id, &rules, 0, |r| sent.push(r));
        m.reply(id, TcpFlags::SYN_ACK, 0);
        for p in 2..=4u64 {
            m.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::ACK, p).unwrap();
            m.t.sync_check(id, &rules, p, |r| sent.push(r));
        }
        assert_eq!(sent.len(), 1, "sent once, at packet 3: {sent:?}");
        let r = sent[0];
        assert_eq!((r.state, r.timeout, r.flags), (1, 900, 0));
        assert_eq!((r.cport, r.vport, r.dport, r.daddr), (51234, 80, 8080, RS1));
        let a = b.id_of(RS1);
        let (bid, new) =
            b.t.install_synced(&mut b.core, &r, 3, 0, |_, _| unreachable!())
                .unwrap();
        assert!(new);
        let s = b.t.get(bid).unwrap();
        assert_eq!(s.state_name(), "ESTABLISHED");
        assert_eq!(s.flags() & flags::SYNC, flags::SYNC);
        assert_eq!(s.in_pkts(), 3);
        assert_eq!(b.t.expires_in_secs(s, 0), 900);
        assert_eq!(b.counts(a), (1, 0, 0));
        assert_eq!(b.t.lookup_out(&s.out_key()), Some(bid));
        // An update: the client closed (CLOSE_WAIT, inactive, 60 s).
        let mut u = r;
        u.state = TcpState::CloseWait as u16;
        u.flags |= u32::from(flags::INACTIVE);
        u.timeout = 60;
        let (bid2, new) =
            b.t.install_synced(&mut b.core, &u, 3, 10 * SEC, |_, _| unreachable!())
                .unwrap();
        assert_eq!((bid2, new), (bid, false));
        assert_eq!(b.counts(a), (0, 1, 0));
        assert_eq!(b.t.expires_in_secs(b.t.get(bid).unwrap(), 10 * SEC), 60);
        assert_eq!(b.t.len(), 1);
        // After a takeover the standby forwards it: the next ACK finds the session.
        u.state = 1;
        u.flags = 0;
        b.t.install_synced(&mut b.core, &u, 3, 0, |_, _| true)
            .unwrap();
        assert_eq!(
            b.pkt(C1, 51234, Proto::Tcp, 80, TcpFlags::ACK, SEC),
            Ok(bid)
        );
        assert_eq!(b.t.stats().created, 0);
    }

    #[test]
    fn synced_fullnat_session_reserves_its_local_port_and_unknown_server_stays_unbound() {
        let mut b = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(RS1, 8080, FwdMethod::FullNat)],
        );
        let lip = Addr::v4(172, 16, 0, 1);
        let mut r = SyncConn {
            protocol: 6,
            v6: false,
            flags: FwdMethod::FullNat as u32 | u32::from(flags::HASHED | flags::ONE_PACKET),
            state: 1,
            cport: 4000,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            caddr: C1,
            vaddr: VIP,
            daddr: RS1,
            local: None,
            in_seq: None,
            out_seq: None,
        };
        let nolocal = b.t.install_synced(&mut b.core, &r, 3, 0, |_, _| true);
        assert_eq!(nolocal, Err(SyncRefuse::NoLocalAddr));
        r.local = Some((lip, 40001));
        let busy = b.t.install_synced(&mut b.core, &r, 3, 0, |_, _| false);
        assert_eq!(busy, Err(SyncRefuse::LocalPortBusy));
        let mut reserved = None;
        let (id, _) =
            b.t.install_synced(&mut b.core, &r, 3, 0, |a, p| {
                reserved = Some((a, p));
                true
            })
            .unwrap();
        assert_eq!(reserved, Some((lip, 40001)));
        let s = b.t.get(id).unwrap();
        assert_eq!(
            s.flags() & (flags::ONE_PACKET | flags::HASHED),
            flags::HASHED
        );
        let out = FlowKey {
            proto: Proto::Tcp,
            saddr: RS1,
            sport: 8080,
            daddr: lip,
            dport: 40001,
        };
        assert_eq!(b.t.lookup_out(&out), Some(id));
        // A server the standby does not have: unbound, the synced method (DR) kept.
        let mut d = r;
        d.cport = 4001;
        d.daddr = RS3;
        d.flags = FwdMethod::Route as u32 | u32::from(flags::NOOUTPUT);
        d.local = None;
        let (id, _) =
            b.t.install_synced(&mut b.core, &d, 3, 0, |_, _| true)
                .unwrap();
        assert_eq!(b.t.get(id).unwrap().fwd(), FwdMethod::Route);
        assert_eq!(b.t.dest_slot(id), Some(NO_SLOT));
        // A changed real server replaces the session.
        d.daddr = RS2;
        let (id2, new) =
            b.t.install_synced(&mut b.core, &d, 3, 0, |_, _| true)
                .unwrap();
        assert!(new);
        assert_eq!(b.t.get(id2).unwrap().daddr(), RS2);
        assert_eq!(b.t.stats().synced, 3);
        // Bad input is refused, never installed.
        let mut bad = d;
        bad.protocol = 47;
        assert_eq!(
            b.t.install_synced(&mut b.core, &bad, 3, 0, |_, _| true),
            Err(SyncRefuse::Protocol)
        );
        bad.protocol = 6;
        bad.state = 99;
        assert_eq!(
            b.t.install_synced(&mut b.core, &bad, 3, 0, |_, _| true),
            Err(SyncRefuse::State)
        );
    }
    fn a6(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    /// A table with the IPv6 TCP service [2001:db8:1::100]:80 and `dests`.
    fn h6(dests: &[DestConfig]) -> H {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: a6("2001:db8:1::100"),
            port: 80,
        };
        H::new(
            Proto::Tcp,
            crate::service::ServiceConfig::new(key, SchedKind::Wlc),
            dests,
            64,
        )
    }

    /// An IPv6 client's SYN to the service of [`h6`], then its ACK: ESTABLISHED, with
    /// FULLNAT's `local` endpoint.
    fn open6(h: &mut H, cport: u16, local: Option<(Addr, u16)>) -> ConnId {
        let p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: a6("2001:db8:1::2"),
                daddr: a6("2001:db8:1::100"),
                sport: cport,
                dport: 80,
            },
            fwmark: 0,
            tcp_flags: TcpFlags::SYN,
        };
        let id = h.t.resolve_in(&mut h.core, &p, 0, local).unwrap().id;
        h.t.state_transition(id, Direction::Input, TcpFlags::SYN, 0);
        h.reply(id, TcpFlags::SYN_ACK, 1);
        h.t.state_transition(id, Direction::Input, TcpFlags::ACK, 2);
        id
    }

    /// NAT with an IPv6 server, FULLNAT with an IPv6 LIP, and NAT64 (IPv6 client and VIP,
    /// IPv4 server and LIP): the master's record is an IPv6 one whose addresses keep
    /// their families; the standby installs it bound to its own server, the LIP's port
    /// reserved, found by both of its tuples, and its own record of it is the master's.
    #[test]
    fn ipv6_and_nat64_sessions_are_recorded_and_installed_with_their_families() {
        let rs6 = a6("2001:db8:2::11");
        let rs4 = Addr::v4(10, 20, 0, 11);
        let lip6 = a6("2001:db8:2::200");
        let lip4 = Addr::v4(10, 20, 0, 200);
        for (fwd, rs, lip) in [
            (FwdMethod::Masq, rs6, None),
            (FwdMethod::FullNat, rs6, Some((lip6, 2001))),
            (FwdMethod::FullNat, rs4, Some((lip4, 2002))),
        ] {
            let dest = [DestConfig::new(rs, 8080, fwd)];
            let mut m = h6(&dest);
            let id = open6(&mut m, 40001, lip);
            let r = m.t.sync_record(id).unwrap();
            assert!(r.v6, "{fwd:?}: an IPv6 record");
            assert_eq!(
                (r.caddr, r.vaddr),
                (a6("2001:db8:1::2"), a6("2001:db8:1::100"))
            );
            assert_eq!((r.daddr, r.dport, r.local), (rs, 8080, lip));
            assert_eq!(r.state, TcpState::Established as u16);
            let mut b = h6(&dest);
            let mut reserved = None;
            let (bid, new) =
                b.t.install_synced(&mut b.core, &r, 3, 0, |a, p| {
                    reserved = Some((a, p));
                    true
                })
                .unwrap();
            assert!(new);
            assert_eq!(reserved, lip, "{fwd:?}: the LIP's port taken");
            let s = b.t.get(bid).unwrap();
            assert_eq!(s.fwd(), fwd);
            assert_eq!(b.counts(b.id_of(rs)), (1, 0, 0), "bound to its server");
            assert_eq!(b.t.lookup_out(&s.out_key()), Some(bid));
            let key = FlowKey {
                proto: Proto::Tcp,
                saddr: r.caddr,
                daddr: r.vaddr,
                sport: 40001,
                dport: 80,
            };
            assert_eq!(b.t.lookup_in(&key), Some(bid));
            // What the standby would send on, were it master: the same, marked synced.
            let again = SyncConn {
                flags: r.flags | u32::from(flags::SYNC),
                ..r
            };
            assert_eq!(b.t.sync_record(bid), Some(again), "{fwd:?}");
        }
    }

    #[test]
    fn a_fullnat_lip_of_another_family_than_the_server_is_refused() {
        // An IPv6 server with an IPv4 LIP (and the reverse): no data path makes these.
        for (rs, lip) in [
            (a6("2001:db8:2::11"), Addr::v4(10, 20, 0, 200)),
            (Addr::v4(10, 20, 0, 11), a6("2001:db8:2::200")),
        ] {
            let mut b = h6(&[DestConfig::new(rs, 8080, FwdMethod::FullNat)]);
            let r = SyncConn {
                protocol: 6,
                v6: true,
                flags: FwdMethod::FullNat as u32,
                state: 1,
                cport: 40001,
                vport: 80,
                dport: 8080,
                fwmark: 0,
                timeout: 900,
                caddr: a6("2001:db8:1::2"),
                vaddr: a6("2001:db8:1::100"),
                daddr: rs,
                local: Some((lip, 2001)),
                in_seq: None,
                out_seq: None,
            };
            let res =
                b.t.install_synced(&mut b.core, &r, 3, 0, |_, _| unreachable!());
            assert_eq!(res, Err(SyncRefuse::LocalFamily));
            assert_eq!(b.t.len(), 0);
        }
    }

    #[test]
    fn a_synced_ipv6_clients_proxy_shift_is_told_by_the_clients_family() {
        // NAT64 with a PROXY v2 header: the header names the IPv6 client and VIP (52
        // bytes), though the server side is IPv4.
        let rs = Addr::v4(10, 20, 0, 11);
        let mut b = h6(&[DestConfig::new(rs, 8080, FwdMethod::FullNat)]);
        let r = SyncConn {
            protocol: 6,
            v6: true,
            flags: FwdMethod::FullNat as u32 | u32::from(flags::IN_SEQ),
            state: 1,
            cport: 40001,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            caddr: a6("2001:db8:1::2"),
            vaddr: a6("2001:db8:1::100"),
            daddr: rs,
            local: Some((Addr::v4(10, 20, 0, 200), 2001)),
            in_seq: Some((7000, cip::V2_LEN_V6 as u32)),
            out_seq: None,
        };
        let (id, _) =
            b.t.install_synced(&mut b.core, &r, 3, 0, |_, _| true)
                .unwrap();
        let s = b.t.get(id).unwrap();
        assert_eq!(s.cip & cip::PP, cip::PP2);
        assert_eq!(b.t.sync_record(id).unwrap().in_seq, r.in_seq);
    }

    /// The bulk walk in chunks: every live session and template once, across chunks, with
    /// sessions expiring and arriving between chunks; a chunk is bounded by records and
    /// by slots looked at.
    #[test]
    fn bulk_walk_returns_every_live_entry_once_across_chunks() {
        let key = vip_key(Proto::Tcp, 80);
        let cfg = crate::service::ServiceConfig::new(key, SchedKind::Wlc);
        let mut b = H::new(Proto::Tcp, cfg, &[nat(RS1)], 256);
        let rec = |cport: u16, template: bool| SyncConn {
            protocol: 6,
            v6: false,
            flags: FwdMethod::Masq as u32
                | if template {
                    u32::from(flags::TEMPLATE)
                } else {
                    0
                },
            state: 1,
            cport,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            caddr: C1,
            vaddr: VIP,
            daddr: RS1,
            local: None,
            in_seq: None,
            out_seq: None,
        };
        let mut ids = Vec::new();
        for p in 0..100u16 {
            let (id, _) =
                b.t.install_synced(&mut b.core, &rec(1000 + p, p % 10 == 0), 3, 0, |_, _| true)
                    .unwrap();
            ids.push(id);
        }
        let whole = |t: &ConnTable| {
            let mut v = Vec::new();
            assert_eq!(t.sync_records_from(0, usize::MAX, usize::MAX, &mut v), None);
            v
        };
        assert_eq!(whole(&b.t).len(), 100);
        assert_eq!(
            whole(&b.t)
                .iter()
                .filter(|r| r.flags & u32::from(flags::TEMPLATE) != 0)
                .count(),
            10,
            "templates included"
        );
        // Chunks of at most 7 records (and 16 slots): the table changes in between.
        let mut got = Vec::new();
        let mut cursor = Some(0);
        let mut chunks = 0;
        while let Some(c) = cursor {
            let before = got.len();
            cursor = b.t.sync_records_from(c, 7, 16, &mut got);
            assert!(got.len() - before <= 7);
            chunks += 1;
            if chunks == 3 {
                // Expire two entries already walked and one not yet walked.
                b.t.expire_now(ids[0]);
                b.t.expire_now(ids[1]);
                b.t.expire_now(ids[90]);
            }
            if chunks == 4 {
                // Released: their slots are free for new sessions.
                b.expire(0);
            }
            if chunks == 5 {
                // New sessions reuse the freed slots (returned only when not walked yet)
                // or come at the end (returned).
                for p in 0..5u16 {
                    b.t.install_synced(&mut b.core, &rec(5000 + p, false), 3, 0, |_, _| true)
                        .unwrap();
                }
            }
        }
        assert!(chunks >= 15, "{chunks} chunks");
        let mut ports: Vec<u16> = got.iter().map(|r| r.cport).collect();
        ports.sort_unstable();
        let n = ports.len();
        ports.dedup();
        assert_eq!(ports.len(), n, "each entry once");
        for p in 0..100u16 {
            assert_eq!(
                ports.binary_search(&(1000 + p)).is_ok(),
                p != 90,
                "session {}",
                1000 + p
            );
        }
        let new = ports.iter().filter(|&&p| p >= 5000).count();
        assert_eq!(
            new, 3,
            "two new sessions took walked slots (0, 1), one a slot not yet walked (90), two \
             came at the end"
        );
        // An empty table, and a walk started past the end, are done at once.
        let e = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let mut v = Vec::new();
        assert_eq!(e.t.sync_records_from(0, 10, 10, &mut v), None);
        assert_eq!(b.t.sync_records_from(1 << 20, 10, 10, &mut v), None);
        assert!(v.is_empty());
    }
}
