//! [`ConnTable`]: slab, the session index, the timer wheel, scheduling and accounting.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::flow::{endpoint, Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use crate::sched::{CoreSched, DestSlot, DestTable, SchedCtx, NO_SLOT};
use crate::service::{svc_flags, RealServer, Snapshot, SvcIdx};

use super::alloc::{SlabVec, TableAlloc};
use super::index::{Index, OUT};
use super::session::{hash_flow, split_addrs, Session, NIL};
use super::state::{
    next_tcp_state, Direction, Rows, TcpState, Timeouts, NEW_CONN_TIMEOUT, TEMPLATE_RETRY,
};
use super::{flags, ConnConfig, ConnId, ConnStats, PacketMeta, Refuse};
use crate::sync::rules::{conn_needed, ConnView, SyncMark, SyncRules};
use crate::sync::SyncConn;

/// Wheel resolution.
pub const TICK_MS: u64 = 100;
const SLOTS: usize = 1 << 14;
const MASK: u32 = (SLOTS - 1) as u32;
/// `wheel_at` of entries waiting on the dying list.
const DYING: u32 = u32::MAX;
const FTP_PORT: u16 = 21;

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
}

/// One row of `ipvsadm -Lnc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    /// Protocol (`IP` for fwmark templates).
    pub proto: Proto,
    /// Seconds until expiry.
    pub expire_secs: u64,
    /// State name.
    pub state: &'static str,
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

impl ConnEntry {
    /// The row as `ipvsadm -Lnc` prints it: `"%-3s %-6s %-11s %-18s %-18s %s"`, expire
    /// `%02d:%02d`.
    pub fn format_row(&self) -> String {
        let exp = format!("{:02}:{:02}", self.expire_secs / 60, self.expire_secs % 60);
        format!(
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            self.proto.name(),
            exp,
            self.state,
            endpoint(&self.caddr, self.cport),
            endpoint(&self.vaddr, self.vport),
            endpoint(&self.daddr, self.dport)
        )
    }
}

/// An index entry [`ConnTable::prefetch_session`] saw for a tuple: a hint for
/// [`ConnTable::lookup_hinted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupHint(u32);

/// Bytes per session at a given capacity: the slab entry plus the index fully allocated
/// (two entries per session: client side and server side).
pub fn memory_per_session(capacity: u32) -> f64 {
    let (slab, index) = table_bytes(capacity);
    (slab + index) as f64 / capacity.max(1) as f64
}

/// Bytes a table of `capacity` sessions allocates: the session slab, and the index fully
/// allocated (two entries per session). Its index is `index / 64` buckets of one cache
/// line each; its sessions are two lines each.
pub fn table_bytes(capacity: u32) -> (usize, usize) {
    let cap = capacity.max(1) as usize;
    (
        cap * std::mem::size_of::<Session>(),
        Index::memory_for(2 * cap),
    )
}

/// The per-core session table (see the module docs).
#[derive(Debug)]
pub struct ConnTable {
    slab: SlabVec<Session>,
    cap: u32,
    free: u32,
    live: u32,
    idx: Index,
    seed: u64,
    wheel: Vec<u32>,
    cur: u32,
    dying: u32,
    cfg: ConnConfig,
    dests: DestTable,
    stats: ConnStats,
    /// Server-side index entries `(hash, value)` of sessions just made, not yet in the
    /// index (see `hash_out`); lookups consult them too.
    pending: [(u64, u32); PENDING],
    n_pending: usize,
}

/// Server-side entries that wait for their bucket before going into the index.
const PENDING: usize = 8;

/// A slab slot without a session (four `::` addresses, off the wheel, unlinked, no real
/// server, every counter and mark zero). New sessions are written as this with their
/// own fields set.
const VACANT: Session = Session {
    lo: [[0; 4]; 4],
    cport: 0,
    vport: 0,
    dport: 0,
    lport: 0,
    timeout: 0,
    expires: 0,
    wheel_at: DYING,
    next: NIL,
    prev: NIL,
    dest: NO_SLOT,
    control: NIL,
    in_pkts: 0,
    flags: 0,
    proto: Proto::Ip,
    state: 0,
    sync_old: 0,
    v6: 0b1111,
    sync_end: 0,
    hi: [[0; 12]; 4],
    fwmark: 0,
    n_control: 0,
};

fn ticks_ceil(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(TICK_MS)).unwrap_or(DYING - 1)
}

fn ticks_floor(ms: u64) -> u32 {
    u32::try_from(ms / TICK_MS).unwrap_or(DYING - 1)
}

impl ConnTable {
    /// A table for `cfg.capacity` sessions; the slab and the index are allocated here.
    pub fn new(cfg: ConnConfig) -> ConnTable {
        let cap = cfg.capacity;
        let seed = if cfg.seed != 0 {
            cfg.seed
        } else {
            RandomState::new().hash_one(0x5eed_u64) | 1
        };
        let mut slab = SlabVec::with_capacity_in(cap as usize, TableAlloc::default());
        // Written once here so that its pages exist before the first packet: a new session
        // must not page-fault (with huge pages a fault may even compact memory first).
        for s in slab.spare_capacity_mut() {
            *s = std::mem::MaybeUninit::zeroed();
        }
        ConnTable {
            slab,
            cap,
            free: NIL,
            live: 0,
            idx: Index::with_capacity(2 * cap as usize),
            seed,
            wheel: vec![NIL; SLOTS],
            cur: 0,
            dying: NIL,
            cfg,
            dests: DestTable::new(),
            stats: ConnStats::default(),
            pending: [(0, 0); PENDING],
            n_pending: 0,
        }
    }

    /// Capacity (sessions + templates).
    pub fn capacity(&self) -> u32 {
        self.cap
    }

    /// Sessions and templates in the table (including those waiting to be released).
    pub fn len(&self) -> u32 {
        self.live
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Counters.
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }

    /// The per-core real-server counters (ActiveConn, InActConn, PersistConn by server id).
    pub fn dests(&self) -> &DestTable {
        &self.dests
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.cfg.timeouts
    }

