//! [`ConnTable`]: the slab of sessions, the session index and the lookups.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::flow::{FlowKey, FlowKey4, Proto, Tunnel};
use crate::sched::{CoreSched, DestRt, DestSlot, DestTable, NO_SLOT};
use crate::service::{DestId, ServiceSet};

use super::alloc::{SlabVec, TableAlloc};
use super::index::{Index, OUT};
use super::session::{hash_flow, Session, DYING, NIL, SLOTS};
use super::state::Timeouts;
use super::{flags, ConnConfig, ConnId, ConnStats};

/// What a random hasher hashes into the table's seed when the configuration gives none.
const SEED_SALT: u64 = 0x5eed;

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
    pub(super) slab: SlabVec<Session>,
    pub(super) cap: u32,
    pub(super) free: u32,
    pub(super) live: u32,
    pub(super) idx: Index,
    pub(super) seed: u64,
    pub(super) wheel: Vec<u32>,
    pub(super) cur: u32,
    pub(super) dying: u32,
    pub(super) cfg: ConnConfig,
    pub(super) dests: DestTable,
    pub(super) stats: ConnStats,
    /// Server-side index entries `(hash, value)` of sessions just made, not yet in the
    /// index (see `hash_out`); lookups consult them too.
    pub(super) pending: [(u64, u32); PENDING],
    pub(super) n_pending: usize,
}

/// Server-side entries that wait for their bucket before going into the index.
pub(super) const PENDING: usize = 8;

/// A slab slot without a session (four `::` addresses, off the wheel, unlinked, no real
/// server, every counter and mark zero). New sessions are written as this with their
/// own fields set.
pub(super) const VACANT: Session = Session {
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
    seq_init: 0,
    seq_delta: 0,
    cip: 0,
    cip_at: 0,
};