    /// `ipvsadm --set tcp tcpfin udp` (0 keeps a value); applies from each session's next
    /// packet, as in the kernel.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        self.cfg.timeouts.set(tcp, tcpfin, udp);
    }

    /// Settings.
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    /// Changes the sysctl-like settings (capacity and seed are fixed at creation).
    pub fn set_sysctls(
        &mut self,
        conn_reuse_mode: u8,
        expire_nodest_conn: bool,
        expire_quiescent_template: bool,
    ) {
        self.cfg.conn_reuse_mode = conn_reuse_mode;
        self.cfg.expire_nodest_conn = expire_nodest_conn;
        self.cfg.expire_quiescent_template = expire_quiescent_template;
    }

    /// Bytes held: slab, index and wheel.
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Session>()
            + self.idx.memory_bytes()
            + self.wheel.len() * 4
    }

    /// Adopts a new configuration snapshot: syncs the per-core server counters, then the
    /// scheduler state (see `crate::sched` for what is carried over). Call between bursts.
    pub fn adopt(&mut self, core: &mut CoreSched, snap: Arc<Snapshot>) {
        self.dests.sync(&snap);
        core.adopt(&self.dests, snap);
    }

    // ----- lookups -------------------------------------------------------------------

    /// The hash a packet's tuple is indexed under (either direction): what
    /// [`ConnTable::prefetch_flow`] and the `*_hashed` lookups take.
    #[inline]
    pub fn flow_hash(&self, key: &FlowKey) -> u64 {
        hash_flow(self.seed, key, false)
    }

    /// Burst lookups, step 1: starts loading the index bucket of a tuple's hash.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        self.idx.prefetch(hash);
    }

    /// Burst lookups, step 2 (after [`ConnTable::prefetch_flow`] of the burst): starts
    /// loading the session the bucket's first tag match points at: the lines a packet
    /// with tuple `key` reads (one for IPv4). Returns that entry, a hint for
    /// [`ConnTable::lookup_hinted`]; the lookup proper compares keys.
    #[inline]
    pub fn prefetch_session(&self, hash: u64, key: &FlowKey) -> Option<LookupHint> {
        let v = self.idx.candidate(hash)?;
        let s = self.slab.get((v & !OUT) as usize)?;
        // An IPv4 packet needs the session's first line only (see `Session`).
        crate::prefetch(s);
        if !(key.saddr.is_v4() && key.daddr.is_v4()) {
            crate::prefetch(&s.hi);
        }
        Some(LookupHint(v))
    }

    /// [`ConnTable::lookup_hashed`], trying first the entry [`ConnTable::prefetch_session`]
    /// found for the tuple (the table may have changed since: the entry counts only if
    /// it is still in the index and its session's tuple is `key`), so that a hit reads
    /// the bucket once.
    #[inline(always)]
    pub fn lookup_hinted(
        &self,
        hash: u64,
        key: &FlowKey,
        hint: Option<LookupHint>,
    ) -> Option<(ConnId, bool)> {
        if let Some(LookupHint(v)) = hint {
            let hashed = if v & OUT != 0 {
                flags::OUT_HASHED
            } else {
                flags::HASHED
            };
            if self.slab[(v & !OUT) as usize].flags & hashed != 0 && self.entry_match(v, key) {
                return Some((ConnId(v & !OUT), v & OUT != 0));
            }
        }
        self.lookup_hashed(hash, key)
    }

    /// The session of a client packet (`caddr:cport -> vaddr:vport`).
    #[inline]
    pub fn lookup_in(&self, key: &FlowKey) -> Option<ConnId> {
        self.lookup_in_hashed(self.flow_hash(key), key)
    }

    /// [`ConnTable::lookup_in`] with the tuple's [`ConnTable::flow_hash`] known.
    #[inline]
    pub fn lookup_in_hashed(&self, hash: u64, key: &FlowKey) -> Option<ConnId> {
        self.find_entry(hash, |v| v & OUT == 0 && self.in_match(v, key))
            .map(ConnId)
    }

    /// Whether index value `v` (a client-side entry) is the session of client tuple `key`.
    #[inline(always)]
    fn in_match(&self, v: u32, key: &FlowKey) -> bool {
        let s = &self.slab[v as usize];
        s.flags & flags::TEMPLATE == 0 && s.in_eq(key)
    }

    /// Whether index value `v` (a server-side entry) is the session of server tuple `key`.
    #[inline(always)]
    fn out_match(&self, v: u32, key: &FlowKey) -> bool {
        self.slab[(v & !OUT) as usize].out_eq(key)
    }

    /// The session of a real server's reply (`daddr:dport -> laddr:lport`).
    #[inline]
    pub fn lookup_out(&self, key: &FlowKey) -> Option<ConnId> {
        self.lookup_out_hashed(self.flow_hash(key), key)
    }

    /// [`ConnTable::lookup_out`] with the tuple's [`ConnTable::flow_hash`] known.
    #[inline]
    pub fn lookup_out_hashed(&self, hash: u64, key: &FlowKey) -> Option<ConnId> {
        self.find_entry(hash, |v| v & OUT != 0 && self.out_match(v, key))
            .map(|v| ConnId(v & !OUT))
    }

    /// The session of a packet whichever way it travels: `(id, false)` for a client packet
    /// (the client-side tuple matched), `(id, true)` for a real server's reply. One index
    /// walk; what the established fast path looks packets up with.
    #[inline]
    pub fn lookup_hashed(&self, hash: u64, key: &FlowKey) -> Option<(ConnId, bool)> {
        self.find_entry(hash, |v| self.entry_match(v, key))
            .map(|v| (ConnId(v & !OUT), v & OUT != 0))
    }

    /// Whether index value `v`, of either side, is the session of tuple `key`.
    #[inline(always)]
    fn entry_match(&self, v: u32, key: &FlowKey) -> bool {
        if v & OUT != 0 {
            self.out_match(v, key)
        } else {
            self.in_match(v, key)
        }
    }

    /// Whether a client packet without SYN may go on in session `id` as it is: its real
    /// server is still available (or it has none). Otherwise [`ConnTable::resolve_in`]
    /// refuses or expires it.
    #[inline]
    pub fn dest_usable(&self, id: ConnId) -> bool {
        self.slab
            .get(id.0 as usize)
            .is_some_and(|s| s.dest == NO_SLOT || self.dests.get(s.dest).is_none_or_available())
    }

    /// The persistence template for a template key.
    pub fn lookup_template(&self, key: &FlowKey) -> Option<ConnId> {
        let h = hash_flow(self.seed, key, true);
        let slab = &self.slab;
        self.find_entry(h, |v| {
            v & OUT == 0 && {
                let s = &slab[v as usize];
                s.flags & flags::TEMPLATE != 0 && s.in_eq(key)
            }
        })
        .map(ConnId)
    }

    /// A session by id.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Session> {
        self.slab.get(id.0 as usize).filter(|s| s.is_live())
    }

    /// The server id a session is bound to.
    pub fn dest_of(&self, id: ConnId) -> Option<crate::service::DestId> {
        let s = self.get(id)?;
        self.dests.get(s.dest).map(|d| d.id)
    }

    // ----- per packet ----------------------------------------------------------------

    /// Finds or creates the session for a client packet, as `ip_vs_in` does: lookup, then
    /// `conn_reuse_mode` and `expire_nodest_conn` handling, then service lookup and
    /// [`ConnTable::schedule_and_create`]. `local` chooses the FULLNAT local address/port.
    pub fn resolve_in<L>(
        &mut self,
        core: &mut CoreSched,
        pkt: &PacketMeta,
        now_ms: u64,
        local: L,
    ) -> Result<ConnId, Refuse>
    where
        L: FnOnce(&RealServer, &FlowKey) -> Option<(Addr, u16)>,
    {
        let hash = self.flow_hash(&pkt.flow);
        self.resolve_in_hashed(core, pkt, hash, now_ms, local)
    }

    /// [`ConnTable::resolve_in`] with the tuple's [`ConnTable::flow_hash`] known.
    pub fn resolve_in_hashed<L>(
        &mut self,
        core: &mut CoreSched,
        pkt: &PacketMeta,
        hash: u64,
        now_ms: u64,
        local: L,
    ) -> Result<ConnId, Refuse>
    where
        L: FnOnce(&RealServer, &FlowKey) -> Option<(Addr, u16)>,
    {
        if let Some(id) = self.lookup_in_hashed(hash, &pkt.flow) {
            let s = &self.slab[id.0 as usize];
            let rt = self.dests.get(s.dest);
            let usable = self.dest_usable(id);
            let mut resched = false;
            if self.cfg.conn_reuse_mode != 0
                && s.proto == Proto::Tcp
                && pkt.tcp_flags.has(TcpFlags::SYN)
            {
                let st = s.tcp_state();
                // Quiesced server with expire_nodest_conn, or is_new_conn_expected().
                let quiesced = self.cfg.expire_nodest_conn && rt.is_some_and(|d| d.weight == 0);
                let expected = s.control == NIL
                    && (st == TcpState::TimeWait
                        || st == TcpState::Close
                        || (self.cfg.conn_reuse_mode & 2 != 0
                            && st == TcpState::FinWait
                            && s.flags & flags::NOOUTPUT != 0));
                resched = quiesced || expected;
            }
            if !resched {
                if usable {
                    return Ok(id);
                }
                if !self.cfg.expire_nodest_conn {
                    self.stats.dest_unavailable += 1;
                    return Err(Refuse::DestUnavailable);
                }
            }
            self.stats.reused += 1;
            self.expire_now(id);
        }
        let f = &pkt.flow;
        let idx = core
            .snapshot()
            .and_then(|s| s.find(f.proto, f.daddr, f.dport, pkt.fwmark))
            .ok_or(Refuse::NoService);
        match idx {
            Ok(idx) => self.schedule_and_create(core, idx, pkt, now_ms, local),
            Err(e) => {
                self.stats.no_service += 1;
                Err(e)
            }
        }
    }

    /// Schedules a real server of service `svc` (index in the adopted snapshot) for a client
    /// packet without a session and creates the session (and the persistence template when
    /// needed). Only a TCP SYN without RST or a UDP datagram may create one. The session starts
    /// in state NONE; run [`ConnTable::state_transition`] for the packet afterwards.
    pub fn schedule_and_create<L>(
        &mut self,
        core: &mut CoreSched,
        svc: SvcIdx,
        pkt: &PacketMeta,
        now_ms: u64,
        local: L,
    ) -> Result<ConnId, Refuse>
    where
        L: FnOnce(&RealServer, &FlowKey) -> Option<(Addr, u16)>,
    {
        let flow = pkt.flow;
        match flow.proto {
            Proto::Tcp => {
                if !pkt.tcp_flags.has(TcpFlags::SYN) || pkt.tcp_flags.has(TcpFlags::RST) {
                    self.stats.not_syn += 1;
                    return Err(Refuse::NotSyn);
                }
            }
            Proto::Udp => {}
            Proto::Ip => {
                self.stats.no_service += 1;
                return Err(Refuse::NoService);
            }
        }
        if self.is_full() {
            self.stats.table_full += 1;
            return Err(Refuse::TableFull);
        }
        let Some((snap, svcs)) = core.parts() else {
            self.stats.no_service += 1;
            return Err(Refuse::NoService);
        };
        let (Some(service), Some(ss)) = (snap.service(svc), svcs.get_mut(svc as usize)) else {
            self.stats.no_service += 1;
            return Err(Refuse::NoService);
        };
        let ctx = SchedCtx {
            flow,
            svc_flags: service.flags,
            now_ms,
        };
        let mut tmpl = NIL;
        let pos = if service.is_persistent() {
            // ip_vs_sched_persist
            let snet = flow.saddr.masked(&service.netmask);
            let mut key = FlowKey {
                proto: flow.proto,
                saddr: snet,
                daddr: flow.daddr,
                sport: 0,
                dport: 0,
            };
            if flow.dport == service.port() {
                if service.port() != FTP_PORT {
                    key.dport = flow.dport;
                }
            } else if let Some(mark) = service.fwmark() {
                key.proto = Proto::Ip;
                key.daddr = if service.is_v6() {
                    let mut a = [0u8; 16];
                    a[..4].copy_from_slice(&mark.to_be_bytes());
                    Addr(a)
                } else {
                    Addr::from_v4_bits(mark)
                };
            }
            let mut found = None;
            if let Some(ct) = self.lookup_template(&key) {
                let t = &self.slab[ct.0 as usize];
                let valid = self.dests.get(t.dest).and_then(|rt| {
                    if !rt.available || (self.cfg.expire_quiescent_template && rt.weight == 0) {
                        return None;
                    }
                    match snap.dest_location(rt.id) {
                        Some((si, p)) if si == svc => Some(p as usize),
                        _ => None,
                    }
                });
                match valid {
                    Some(p) => found = Some((ct.0, p)),
                    None => self.invalidate_template(ct.0),
                }
            }
            match found {
                Some((ct, p)) => {
                    tmpl = ct;
                    p
                }
                None => {
                    let Some(p) = ss.schedule(service, &self.dests, &ctx) else {
                        self.stats.no_dest += 1;
                        return Err(Refuse::NoDest);
                    };
                    let d = service.dests[p];
                    let Some(t) = self.alloc() else {
                        self.stats.table_full += 1;
                        return Err(Refuse::TableFull);
                    };
                    let slot = ss.slot(p);
                    let (lo, hi, v6) = split_addrs([snet, key.daddr, d.addr, snet]);
                    self.slab[t as usize] = Session {
                        lo,
                        hi,
                        v6,
                        vport: key.dport,
                        dport: d.port,
                        fwmark: pkt.fwmark,
                        timeout: service.timeout,
                        dest: slot,
                        flags: flags::LIVE | flags::TEMPLATE | d.fwd as u16 | flags::INACTIVE,
                        proto: key.proto,
                        ..VACANT
                    };
                    self.dests.bind(slot, true, false);
                    self.hash_in(t, true);
                    self.stats.templates += 1;
                    tmpl = t;
                    p
                }
            }
        } else {
            if service.fwmark().is_none() && flow.dport != service.port() {
                // Port-zero services must be persistent.
                self.stats.no_dest += 1;
                return Err(Refuse::NoDest);
            }
            match ss.schedule(service, &self.dests, &ctx) {
                Some(p) => p,
                None => {
                    self.stats.no_dest += 1;
                    return Err(Refuse::NoDest);
                }
            }
        };
        let Some(d) = service.dests.get(pos).copied() else {
            self.stats.no_dest += 1;
            return Err(Refuse::NoDest);
        };
        let slot = ss.slot(pos);
        let one_packet = service.flags & svc_flags::ONEPACKET != 0 && flow.proto == Proto::Udp;
        if tmpl != NIL {
            // ip_vs_conn_put(ct): every new session re-arms the template's timer.
            self.arm(tmpl, now_ms);
        }
        let (laddr, lport) = if d.fwd == FwdMethod::FullNat {
            match local(&d, &flow) {
                Some(v) => v,
                None => {
                    self.stats.no_local_addr += 1;
                    return Err(Refuse::NoLocalAddr);
                }
            }
        } else {
            (flow.saddr, flow.sport)
        };
        let Some(i) = self.alloc() else {
            self.stats.table_full += 1;
            return Err(Refuse::TableFull);
        };
        let mut fl = flags::LIVE | flags::INACTIVE | d.fwd as u16;
        if !d.fwd.replies_via_director() {
            fl |= flags::NOOUTPUT;
        }
        if one_packet {
            fl |= flags::ONE_PACKET;
        }
        let (lo, hi, v6) = split_addrs([flow.saddr, flow.daddr, d.addr, laddr]);
        self.slab[i as usize] = Session {
            lo,
            hi,
            v6,
            cport: flow.sport,
            vport: flow.dport,
            dport: if d.port != 0 { d.port } else { flow.dport },
            lport,
            fwmark: pkt.fwmark,
            timeout: if one_packet { 0 } else { NEW_CONN_TIMEOUT },
            dest: slot,
            control: tmpl,
            flags: fl,
            proto: flow.proto,
            ..VACANT
        };
        self.dests.bind(slot, false, true);
        if tmpl != NIL {
            let t = &mut self.slab[tmpl as usize];
            t.n_control += 1;
        }
        if one_packet {
            self.push_dying(i);
        } else {
            self.hash_in(i, false);
            if fl & flags::NOOUTPUT == 0 {
                self.hash_out(i);
            }
            self.arm(i, now_ms);
        }
        self.stats.created += 1;
        Ok(ConnId(i))
    }

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
        let timeouts = self.cfg.timeouts;
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

    // ----- connection sync ----------------------------------------------------------

    /// The sync record of a session or template (what the master sends): flags without
    /// `HASHED`, the full timeout of the state, and for FULLNAT sessions rvs's option
    /// with the local address and port.
    pub fn sync_record(&self, id: ConnId) -> Option<SyncConn> {
        let s = self.slab.get(id.0 as usize).filter(|s| s.is_live())?;
        let local =
            (s.fwd() == FwdMethod::FullNat && !s.is_template()).then_some((s.laddr(), s.lport));
        Some(SyncConn {
            protocol: s.proto as u8,
            v6: !s.caddr().is_v4(),
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
        })
    }

    /// Master side, after a client packet's [`ConnTable::state_transition`]: applies the
    /// IPVS sending rules ([`crate::sync::rules::conn_needed`]) to the session and then to
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
        let now_s = now_ms / 1000;
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
            | 0x0600
            | flags::NO_CPORT
            | flags::TEMPLATE) as u32;
        let proto = Proto::from_number(c.protocol).ok_or(SyncRefuse::Protocol)?;
        let mut fl = (c.flags & MASK) as u16 | flags::SYNC;
        let template = fl & flags::TEMPLATE != 0;
        let mut state = c.state;
        if template {
            state = state.min(1);
        } else {
            match proto {
                Proto::Ip => return Err(SyncRefuse::Protocol),
                Proto::Tcp if usize::from(state) >= super::state::TCP_STATES => {
                    return Err(SyncRefuse::State)
                }
                Proto::Udp => state = 0,
                _ => {}
            }
        }
        let state = state as u8;
        let timeout = if c.timeout > 0 {
            c.timeout
        } else if template {
            180
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
                let upd = flags::INACTIVE | 0x0600;
                let was_inactive = s.flags & flags::INACTIVE != 0;
                let now_inactive = fl & flags::INACTIVE != 0;
                if !template && s.dest != NO_SLOT && was_inactive != now_inactive {
                    self.dests.set_active(s.dest, !now_inactive);
                }
                let s = &mut self.slab[i as usize];
                s.flags = (s.flags & !upd) | (fl & upd);
                s.state = state;
                s.sync_old = state;
                s.timeout = timeout;
                s.in_pkts = threshold;
                if s.wheel_at != DYING {
                    self.arm(i, now_ms);
                }
                self.stats.sync_updated += 1;
                return Ok((id, false));
            }
            self.expire_now(id);
        }
        if self.is_full() {
            self.stats.table_full += 1;
            return Err(SyncRefuse::TableFull);
        }
        // The local real server, if the local configuration has it.
        let mut slot = NO_SLOT;
        if let Some((snap, _)) = core.parts() {
            let found = snap.find(proto, c.vaddr, c.vport, c.fwmark).and_then(|si| {
                let svc = snap.service(si)?;
                let pos = svc
                    .dests
                    .iter()
                    .position(|d| d.addr == c.daddr && d.port == c.dport)?;
                Some((si, pos, svc.dests[pos].fwd))
            });
            if let Some((si, pos, fwd)) = found {
                slot = core.slot(si as usize, pos);
                fl &= !(flags::FWD_MASK | flags::NOOUTPUT);
                fl |= fwd as u16;
                if !fwd.replies_via_director() {
                    fl |= flags::NOOUTPUT;
                }
            }
        }
        let fwd = FwdMethod::from_flags(fl);
        let (laddr, lport) = if fwd == FwdMethod::FullNat && !template {
            let (a, p) = c.local.ok_or(SyncRefuse::NoLocalAddr)?;
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
        self.hash_in(i, template);
        if !template && fl & flags::NOOUTPUT == 0 {
            self.hash_out(i);
        }
        self.arm(i, now_ms);
        self.stats.synced += 1;
        Ok((ConnId(i), true))
    }

    /// True when the session's real server was removed (`!IP_VS_DEST_F_AVAILABLE`).
    pub fn dest_unavailable(&self, id: ConnId) -> bool {
        self.get(id)
            .and_then(|s| self.dests.get(s.dest))
            .is_some_and(|d| !d.available)
    }

    /// Expires a session at once (`ip_vs_conn_expire_now`): it leaves the index now and is
    /// released by the next [`ConnTable::expire`] call.
    pub fn expire_now(&mut self, id: ConnId) {
        let i = id.0;
        let Some(s) = self.slab.get(i as usize) else {
            return;
        };
        if !s.is_live() || s.wheel_at == DYING {
            return;
        }
        self.unhash(i);
        self.unlink(i);
        self.push_dying(i);
    }

    /// `expire_nodest_conn`'s flush: expires every session and template bound to a removed
    /// server (templates only once their sessions are gone, as in the kernel). Control-path
    /// operation: it scans the table. Returns how many were expired.
    pub fn expire_nodest_conns(&mut self) -> usize {
        let mut n = 0;
        for pass_templates in [true, false] {
            for i in 0..self.slab.len() as u32 {
                let s = &self.slab[i as usize];
                if !s.is_live() || s.wheel_at == DYING || s.is_template() != pass_templates {
                    continue;
                }
                if self.dests.get(s.dest).is_some_and(|d| !d.available) {
                    self.expire_now(ConnId(i));
                    n += 1;
                }
            }
        }
        n
    }

    /// Releases every session whose time has come (and those expired with `expire_now`),
    /// calling `released` for each just before its slot is freed (FULLNAT returns its local
    /// port there). Templates that still control sessions are re-armed for 60 s instead.
    /// Cost: the wheel slots between the previous call and `now`, plus the due sessions.
    pub fn expire<F>(&mut self, now_ms: u64, mut released: F) -> usize
    where
        F: FnMut(ConnId, &Session),
    {
        let mut n = 0;
        // Dying list first (LIFO).
        let mut i = std::mem::replace(&mut self.dying, NIL);
        while i != NIL {
            let next = self.slab[i as usize].next;
            n += self.expire_one(i, now_ms, &mut released);
            i = next;
        }
        let target = ticks_floor(now_ms);
        let mut visited = 0usize;
        while self.cur <= target && visited < SLOTS {
            let slot = (self.cur & MASK) as usize;
            let mut i = std::mem::replace(&mut self.wheel[slot], NIL);
            while i != NIL {
                let next = self.slab[i as usize].next;
                let s = &mut self.slab[i as usize];
                s.wheel_at = DYING;
                if s.expires <= target {
                    n += self.expire_one(i, now_ms, &mut released);
                } else {
                    let at = s.expires;
                    self.link(i, at);
                }
                i = next;
            }
            self.cur += 1;
            visited += 1;
        }
        if self.cur <= target {
            self.cur = target + 1;
        }
        n
    }

    /// Live sessions and templates, for listing.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Session)> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, s)| (ConnId(i as u32), s))
    }

    /// Seconds until a session expires.
    pub fn expires_in_secs(&self, s: &Session, now_ms: u64) -> u64 {
        if s.wheel_at == DYING {
            return 0;
        }
        (u64::from(s.expires) * TICK_MS).saturating_sub(now_ms) / 1000
    }

    /// The rows of `ipvsadm -Lnc`.
    pub fn list(&self, now_ms: u64) -> impl Iterator<Item = ConnEntry> + '_ {
        self.iter().map(move |(_, s)| ConnEntry {
            proto: s.proto,
            expire_secs: self.expires_in_secs(s, now_ms),
            state: s.state_name(),
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

    // ----- internals -----------------------------------------------------------------

    fn is_full(&self) -> bool {
        self.free == NIL && self.slab.len() >= self.cap as usize
    }

    fn alloc(&mut self) -> Option<u32> {
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slab[i as usize].next;
            i
        } else if self.slab.len() < self.cap as usize {
            self.slab.push(VACANT);
            (self.slab.len() - 1) as u32
        } else {
            return None;
        };
        self.live += 1;
        Some(i)
    }

    fn release(&mut self, i: u32) {
        let s = &mut self.slab[i as usize];
        s.flags = 0;
        s.next = self.free;
        s.wheel_at = DYING;
        self.free = i;
        self.live -= 1;
    }

    fn hash_in(&mut self, i: u32, template: bool) {
        let h = hash_flow(self.seed, &self.slab[i as usize].in_key(), template);
        // Cannot fail: the index is sized for two entries per slab entry.
        let added = self.idx.insert(h, i);
        debug_assert!(added);
        self.slab[i as usize].flags |= flags::HASHED;
    }

    /// Enters a session's server-side tuple. Its bucket is known only now (after the
    /// real server, and under FULLNAT the local port, were chosen), so it is prefetched
    /// and the entry waits in `pending` until `PENDING` more are made or the burst ends
    /// ([`ConnTable::flush_pending`]): the insert then finds the bucket in cache instead of
    /// stalling on it. Lookups see pending entries ([`ConnTable::find_entry`]).
    fn hash_out(&mut self, i: u32) {
        let h = hash_flow(self.seed, &self.slab[i as usize].out_key(), false);
        if self.n_pending == PENDING {
            self.flush_pending();
        }
        self.idx.prefetch(h);
        self.pending[self.n_pending] = (h, i | OUT);
        self.n_pending += 1;
        self.slab[i as usize].flags |= flags::OUT_HASHED;
    }

    /// Puts the pending server-side entries into the index (the pipeline calls this at
    /// the end of each burst; lookups are right either way).
    #[inline]
    pub fn flush_pending(&mut self) {
        for &(h, v) in &self.pending[..self.n_pending] {
            // Cannot fail: the index is sized for two entries per slab entry.
            let added = self.idx.insert(h, v);
            debug_assert!(added);
        }
        self.n_pending = 0;
    }

    /// [`Index::find`] over the index and the pending entries.
    #[inline(always)]
    fn find_entry(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if let Some(v) = self.idx.find(hash, &mut eq) {
            return Some(v);
        }
        self.pending[..self.n_pending]
            .iter()
            .find(|&&(h, v)| h == hash && eq(v))
            .map(|&(_, v)| v)
    }

    fn unhash(&mut self, i: u32) {
        let s = &self.slab[i as usize];
        if s.flags & flags::HASHED != 0 {
            let h = hash_flow(self.seed, &s.in_key(), s.is_template());
            self.idx.remove(h, i);
        }
        if s.flags & flags::OUT_HASHED != 0 {
            let h = hash_flow(self.seed, &s.out_key(), false);
            let pending = &mut self.pending[..self.n_pending];
            if let Some(k) = pending.iter().position(|&e| e == (h, i | OUT)) {
                pending[k] = pending[pending.len() - 1];
                self.n_pending -= 1;
            } else {
                self.idx.remove(h, i | OUT);
            }
        }
        self.slab[i as usize].flags &= !(flags::HASHED | flags::OUT_HASHED);
    }

    /// `ip_vs_check_template` failure: the template leaves the index (the kernel rehashes it
    /// with ports 0xffff) and waits for its timer.
    fn invalidate_template(&mut self, i: u32) {
        self.unhash(i);
        let s = &mut self.slab[i as usize];
        s.vport = 0xffff;
        s.dport = 0xffff;
        s.cport = 0;
    }

    /// Sets the expiry to `now + timeout`; moves the entry in the wheel only when the expiry
    /// got earlier than its slot (otherwise the slot visit moves it lazily).
    #[inline(always)]
    fn arm(&mut self, i: u32, now_ms: u64) {
        let s = &mut self.slab[i as usize];
        let exp = ticks_ceil(now_ms + u64::from(s.timeout) * 1000);
        s.expires = exp;
        // The common case (a packet of a live session pushing its expiry later) stops
        // here, without a call.
        if s.wheel_at == DYING || exp < s.wheel_at {
            self.relink(i, exp);
        }
    }

    /// [`ConnTable::arm`]'s wheel move: into the slot of `exp`, from the one it is in.
    #[inline(never)]
    fn relink(&mut self, i: u32, exp: u32) {
        if self.slab[i as usize].wheel_at != DYING {
            self.unlink(i);
        }
        self.link(i, exp);
    }

    fn link(&mut self, i: u32, tick: u32) {
        let tick = tick.max(self.cur);
        let slot = (tick & MASK) as usize;
        let head = self.wheel[slot];
        {
            let s = &mut self.slab[i as usize];
            s.wheel_at = tick;
            s.prev = NIL;
            s.next = head;
        }
        if head != NIL {
            self.slab[head as usize].prev = i;
        }
        self.wheel[slot] = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, at) = {
            let s = &self.slab[i as usize];
            (s.prev, s.next, s.wheel_at)
        };
        if at == DYING {
            return;
        }
        if prev != NIL {
            self.slab[prev as usize].next = next;
        } else {
            self.wheel[(at & MASK) as usize] = next;
        }
        if next != NIL {
            self.slab[next as usize].prev = prev;
        }
        let s = &mut self.slab[i as usize];
        s.wheel_at = DYING;
        s.next = NIL;
        s.prev = NIL;
    }

    fn push_dying(&mut self, i: u32) {
        let s = &mut self.slab[i as usize];
        s.wheel_at = DYING;
        s.next = self.dying;
        self.dying = i;
    }

    /// `ip_vs_conn_expire` for an entry already off the wheel. Returns 1 if released.
    fn expire_one<F>(&mut self, i: u32, now_ms: u64, released: &mut F) -> usize
    where
        F: FnMut(ConnId, &Session),
    {
        let cur = self.cur;
        let s = &mut self.slab[i as usize];
        if s.is_template() && s.n_control > 0 {
            // expire_later: retry 60 s after the timer fired (the template keeps this
            // timeout). With a clock that jumped, later retries in this pass stay exact.
            s.timeout = TEMPLATE_RETRY;
            let due = s.expires.min(ticks_floor(now_ms));
            let exp = due
                .saturating_add(ticks_ceil(u64::from(TEMPLATE_RETRY) * 1000))
                .max(cur + 1);
            s.expires = exp;
            self.link(i, exp);
            return 0;
        }
        self.unhash(i);
        let s = &self.slab[i as usize];
        let (dest, template, inactive, control) =
            (s.dest, s.is_template(), s.is_inactive(), s.control);
        if dest != NO_SLOT {
            self.dests.unbind(dest, template, inactive);
        }
        if control != NIL {
            let t = &mut self.slab[control as usize];
            t.n_control = t.n_control.saturating_sub(1);
        }
        released(ConnId(i), &self.slab[i as usize]);
        self.stats.expired += 1;
        self.release(i);
        1
    }

    /// The slot a session is bound to (for diagnostics).
    pub fn dest_slot(&self, id: ConnId) -> Option<DestSlot> {
        self.get(id).map(|s| s.dest)
    }
}

trait AvailableExt {
    fn is_none_or_available(&self) -> bool;
}

impl AvailableExt for Option<&crate::sched::DestRt> {
    fn is_none_or_available(&self) -> bool {
        match self {
            None => true,
            Some(d) => d.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::SchedKind;
    use crate::service::{DestConfig, DestId, ServiceConfig, ServiceKey, ServiceTable};

    const VIP: Addr = Addr::v4(192, 168, 1, 100);
    const RS1: Addr = Addr::v4(10, 1, 1, 1);
    const RS2: Addr = Addr::v4(10, 1, 1, 2);
    const RS3: Addr = Addr::v4(10, 1, 1, 3);
    const SEC: u64 = 1000;

    struct H {
        st: ServiceTable,
        t: ConnTable,
        core: CoreSched,
        key: ServiceKey,
        released: Vec<(Addr, u16, Addr, u16)>,
    }

    impl H {
        fn new(proto: Proto, cfg: ServiceConfig, dests: &[DestConfig], cap: u32) -> H {
            let mut st = ServiceTable::new();
            let key = cfg.key;
            st.add_service(cfg).unwrap();
            for d in dests {
                st.add_dest(&key, *d).unwrap();
            }
            let _ = proto;
            let mut c = ConnConfig::new(cap);
            c.seed = 7;
            let mut h = H {
                st,
                t: ConnTable::new(c),
                core: CoreSched::new(1),
                key,
                released: Vec::new(),
            };
            h.publish();
            h
        }

        fn tcp(sched: SchedKind, dests: &[DestConfig]) -> H {
            let key = ServiceKey::Addr {
                proto: Proto::Tcp,
                addr: VIP,
                port: 80,
            };
            H::new(Proto::Tcp, ServiceConfig::new(key, sched), dests, 64)
        }

        fn publish(&mut self) {
            let snap = self.st.snapshot();
            self.t.adopt(&mut self.core, snap);
        }

        fn pkt(
            &mut self,
            c: Addr,
            cport: u16,
            proto: Proto,
            vport: u16,
            fl: TcpFlags,
            now: u64,
        ) -> Result<ConnId, Refuse> {
            let p = PacketMeta {
                flow: FlowKey {
                    proto,
                    saddr: c,
                    daddr: VIP,
                    sport: cport,
                    dport: vport,
                },
                fwmark: 0,
                tcp_flags: fl,
            };
            let id = self.t.resolve_in(&mut self.core, &p, now, |_, _| {
                Some((Addr::v4(172, 16, 0, 1), 40000))
            })?;
            self.t.state_transition(id, Direction::Input, fl, now);
            Ok(id)
        }

        fn syn(&mut self, c: Addr, cport: u16, now: u64) -> Result<ConnId, Refuse> {
            self.pkt(c, cport, Proto::Tcp, 80, TcpFlags::SYN, now)
        }

        fn reply(&mut self, id: ConnId, fl: TcpFlags, now: u64) {
            let s = self.t.get(id).unwrap();
            let k = s.out_key();
            assert_eq!(self.t.lookup_out(&k), Some(id));
            self.t.state_transition(id, Direction::Output, fl, now);
        }

        fn state(&self, id: ConnId) -> &'static str {
            self.t.get(id).unwrap().state_name()
        }

        fn counts(&self, id: DestId) -> (u32, u32, u32) {
            let d = self.t.dests().by_id(id).unwrap();
            (d.active, d.inactive, d.persist)
        }

        fn expire(&mut self, now: u64) -> usize {
            let r = &mut self.released;
            self.t.expire(now, |_, s| {
                r.push((s.caddr(), s.cport(), s.laddr(), s.lport()))
            })
        }

        fn id_of(&self, a: Addr) -> DestId {
            self.st.services()[0]
                .dests
                .iter()
                .find(|d| d.addr == a)
                .unwrap()
                .id
        }
    }

    fn nat(a: Addr) -> DestConfig {
        DestConfig::new(a, 8080, FwdMethod::Masq)
    }

    const C1: Addr = Addr::v4(203, 0, 113, 5);

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
    fn server_side_entries_are_found_before_and_after_they_reach_the_index() {
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        // More sessions than wait at once: some entries reach the index when later
        // sessions are made, the last few still wait.
        let ids: Vec<ConnId> = (0..3 * PENDING as u16 + 3)
            .map(|p| h.syn(C1, 3000 + p, 0).unwrap())
            .collect();
        assert!(h.t.n_pending > 0);
        let found = |t: &ConnTable, id: ConnId| {
            let k = t.get(id).unwrap().out_key();
            let by_out = t.lookup_out(&k);
            let either = t.lookup_hashed(t.flow_hash(&k), &k);
            assert_eq!(by_out.map(|o| (o, true)), either, "{id:?}");
            by_out == Some(id)
        };
        assert!(ids.iter().all(|&id| found(&h.t, id)));
        // Sessions leave while their entry waits and while it is in the index.
        let (gone, kept) = ids.split_at(ids.len() / 2);
        let gone_keys: Vec<FlowKey> = gone
            .iter()
            .map(|&id| h.t.get(id).unwrap().out_key())
            .collect();
        let gone: Vec<ConnId> = gone.iter().copied().chain([ids[ids.len() - 1]]).collect();
        for &id in &gone {
            h.t.expire_now(id);
        }
        let kept = &kept[..kept.len() - 1];
        for k in &gone_keys {
            assert_eq!(h.t.lookup_out(k), None);
        }
        assert!(kept.iter().all(|&id| found(&h.t, id)));
        h.t.flush_pending();
        assert_eq!(h.t.n_pending, 0);
        for k in &gone_keys {
            assert_eq!(h.t.lookup_out(k), None);
        }
        assert!(kept.iter().all(|&id| found(&h.t, id)));
        // Exactly the kept sessions' two entries each are left in the index.
        assert_eq!(h.t.idx.len(), 2 * kept.len());
    }

    #[test]
    fn a_lookup_hint_counts_only_while_its_entry_is_in_the_index() {
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        let a = h.syn(C1, 4000, 0).unwrap();
        let b = h.syn(C1, 4001, 0).unwrap();
        h.t.flush_pending();
        let key = |t: &ConnTable, id: ConnId, out: bool| {
            let s = t.get(id).unwrap();
            if out {
                s.out_key()
            } else {
                s.in_key()
            }
        };
        let hinted = |t: &ConnTable, k: &FlowKey, hint: Option<LookupHint>| {
            t.lookup_hinted(t.flow_hash(k), k, hint)
        };
        let hint = |t: &ConnTable, k: &FlowKey| t.prefetch_session(t.flow_hash(k), k);
        let (ka, oa, kb) = (key(&h.t, a, false), key(&h.t, a, true), key(&h.t, b, false));
        // Its own hint, either side.
        for (k, reply) in [(ka, false), (oa, true)] {
            let x = hint(&h.t, &k);
            assert!(x.is_some());
            assert_eq!(hinted(&h.t, &k, x), Some((a, reply)));
        }
        // Another tuple's hint: the index has the answer.
        assert_eq!(hinted(&h.t, &ka, hint(&h.t, &kb)), Some((a, false)));
        assert_eq!(hinted(&h.t, &kb, hint(&h.t, &oa)), Some((b, false)));
        // Hints taken before the session left find nothing after.
        let stale = [(ka, hint(&h.t, &ka)), (oa, hint(&h.t, &oa))];
        h.t.expire_now(a);
        for (k, x) in stale {
            assert_eq!(hinted(&h.t, &k, x), None);
        }
        assert_eq!(hinted(&h.t, &kb, hint(&h.t, &kb)), Some((b, false)));
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
    fn new_session_without_transition_lives_3s() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 9,
                dport: 80,
            },
            fwmark: 0,
            tcp_flags: TcpFlags::SYN,
        };
        let id = h.t.resolve_in(&mut h.core, &p, 0, |_, _| None).unwrap();
        assert_eq!(h.state(id), "NONE");
        assert_eq!(h.counts(h.id_of(RS1)), (0, 1, 0));
        assert_eq!(h.expire(3 * SEC - 1), 0);
        assert_eq!(h.expire(3 * SEC), 1);
    }

    #[test]
    fn udp_sessions_are_inactive_and_last_300s() {
        let key = ServiceKey::Addr {
            proto: Proto::Udp,
            addr: VIP,
            port: 53,
        };
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
    fn one_packet_udp_session_lives_for_one_datagram() {
        let key = ServiceKey::Addr {
            proto: Proto::Udp,
            addr: VIP,
            port: 53,
        };
        let mut h = H::new(
            Proto::Udp,
            ServiceConfig::new(key, SchedKind::Rr).flags(svc_flags::ONEPACKET),
            &[DestConfig::new(RS1, 53, FwdMethod::Route)],
            8,
        );
        let id = h.pkt(C1, 40000, Proto::Udp, 53, TcpFlags::NONE, 0).unwrap();
        assert_ne!(h.t.get(id).unwrap().flags() & flags::ONE_PACKET, 0);
        assert_eq!(h.t.lookup_in(&h.t.get(id).unwrap().in_key()), None);
        assert_eq!(h.expire(0), 1);
        assert_eq!(h.counts(h.id_of(RS1)), (0, 0, 0));
    }

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

    #[test]
    fn non_syn_without_session_is_counted_and_refused() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 80, TcpFlags::ACK, 0),
            Err(Refuse::NotSyn)
        );
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 80, TcpFlags::SYN | TcpFlags::RST, 0),
            Err(Refuse::NotSyn)
        );
        assert_eq!(h.t.stats().not_syn, 2);
        assert_eq!(h.t.len(), 0);
        // Not a service: NoService.
        assert_eq!(
            h.pkt(C1, 5, Proto::Tcp, 81, TcpFlags::SYN, 0),
            Err(Refuse::NoService)
        );
    }

    #[test]
    fn full_table_refuses_and_keeps_existing_sessions() {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: VIP,
            port: 80,
        };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr),
            &[nat(RS1)],
            2,
        );
        let a = h.syn(C1, 1, 0).unwrap();
        let b = h.syn(C1, 2, 0).unwrap();
        assert_eq!(h.syn(C1, 3, 0), Err(Refuse::TableFull));
        assert_eq!(h.t.stats().table_full, 1);
        assert_eq!(h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 1), Ok(a));
        assert_eq!(h.state(a), "ESTABLISHED");
        assert_eq!(h.state(b), "SYN_RECV");
        assert_eq!(h.counts(h.id_of(RS1)), (2, 0, 0));
        // Once one goes, a new one fits.
        h.expire(61 * SEC);
        assert!(h.syn(C1, 3, 61 * SEC).is_ok());
    }

    #[test]
    fn weight_zero_quiesces_and_thresholds_overload() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1), nat(RS2)]);
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        h.st.edit_dest(&h.key, nat(RS2).weight(0)).unwrap();
        h.publish();
        let x = h.syn(C1, 1, 0).unwrap();
        let y = h.syn(C1, 2, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(a));
        assert_eq!(h.t.dest_of(y), Some(a));
        // Existing sessions of a quiesced server go on.
        h.st.edit_dest(&h.key, nat(RS1).weight(0)).unwrap();
        h.publish();
        assert_eq!(h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, 0), Ok(x));
        assert_eq!(h.syn(C1, 3, 0), Err(Refuse::NoDest));
        assert_eq!(h.t.stats().no_dest, 1);
        // Upper threshold 3 on B: the 3rd session overloads it; it clears at 1 (1*4 < 3*3? the
        // rule is total*4 < u*3: 2*4=8 < 9).
        h.st.edit_dest(&h.key, nat(RS2).weight(1).thresholds(3, 0))
            .unwrap();
        h.publish();
        let s: Vec<ConnId> = (10..13).map(|p| h.syn(C1, p, 0).unwrap()).collect();
        assert_eq!(h.counts(b), (3, 0, 0));
        assert_eq!(h.syn(C1, 13, 0), Err(Refuse::NoDest));
        h.pkt(C1, 10, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        h.pkt(C1, 10, Proto::Tcp, 80, TcpFlags::RST, 0).unwrap(); // ES -> CLOSE, 10 s
        h.expire(10 * SEC);
        assert_eq!(h.counts(b), (2, 0, 0));
        assert!(h.syn(C1, 14, 10 * SEC).is_ok());
        let _ = s;
    }

    #[test]
    fn persistence_sticks_network_until_template_expires() {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: VIP,
            port: 80,
        };
        // rr over C, B, A (added A, B, C).
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr)
                .persistent(360)
                .netmask(Addr::v4_netmask(0xffff_ff00)),
            &[nat(RS1), nat(RS2), nat(RS3)],
            64,
        );
        let (a, b, c) = (h.id_of(RS1), h.id_of(RS2), h.id_of(RS3));
        let x = h.syn(Addr::v4(1, 2, 3, 4), 1000, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(c));
        // Same /24: same server although rr would move on.
        let y = h.syn(Addr::v4(1, 2, 3, 77), 1000, SEC).unwrap();
        assert_eq!(h.t.dest_of(y), Some(c));
        // Another network: rr's next.
        let z = h.syn(Addr::v4(5, 6, 7, 8), 1000, SEC).unwrap();
        assert_eq!(h.t.dest_of(z), Some(b));
        assert_eq!(h.counts(c), (2, 0, 1));
        let tmpl: Vec<String> =
            h.t.list(SEC)
                .filter(|e| e.flags & flags::TEMPLATE != 0)
                .map(|e| e.format_row())
                .collect();
        assert!(
            tmpl.contains(
                &"TCP 06:00  NONE        1.2.3.0:0          192.168.1.100:80   10.1.1.3:8080"
                    .to_string()
            ),
            "{tmpl:?}"
        );
        // Sessions (SYN_RECV, 60 s) expire; templates live 360 s from the last new session.
        h.expire(62 * SEC);
        assert_eq!(h.t.len(), 2);
        let again = h.syn(Addr::v4(1, 2, 3, 4), 1001, 300 * SEC).unwrap();
        assert_eq!(h.t.dest_of(again), Some(c));
        // That re-armed the 1.2.3.0 template to 300 + 360 = 660 s.
        h.pkt(
            Addr::v4(1, 2, 3, 4),
            1001,
            Proto::Tcp,
            80,
            TcpFlags::RST,
            300 * SEC,
        )
        .unwrap();
        h.expire(659 * SEC);
        assert_eq!(h.t.len(), 1);
        h.expire(660 * SEC);
        assert_eq!(h.t.len(), 0);
        assert_eq!(h.counts(c), (0, 0, 0));
        // After expiry the network is scheduled afresh: rr's next after B is A.
        let n = h.syn(Addr::v4(1, 2, 3, 4), 1002, 700 * SEC).unwrap();
        assert_eq!(h.t.dest_of(n), Some(a));
    }

    #[test]
    fn template_with_live_session_retries_every_60s() {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: VIP,
            port: 80,
        };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Wlc).persistent(360),
            &[nat(RS1)],
            64,
        );
        h.syn(C1, 1, 0).unwrap();
        h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC).unwrap(); // ES until 901 s
        h.expire(899 * SEC);
        assert_eq!(h.t.len(), 2);
        h.expire(901 * SEC);
        assert_eq!(h.t.len(), 1); // session gone; template retried at 360, 420, ..., 900 -> 960
        assert_eq!(h.t.iter().next().unwrap().1.timeout_secs(), 60);
        h.expire(960 * SEC - 1);
        assert_eq!(h.t.len(), 1);
        h.expire(960 * SEC);
        assert_eq!(h.t.len(), 0);
    }

    #[test]
    fn removed_server_invalidates_template_and_nodest_handling() {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: VIP,
            port: 80,
        };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(360),
            &[nat(RS1), nat(RS2)],
            64,
        );
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        let x = h.syn(C1, 1, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(b));
        h.st.del_dest(&key, RS2, 8080).unwrap();
        h.publish();
        // expire_nodest_conn = 0: the session's packets are dropped.
        assert_eq!(
            h.pkt(C1, 1, Proto::Tcp, 80, TcpFlags::ACK, SEC),
            Err(Refuse::DestUnavailable)
        );
        assert!(h.t.dest_unavailable(x));
        // A new session from the client: the template is invalid -> rescheduled to A.
        let y = h.syn(C1, 2, SEC).unwrap();
        assert_eq!(h.t.dest_of(y), Some(a));
        // expire_nodest_conn = 1: the old session is expired and a SYN rescheduled.
        h.t.set_sysctls(1, true, false);
        let z = h.syn(C1, 1, 2 * SEC).unwrap();
        assert_eq!(h.t.dest_of(z), Some(a));
        h.expire(2 * SEC);
        // The sessions are gone; B's counters stay while its (invalid) template lives.
        assert_eq!(h.counts(b), (0, 0, 1));
        assert_eq!(h.t.stats().reused, 1);
    }

    #[test]
    fn quiesced_server_keeps_persistent_clients_unless_expire_quiescent_template() {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: VIP,
            port: 80,
        };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(360),
            &[nat(RS1), nat(RS2)],
            64,
        );
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        assert_eq!(
            {
                let x = h.syn(C1, 1, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(b)
        );
        h.st.edit_dest(&key, nat(RS2).weight(0)).unwrap();
        h.publish();
        // Quiesced: no new clients, but the persistent client still goes to B.
        assert_eq!(
            {
                let x = h.syn(C1, 2, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(b)
        );
        assert_eq!(
            {
                let x = h.syn(Addr::v4(5, 5, 5, 5), 1, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(a)
        );
        // expire_quiescent_template: the template is invalid, the client moves.
        h.t.set_sysctls(1, false, true);
        assert_eq!(
            {
                let x = h.syn(C1, 3, 0).unwrap();
                h.t.dest_of(x)
            },
            Some(a)
        );
        // Overload does not invalidate a template either (an edit sets no overload; the
        // next bind does).
        h.st.edit_dest(&key, nat(RS1).thresholds(1, 0)).unwrap();
        h.publish();
        assert!(!h.t.dests().by_id(a).unwrap().overloaded);
        let x = h.syn(C1, 4, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(a));
        assert!(h.t.dests().by_id(a).unwrap().overloaded);
        let y = h.syn(C1, 5, 0).unwrap();
        assert_eq!(h.t.dest_of(y), Some(a));
        assert_eq!(h.syn(Addr::v4(6, 6, 6, 6), 1, 0), Err(Refuse::NoDest));
    }

    #[test]
    fn expire_nodest_flush() {
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        let ids: Vec<ConnId> = (1..5).map(|p| h.syn(C1, p, 0).unwrap()).collect();
        assert_eq!(ids.len(), 4);
        h.st.del_dest(&h.key, RS1, 8080).unwrap();
        h.publish();
        assert_eq!(h.t.expire_nodest_conns(), 2);
        assert_eq!(h.expire(0), 2);
        assert_eq!(h.t.len(), 2);
    }

    #[test]
    fn conn_reuse_reschedules_syn_on_time_wait() {
        let mut h = H::tcp(SchedKind::Rr, &[nat(RS1), nat(RS2)]);
        let (a, b) = (h.id_of(RS1), h.id_of(RS2));
        let x = h.syn(C1, 7, 0).unwrap();
        assert_eq!(h.t.dest_of(x), Some(b));
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::ACK, 0).unwrap();
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::FIN, 0).unwrap(); // CLOSE_WAIT
        h.reply(x, TcpFlags::FIN, 0); // TIME_WAIT
        assert_eq!(h.state(x), "TIME_WAIT");
        let y = h.syn(C1, 7, SEC).unwrap();
        assert_ne!(x, y);
        assert_eq!(h.t.dest_of(y), Some(a));
        assert_eq!(h.state(y), "SYN_RECV");
        assert_eq!(h.t.lookup_in(&h.t.get(y).unwrap().in_key()), Some(y));
        assert_eq!(h.expire(SEC), 1); // the old one is released
        assert_eq!(h.counts(b), (0, 0, 0));
        assert_eq!(h.t.stats().reused, 1);
        // conn_reuse_mode 0: the SYN goes to the existing session.
        h.t.set_sysctls(0, false, false);
        h.pkt(C1, 7, Proto::Tcp, 80, TcpFlags::RST, SEC).unwrap(); // CLOSE
        assert_eq!(h.syn(C1, 7, 2 * SEC), Ok(y));
    }

    #[test]
    fn fullnat_local_address_and_out_lookup() {
        let mut h = H::tcp(
            SchedKind::Wlc,
            &[DestConfig::new(RS1, 8080, FwdMethod::FullNat)],
        );
        let id = h.syn(C1, 3333, 0).unwrap();
        let s = h.t.get(id).unwrap().clone();
        assert_eq!((s.laddr(), s.lport()), (Addr::v4(172, 16, 0, 1), 40000));
        let out = FlowKey {
            proto: Proto::Tcp,
            saddr: RS1,
            sport: 8080,
            daddr: Addr::v4(172, 16, 0, 1),
            dport: 40000,
        };
        assert_eq!(h.t.lookup_out(&out), Some(id));
        h.reply(id, TcpFlags::SYN_ACK, 0);
        // INPUT rst on SYN_RECV keeps SYN_RECV (60 s).
        h.pkt(C1, 3333, Proto::Tcp, 80, TcpFlags::RST, 0).unwrap();
        assert_eq!(h.state(id), "SYN_RECV");
        h.expire(60 * SEC);
        assert_eq!(h.released, vec![(C1, 3333, Addr::v4(172, 16, 0, 1), 40000)]);
        // No local address: refused and counted.
        let p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 1,
                dport: 80,
            },
            fwmark: 0,
            tcp_flags: TcpFlags::SYN,
        };
        assert_eq!(
            h.t.resolve_in(&mut h.core, &p, 0, |_, _| None),
            Err(Refuse::NoLocalAddr)
        );
        assert_eq!(h.t.stats().no_local_addr, 1);
        assert_eq!(h.t.len(), 0);
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

    #[test]
    fn fwmark_persistence_template_key() {
        let key = ServiceKey::Fwmark { v6: false, mark: 1 };
        let mut h = H::new(
            Proto::Tcp,
            ServiceConfig::new(key, SchedKind::Rr).persistent(600),
            &[
                DestConfig::new(RS1, 0, FwdMethod::Tunnel),
                DestConfig::new(RS2, 0, FwdMethod::Tunnel),
            ],
            64,
        );
        let mut p = PacketMeta {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr: C1,
                daddr: VIP,
                sport: 1,
                dport: 443,
            },
            fwmark: 1,
            tcp_flags: TcpFlags::SYN,
        };
        let x = h.t.resolve_in(&mut h.core, &p, 0, |_, _| None).unwrap();
        p.flow.dport = 80;
        let y = h.t.resolve_in(&mut h.core, &p, 0, |_, _| None).unwrap();
        assert_eq!(h.t.dest_of(x), h.t.dest_of(y));
        assert_eq!(h.t.get(y).unwrap().dport(), 80); // port 0 server: the packet's port
        let t = h.t.iter().find(|(_, s)| s.is_template()).unwrap().1;
        assert_eq!(t.proto(), Proto::Ip);
        assert_eq!(t.vaddr(), Addr::from_v4_bits(1));
        assert_eq!(t.n_control(), 2);
    }

    #[test]
    fn adopting_a_snapshot_keeps_counters() {
        let mut h = H::tcp(SchedKind::Wlc, &[nat(RS1)]);
        let a = h.id_of(RS1);
        h.syn(C1, 1, 0).unwrap();
        h.st.add_dest(&h.key, nat(RS2)).unwrap();
        h.publish();
        assert_eq!(h.counts(a), (1, 0, 0));
        // wlc now prefers the idle new server B.
        let y = h.syn(C1, 2, 0).unwrap();
        assert_eq!(h.t.dest_of(y), Some(h.id_of(RS2)));
    }

    #[test]
    fn session_size_and_memory_per_session() {
        // Two cache lines exactly: what an IPv4 packet reads in the first, the second
        // starting at the addresses' first twelve bytes.
        assert_eq!(std::mem::size_of::<Session>(), 128);
        assert_eq!(std::mem::align_of::<Session>(), 64);
        assert_eq!(std::mem::offset_of!(Session, hi), 64);
        assert!(std::mem::offset_of!(Session, sync_end) + 2 <= 64);
        for cap in [1_000_000u32, 10_000_000, 917_505, 14_680_065, 64] {
            let m = memory_per_session(cap);
            assert!(m <= 160.0, "{cap}: {m}");
        }
        let t = ConnTable::new(ConnConfig::new(100_000));
        let per = (t.memory_bytes() - SLOTS * 4) as f64 / 100_000.0;
        assert!(per <= 160.0, "{per}");
        assert!((per - memory_per_session(100_000)).abs() < 1.0, "{per}");
        // What the harness's lookup floor sizes its tables by is what the table holds.
        let (slab, index) = table_bytes(100_000);
        assert_eq!(slab + index + SLOTS * 4, t.memory_bytes());
    }

    #[test]
    fn wheel_handles_long_gaps_and_many_sessions() {
        let key = ServiceKey::Addr {
            proto: Proto::Udp,
            addr: VIP,
            port: 53,
        };
        let mut h = H::new(
            Proto::Udp,
            ServiceConfig::new(key, SchedKind::Rr),
            &[DestConfig::new(RS1, 53, FwdMethod::Route)],
            5000,
        );
        for i in 0..4000u16 {
            h.pkt(C1, i, Proto::Udp, 53, TcpFlags::NONE, u64::from(i) * 100)
                .unwrap();
        }
        // Last one created at 399.9 s: everything gone by 699.9 s, nothing before 300 s.
        assert_eq!(h.expire(300 * SEC - 1), 0);
        // Created at i * 0.1 s: due by 500 s for i = 0..=2000.
        assert_eq!(h.expire(500 * SEC), 2001);
        assert_eq!(h.expire(10 * 3600 * SEC), 1999);
        assert_eq!(h.t.len(), 0);
    }
}