impl ConnTable {
    /// A table for `cfg.capacity` sessions; the slab and the index are allocated here.
    pub fn new(cfg: ConnConfig) -> ConnTable {
        let cap = cfg.capacity;
        let seed = if cfg.seed != 0 {
            cfg.seed
        } else {
            RandomState::new().hash_one(SEED_SALT) | 1
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

    /// The tunnel of session `s`'s real server (IPIP for a session without one).
    #[inline(always)]
    pub fn tunnel_of(&self, s: &Session) -> Tunnel {
        self.dests.get(s.dest).map_or(Tunnel::IPIP, |d| d.tunnel)
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

    /// Sets the sysctl `sloppy_tcp` (see [`ConnConfig::sloppy_tcp`]).
    pub fn set_sloppy_tcp(&mut self, on: bool) {
        self.cfg.sloppy_tcp = on;
    }

    /// Bytes held: slab, index and wheel.
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Session>()
            + self.idx.memory_bytes()
            + self.wheel.len() * 4
    }

    /// Adopts a new configuration snapshot: syncs the per-core server counters, then the
    /// scheduler state (see `crate::sched` for what is carried over). Call between bursts.
    pub fn adopt(&mut self, core: &mut CoreSched, snap: Arc<ServiceSet>) {
        self.dests.sync(&snap);
        core.adopt(&self.dests, snap);
    }

    /// The hash a packet's tuple is indexed under (either direction): what
    /// [`ConnTable::prefetch_flow`], [`ConnTable::lookup_hinted`],
    /// [`ConnTable::lookup_out_hashed`] and [`ConnTable::schedule`] take.
    #[inline]
    pub fn flow_hash(&self, key: &FlowKey) -> u64 {
        hash_flow(self.seed, key, false)
    }

    /// [`ConnTable::flow_hash`] of an IPv4 tuple given by its addresses' four bytes
    /// (the same value, computed without the 16-byte addresses).
    #[inline(always)]
    pub fn flow_hash_v4(
        &self,
        proto: Proto,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
    ) -> u64 {
        super::session::hash_flow_v4(self.seed, proto, src, dst, sport, dport)
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
        let (hint, s) = self.prefetch_candidate(hash)?;
        // An IPv4 packet needs the session's first line only (see `Session`).
        if !(key.saddr.is_v4() && key.daddr.is_v4()) {
            crate::prefetch(&s.hi);
        }
        Some(hint)
    }

    /// [`ConnTable::prefetch_session`] of an IPv4 tuple: the session's first line, all
    /// that an IPv4 packet reads, and no key needed for it.
    #[inline(always)]
    pub fn prefetch_session4(&self, hash: u64) -> Option<LookupHint> {
        self.prefetch_candidate(hash).map(|(hint, _)| hint)
    }

    /// The entry the bucket's first tag match for `hash` holds, and its session, whose
    /// first line is now loading.
    #[inline(always)]
    fn prefetch_candidate(&self, hash: u64) -> Option<(LookupHint, &Session)> {
        let v = self.idx.candidate(hash)?;
        let s = self.slab.get((v & !OUT) as usize)?;
        crate::prefetch(s);
        Some((LookupHint(v), s))
    }

    /// The session of a packet whichever way it travels, what the established fast path
    /// looks packets up with: `(id, false)` for a client packet (the client-side tuple
    /// matched), `(id, true)` for a real server's reply. It tries first the entry
    /// [`ConnTable::prefetch_session`] found for the tuple (`hint`) (the table may have changed since: the entry counts only if
    /// it is still in the index and its session's tuple is `key`), so that a hit reads
    /// the bucket once.
    #[inline(always)]
    pub fn lookup_hinted(
        &self,
        hash: u64,
        key: &FlowKey,
        hint: Option<LookupHint>,
    ) -> Option<(ConnId, bool)> {
        self.lookup_hinted_by(hash, hint, |v| self.entry_match(v, key))
    }

    /// [`ConnTable::lookup_hinted`] of an IPv4 tuple (compared as the session keeps
    /// IPv4 addresses, [`FlowKey4`]): the fast path's lookup of an IPv4 packet.
    #[inline(always)]
    pub fn lookup_hinted4(
        &self,
        hash: u64,
        key: &FlowKey4,
        hint: Option<LookupHint>,
    ) -> Option<(ConnId, bool)> {
        self.lookup_hinted_by(hash, hint, |v| {
            let s = &self.slab[(v & !OUT) as usize];
            if v & OUT != 0 {
                s.out_eq4(key)
            } else {
                s.flags & flags::TEMPLATE == 0 && s.in_eq4(key)
            }
        })
    }

    /// The hinted lookup of either key form, `eq` telling whether an index value's
    /// session has the tuple (the side given by [`OUT`]).
    #[inline(always)]
    fn lookup_hinted_by(
        &self,
        hash: u64,
        hint: Option<LookupHint>,
        mut eq: impl FnMut(u32) -> bool,
    ) -> Option<(ConnId, bool)> {
        if let Some(LookupHint(v)) = hint {
            let hashed = if v & OUT != 0 {
                flags::OUT_HASHED
            } else {
                flags::HASHED
            };
            if self.slab[(v & !OUT) as usize].flags & hashed != 0 && eq(v) {
                return Some((ConnId(v & !OUT), v & OUT != 0));
            }
        }
        self.find_entry(hash, eq)
            .map(|v| (ConnId(v & !OUT), v & OUT != 0))
    }

    /// The session of a client packet (`caddr:cport -> vaddr:vport`).
    #[inline]
    pub fn lookup_in(&self, key: &FlowKey) -> Option<ConnId> {
        self.lookup_in_hashed(self.flow_hash(key), key)
    }

    /// [`ConnTable::lookup_in`] with the tuple's [`ConnTable::flow_hash`] known.
    #[inline]
    pub(super) fn lookup_in_hashed(&self, hash: u64, key: &FlowKey) -> Option<ConnId> {
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
    /// server is still available (or it has none). Otherwise [`ConnTable::schedule`]
    /// refuses or expires it.
    #[inline]
    pub fn dest_usable(&self, id: ConnId) -> bool {
        self.slab
            .get(id.0 as usize)
            .is_some_and(|s| s.dest == NO_SLOT || self.dests.get(s.dest).is_none_or_available())
    }

    /// The persistence template for a template key.
    pub(super) fn lookup_template(&self, key: &FlowKey) -> Option<ConnId> {
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

    /// Session `id`, mutably, for the pipeline's client-address work (its `seq_*` and
    /// `cip` fields and the `IN_SEQ`/`CIP` flags; nothing the index or the wheel uses).
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Session> {
        self.slab.get_mut(id.0 as usize).filter(|s| s.is_live())
    }

    /// The server id a session is bound to.
    pub fn dest_of(&self, id: ConnId) -> Option<DestId> {
        let s = self.get(id)?;
        self.dests.get(s.dest).map(|d| d.id)
    }

    /// The slot a session is bound to (for diagnostics).
    pub fn dest_slot(&self, id: ConnId) -> Option<DestSlot> {
        self.get(id).map(|s| s.dest)
    }

    /// True when the session's real server was removed (`!IP_VS_DEST_F_AVAILABLE`).
    pub fn dest_unavailable(&self, id: ConnId) -> bool {
        self.get(id)
            .and_then(|s| self.dests.get(s.dest))
            .is_some_and(|d| !d.available)
    }

    pub(super) fn is_full(&self) -> bool {
        self.free == NIL && self.slab.len() >= self.cap as usize
    }

    pub(super) fn alloc(&mut self) -> Option<u32> {
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

    pub(super) fn release(&mut self, i: u32) {
        let s = &mut self.slab[i as usize];
        s.flags = 0;
        s.next = self.free;
        s.wheel_at = DYING;
        self.free = i;
        self.live -= 1;
    }

    pub(super) fn hash_in(&mut self, i: u32, template: bool) {
        let h = hash_flow(self.seed, &self.slab[i as usize].in_key(), template);
        self.insert_in(i, h);
    }

    /// [`ConnTable::hash_in`] of a session (not a template) whose client-side tuple's
    /// hash `h` the caller has (the packet that makes it was looked up by it).
    pub(super) fn hash_in_with(&mut self, i: u32, h: u64) {
        debug_assert_eq!(
            h,
            hash_flow(self.seed, &self.slab[i as usize].in_key(), false)
        );
        self.insert_in(i, h);
    }

    /// Enters entry `i` under its client-side hash `h`.
    fn insert_in(&mut self, i: u32, h: u64) {
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
    pub(super) fn hash_out(&mut self, i: u32) {
        let h = hash_flow(self.seed, &self.slab[i as usize].out_key(), false);
        self.hash_out_with(i, h);
    }

    /// [`ConnTable::hash_out`] of a session whose server-side tuple's hash `h` the caller
    /// made from the values it just wrote into the session (reading them back from the
    /// session would wait on those stores).
    pub(super) fn hash_out_with(&mut self, i: u32, h: u64) {
        debug_assert_eq!(
            h,
            hash_flow(self.seed, &self.slab[i as usize].out_key(), false)
        );
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

    pub(super) fn unhash(&mut self, i: u32) {
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
}

trait AvailableExt {
    fn is_none_or_available(&self) -> bool;
}

impl AvailableExt for Option<&DestRt> {
    fn is_none_or_available(&self) -> bool {
        match self {
            None => true,
            Some(d) => d.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

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
            let hash = t.flow_hash(&k);
            let either = t.lookup_hinted(hash, &k, None);
            assert_eq!(by_out.map(|o| (o, true)), either, "{id:?}");
            // The fast path's IPv4 lookup, with and without the prefetch's hint.
            let k4 = FlowKey4::new(
                k.proto,
                k.saddr.0[12..].try_into().unwrap(),
                k.daddr.0[12..].try_into().unwrap(),
                k.sport,
                k.dport,
            );
            assert_eq!(t.lookup_hinted4(hash, &k4, None), either, "{id:?}");
            let hint = t.prefetch_session4(hash);
            assert_eq!(t.lookup_hinted4(hash, &k4, hint), either, "{id:?}");
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
}
