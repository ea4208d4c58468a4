//! The IPVS schedulers, one file each, behind the [`Scheduler`] trait.
//!
//! Every scheduler reproduces its kernel counterpart (`net/netfilter/ipvs/ip_vs_<name>.c`):
//! the same iteration order over the newest-first real-server list, the same tie-breaks, the
//! same load formulas. Shared rules: a real server is skipped when it is overloaded (upper
//! threshold reached) or quiesced (weight 0); when none is left the scheduler returns `None`,
//! which the session table counts and reports as "no destination available" (IPVS answers the
//! packet with ICMP port-unreachable).
//!
//! # Per-core state and snapshot adoption
//! The snapshot ([`crate::service::ServiceSet`]) is immutable and shared. Everything a worker
//! mutates is per core and keyed by the stable ids of the snapshot:
//! - [`DestTable`]: one [`DestRt`] per real server id: ActiveConn/InActConn/PersistConn,
//!   the overload flag, and availability. It is owned by the core's session table, because the
//!   counters are exactly "the sessions of this core bound to that server". A server removed
//!   from the configuration stays in the table, unavailable, until its last session goes (the
//!   kernel's dest trash); added back, it gets its counters back.
//! - [`CoreSched`]: per service (by [`ServiceId`]) the scheduler instance and the slots of its
//!   servers in the [`DestTable`].
//!
//! Adoption of a new snapshot (`conn::ConnTable::adopt`): the dest table is synced first
//! (new servers get counters, removed ones become unavailable, threshold edits clear overload
//! like `__ip_vs_update_dest`); then for every service of the new snapshot the scheduler is
//! carried over when its service id and scheduler are unchanged, and told that its servers
//! changed ([`Scheduler::update`]) when the list or any server setting differs — which is
//! when the kernel calls `add_dest/del_dest/upd_dest`: wrr resets its cursor and recomputes
//! gcd/max weight, rr keeps its position (moving to the predecessor of a removed server),
//! sh/dh/mh rebuild their tables, lblc/lblcr forget removed servers. A new service or a
//! changed scheduler gets a fresh instance (the kernel's `init_service`).
//!
//! Thresholds are evaluated per core against that core's own counters (the kernel has one
//! global counter per server).

use std::fmt;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::flow::{Addr, FlowKey, Tunnel};
use crate::service::{DestId, RealServer, SchedKind, Service, ServiceId, ServiceSet};

pub mod dh;
pub mod fo;
pub mod hsiphash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

/// The kernel's `GOLDEN_RATIO_32` (`hash_32`'s multiplier).
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
/// 2^64 / phi: the step between the seeds of successive scheduler instances.
const GOLDEN_RATIO_64: u64 = 0x9E37_79B9_7F4A_7C15;
/// xorshift64*'s multiplier (also the seed replacing 0).
const XORSHIFT_STAR: u64 = 0x2545_F491_4F6C_DD1D;

/// The kernel's `hash_32(val, bits)`: `(val * GOLDEN_RATIO_32) >> (32 - bits)`.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// Greatest common divisor.
pub fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// A fresh scheduler instance of `kind` (`seed` feeds twos' random choices).
pub fn build(kind: SchedKind, seed: u64) -> Box<dyn Scheduler> {
    match kind {
        SchedKind::Rr => Box::new(rr::Rr::default()),
        SchedKind::Wrr => Box::new(wrr::Wrr::default()),
        SchedKind::Lc => Box::new(lc::Lc),
        SchedKind::Wlc => Box::new(wlc::Wlc),
        SchedKind::Lblc => Box::new(lblc::Lblc::default()),
        SchedKind::Lblcr => Box::new(lblcr::Lblcr::default()),
        SchedKind::Dh => Box::new(dh::Dh::default()),
        SchedKind::Sh => Box::new(sh::Sh::default()),
        SchedKind::Sed => Box::new(sed::Sed),
        SchedKind::Nq => Box::new(nq::Nq),
        SchedKind::Fo => Box::new(fo::Fo),
        SchedKind::Ovf => Box::new(ovf::Ovf),
        SchedKind::Mh => Box::new(mh::Mh::default()),
        SchedKind::Twos => Box::new(twos::Twos::new(seed)),
    }
}

/// Per-core runtime state of one real server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestRt {
    /// The server's stable id.
    pub id: DestId,
    /// ActiveConn: sessions in ESTABLISHED, SYN_SENT, SYN_RECV or SYNACK.
    pub active: u32,
    /// InActConn: the other sessions (all UDP ones).
    pub inactive: u32,
    /// PersistConn: persistence templates.
    pub persist: u32,
    /// Current weight.
    pub weight: u32,
    /// Upper threshold (0: none).
    pub u_threshold: u32,
    /// Lower threshold (0: none).
    pub l_threshold: u32,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overloaded: bool,
    /// `IP_VS_DEST_F_AVAILABLE`: false once removed from the configuration.
    pub available: bool,
    /// The server's tunnel (TUN sessions read it per packet, as IPVS reads
    /// `cp->dest->tun_type`: an edit applies to the server's sessions).
    pub tunnel: Tunnel,
    seen: u64,
}

impl Default for DestId {
    fn default() -> DestId {
        DestId(u32::MAX)
    }
}

impl DestRt {
    /// `ip_vs_dest_conn_overhead`: `(active << 8) + inactive`.
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }

    /// `ip_vs_dest_totalconns`: active + inactive.
    pub fn total(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }

    fn refs(&self) -> u64 {
        self.total() + u64::from(self.persist)
    }
}

/// Slot of a [`DestRt`] in a [`DestTable`]; `NO_SLOT` means "not bound".
pub type DestSlot = u32;

/// The "no real server" slot.
pub const NO_SLOT: DestSlot = u32::MAX;

/// The per-core real-server runtime table, keyed by [`DestId`] (see the module docs).
#[derive(Debug, Default)]
pub struct DestTable {
    rt: Vec<DestRt>,
    free: Vec<DestSlot>,
    by_id: HashMap<DestId, DestSlot>,
    stamp: u64,
}

impl DestTable {
    /// An empty table.
    pub fn new() -> DestTable {
        DestTable::default()
    }

    /// All slots (free ones have `DestId(u32::MAX)`).
    pub fn slots(&self) -> &[DestRt] {
        &self.rt
    }

    /// The runtime of a slot.
    pub fn get(&self, slot: DestSlot) -> Option<&DestRt> {
        self.rt.get(slot as usize)
    }

    /// The slot of a server id.
    pub fn slot_of(&self, id: DestId) -> Option<DestSlot> {
        self.by_id.get(&id).copied()
    }

    /// The counters of a server id, if this core knows it.
    pub fn by_id(&self, id: DestId) -> Option<&DestRt> {
        self.slot_of(id).and_then(|s| self.get(s))
    }

    /// Brings the table in line with a snapshot (see the module docs).
    pub fn sync(&mut self, snap: &ServiceSet) {
        self.stamp += 1;
        let stamp = self.stamp;
        for d in snap.services().iter().flat_map(|s| s.dests.iter()) {
            let slot = match self.by_id.get(&d.id) {
                Some(&s) => s,
                None => {
                    let rt = DestRt {
                        id: d.id,
                        ..DestRt::default()
                    };
                    let s = match self.free.pop() {
                        Some(s) => {
                            self.rt[s as usize] = rt;
                            s
                        }
                        None => {
                            self.rt.push(rt);
                            (self.rt.len() - 1) as DestSlot
                        }
                    };
                    self.by_id.insert(d.id, s);
                    s
                }
            };
            let rt = &mut self.rt[slot as usize];
            // __ip_vs_update_dest: a removed or raised upper threshold clears OVERLOAD.
            if d.u_threshold == 0 || d.u_threshold > rt.u_threshold {
                rt.overloaded = false;
            }
            rt.weight = d.weight;
            rt.u_threshold = d.u_threshold;
            rt.l_threshold = d.l_threshold;
            rt.tunnel = d.tunnel;
            rt.available = true;
            rt.seen = stamp;
        }
        let mut gone = Vec::new();
        for (&id, &slot) in self.by_id.iter() {
            let rt = &mut self.rt[slot as usize];
            if rt.seen != stamp {
                rt.available = false;
                if rt.refs() == 0 {
                    gone.push(id);
                }
            }
        }
        for id in gone {
            self.release(id);
        }
    }

    fn release(&mut self, id: DestId) {
        if let Some(slot) = self.by_id.remove(&id) {
            self.rt[slot as usize] = DestRt::default();
            self.free.push(slot);
        }
    }

    /// `ip_vs_bind_dest`'s accounting: one more session (or template) on `slot`, then the
    /// upper-threshold check.
    pub fn bind(&mut self, slot: DestSlot, template: bool, inactive: bool) {
        let Some(rt) = self.rt.get_mut(slot as usize) else {
            return;
        };
        if template {
            rt.persist += 1;
        } else if inactive {
            rt.inactive += 1;
        } else {
            rt.active += 1;
        }
        if rt.u_threshold != 0 && rt.total() >= u64::from(rt.u_threshold) {
            rt.overloaded = true;
        }
    }

    /// `ip_vs_unbind_dest`'s accounting: one session fewer, then the overload-clearing rule
    /// (below the lower threshold, or below 3/4 of the upper one when no lower is set). A
    /// removed server's slot is freed with its last session.
    pub fn unbind(&mut self, slot: DestSlot, template: bool, inactive: bool) {
        let Some(rt) = self.rt.get_mut(slot as usize) else {
            return;
        };
        if template {
            rt.persist = rt.persist.saturating_sub(1);
        } else if inactive {
            rt.inactive = rt.inactive.saturating_sub(1);
        } else {
            rt.active = rt.active.saturating_sub(1);
        }
        if rt.l_threshold != 0 {
            if rt.total() < u64::from(rt.l_threshold) {
                rt.overloaded = false;
            }
        } else if rt.u_threshold != 0 {
            if rt.total() * 4 < u64::from(rt.u_threshold) * 3 {
                rt.overloaded = false;
            }
        } else {
            rt.overloaded = false;
        }
        if !rt.available && rt.refs() == 0 {
            let id = rt.id;
            self.release(id);
        }
    }

    /// Moves one session of `slot` between ActiveConn and InActConn.
    pub fn set_active(&mut self, slot: DestSlot, active: bool) {
        if let Some(rt) = self.rt.get_mut(slot as usize) {
            if active {
                rt.inactive = rt.inactive.saturating_sub(1);
                rt.active += 1;
            } else {
                rt.active = rt.active.saturating_sub(1);
                rt.inactive += 1;
            }
        }
    }
}

/// What a scheduler sees of a service's real servers: their configuration (newest first) and
/// this core's runtime state of each.
#[derive(Clone, Copy)]
pub struct DestView<'a> {
    cfg: &'a [RealServer],
    slots: &'a [DestSlot],
    rt: &'a [DestRt],
}

static NO_RT: DestRt = DestRt {
    id: DestId(u32::MAX),
    active: 0,
    inactive: 0,
    persist: 0,
    weight: 0,
    u_threshold: 0,
    l_threshold: 0,
    overloaded: false,
    available: false,
    tunnel: Tunnel::IPIP,
    seen: 0,
};

impl<'a> DestView<'a> {
    /// A view over `cfg`, whose runtime states are `rt[slots[i]]`.
    pub fn new(cfg: &'a [RealServer], slots: &'a [DestSlot], rt: &'a [DestRt]) -> Self {
        DestView { cfg, slots, rt }
    }

    /// Number of real servers.
    pub fn len(&self) -> usize {
        self.cfg.len()
    }

    /// True without real servers.
    pub fn is_empty(&self) -> bool {
        self.cfg.is_empty()
    }

    /// Configuration of server `i`.
    pub fn cfg(&self, i: usize) -> &'a RealServer {
        &self.cfg[i]
    }

    /// Runtime state of server `i`.
    pub fn rt(&self, i: usize) -> &'a DestRt {
        self.slots
            .get(i)
            .and_then(|&s| self.rt.get(s as usize))
            .unwrap_or(&NO_RT)
    }

    /// Weight of server `i`.
    pub fn weight(&self, i: usize) -> u32 {
        self.cfg[i].weight
    }

    /// ActiveConn of server `i`.
    pub fn active(&self, i: usize) -> u32 {
        self.rt(i).active
    }

    /// `ip_vs_dest_conn_overhead` of server `i`.
    pub fn overhead(&self, i: usize) -> u64 {
        self.rt(i).overhead()
    }

    /// Overload flag of server `i`.
    pub fn overloaded(&self, i: usize) -> bool {
        self.rt(i).overloaded
    }

    /// sh/mh's `is_unavailable`: weight 0 or overloaded.
    pub fn unavailable(&self, i: usize) -> bool {
        self.weight(i) == 0 || self.overloaded(i)
    }

    /// Position of a server id in the list.
    pub fn position(&self, id: DestId) -> Option<usize> {
        self.cfg.iter().position(|d| d.id == id)
    }
}

/// Input of one scheduling decision.
#[derive(Clone, Copy, Debug)]
pub struct SchedCtx {
    /// The client packet's tuple.
    pub flow: FlowKey,
    /// The service's `svc_flags`.
    pub svc_flags: u32,
    /// Current time (ms, monotonic).
    pub now_ms: u64,
}

/// One scheduling algorithm's per-core, per-service state.
pub trait Scheduler: Send + fmt::Debug {
    /// Which algorithm this is.
    fn kind(&self) -> SchedKind;

    /// Picks a real server (its position in `dests`), or `None`: no destination available.
    fn schedule(&mut self, dests: &DestView<'_>, ctx: &SchedCtx) -> Option<usize>;

    /// The server list or a server setting changed (also called once after creation).
    fn update(&mut self, _dests: &DestView<'_>) {}

    /// Periodic housekeeping (lblc/lblcr cache expiry); call about once a second.
    fn tick(&mut self, _now_ms: u64) {}
}

/// Shared helper: the first eligible (not overloaded, weight > 0) server.
pub(crate) fn first_eligible(d: &DestView<'_>) -> Option<usize> {
    (0..d.len()).find(|&i| !d.overloaded(i) && d.weight(i) > 0)
}

/// The wlc scan used by wlc, lblc and lblcr (`loh*w(d) > doh*w(least)`), with a custom
/// overhead function.
pub(crate) fn weighted_least(d: &DestView<'_>, oh: impl Fn(usize) -> u64) -> Option<usize> {
    let mut least = first_eligible(d)?;
    let mut loh = oh(least);
    for i in least + 1..d.len() {
        if d.overloaded(i) {
            continue;
        }
        let doh = oh(i);
        if u128::from(loh) * u128::from(d.weight(i)) > u128::from(doh) * u128::from(d.weight(least))
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// Per-service scheduling state of one core.
#[derive(Debug)]
pub struct SvcSched {
    id: ServiceId,
    sched: Box<dyn Scheduler>,
    slots: Vec<DestSlot>,
}

impl SvcSched {
    /// The scheduler instance.
    pub fn scheduler(&self) -> &dyn Scheduler {
        self.sched.as_ref()
    }

    /// Runs one decision for `svc` (the service this state belongs to).
    pub fn schedule(&mut self, svc: &Service, dests: &DestTable, ctx: &SchedCtx) -> Option<usize> {
        let view = DestView::new(&svc.dests, &self.slots, dests.slots());
        self.sched.schedule(&view, ctx)
    }

    /// The dest-table slot of server `pos`.
    pub fn slot(&self, pos: usize) -> DestSlot {
        self.slots.get(pos).copied().unwrap_or(NO_SLOT)
    }
}

/// All per-core scheduling state, aligned with the adopted snapshot's services.
#[derive(Debug, Default)]
pub struct CoreSched {
    snap: Option<Arc<ServiceSet>>,
    svcs: Vec<SvcSched>,
    seed: u64,
}

impl CoreSched {
    /// Empty state; `seed` makes random schedulers (twos) reproducible per core.
    pub fn new(seed: u64) -> CoreSched {
        CoreSched {
            snap: None,
            svcs: Vec::new(),
            seed,
        }
    }

    /// The adopted snapshot.
    pub fn snapshot(&self) -> Option<&Arc<ServiceSet>> {
        self.snap.as_ref()
    }

    /// The adopted snapshot and the per-service states, borrowed together.
    pub fn parts(&mut self) -> Option<(&ServiceSet, &mut [SvcSched])> {
        let snap = self.snap.as_deref()?;
        Some((snap, &mut self.svcs))
    }

    /// Per-service state (index = snapshot service index).
    pub fn services(&self) -> &[SvcSched] {
        &self.svcs
    }

    /// Adopts `snap` (see the module docs); `dests` must already be synced to it.
    pub fn adopt(&mut self, dests: &DestTable, snap: Arc<ServiceSet>) {
        let mut old: HashMap<ServiceId, (SvcSched, usize)> = HashMap::new();
        let old_snap = self.snap.take();
        for (i, s) in self.svcs.drain(..).enumerate() {
            old.insert(s.id, (s, i));
        }
        for svc in snap.services() {
            let slots: Vec<DestSlot> = svc
                .dests
                .iter()
                .map(|d| dests.slot_of(d.id).unwrap_or(NO_SLOT))
                .collect();
            let view = DestView::new(&svc.dests, &slots, dests.slots());
            let entry = match old.remove(&svc.id) {
                Some((mut s, oi)) if s.sched.kind() == svc.sched => {
                    let changed = old_snap
                        .as_ref()
                        .and_then(|o| o.services().get(oi))
                        .is_none_or(|o| o.dests != svc.dests || o.flags != svc.flags);
                    if changed {
                        s.sched.update(&view);
                    }
                    s.slots = slots;
                    s
                }
                _ => {
                    self.seed = self.seed.wrapping_add(GOLDEN_RATIO_64);
                    let mut sched = build(svc.sched, self.seed);
                    sched.update(&view);
                    SvcSched {
                        id: svc.id,
                        sched,
                        slots,
                    }
                }
            };
            self.svcs.push(entry);
        }
        self.snap = Some(snap);
    }

    /// Runs one scheduling decision for service `idx`; returns the chosen server's position.
    pub fn schedule(&mut self, dests: &DestTable, idx: usize, ctx: &SchedCtx) -> Option<usize> {
        let snap = self.snap.as_ref()?;
        let svc = snap.services().get(idx)?;
        let s = self.svcs.get_mut(idx)?;
        let view = DestView::new(&svc.dests, &s.slots, dests.slots());
        s.sched.schedule(&view, ctx)
    }

    /// Slot of server `pos` of service `idx`.
    pub fn slot(&self, idx: usize, pos: usize) -> DestSlot {
        self.svcs
            .get(idx)
            .and_then(|s| s.slots.get(pos))
            .copied()
            .unwrap_or(NO_SLOT)
    }

    /// Periodic scheduler housekeeping (lblc/lblcr); call about once a second.
    pub fn tick(&mut self, now_ms: u64) {
        for s in &mut self.svcs {
            s.sched.tick(now_ms);
        }
    }
}

/// Small xorshift64* generator for twos' random picks (the kernel uses `get_random_u32`).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { XORSHIFT_STAR } else { seed })
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(XORSHIFT_STAR) >> 32) as u32
    }
}

/// Address used by lblc/lblcr as their cache key (the packet's destination).
pub(crate) fn locality_key(ctx: &SchedCtx) -> Addr {
    ctx.flow.daddr
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A tiny harness: real servers with given weights and counters, listed newest first.
    use super::*;
    use crate::flow::{FwdMethod, Proto};

    /// A test service: `cfg[i]` with runtime `rt[i]` (slot i).
    pub struct Fixture {
        pub cfg: Vec<RealServer>,
        pub rt: Vec<DestRt>,
        pub slots: Vec<DestSlot>,
    }

    impl Fixture {
        /// Servers given in the order they were *added* (like ipvsadm -a calls); the list is
        /// stored newest-first as in the kernel. Each is (name id, weight).
        pub fn added(order: &[(u32, u32)]) -> Fixture {
            let mut cfg: Vec<RealServer> = Vec::new();
            for &(id, w) in order {
                cfg.insert(
                    0,
                    RealServer {
                        id: DestId(id),
                        addr: Addr::v4(10, 0, 0, id as u8),
                        port: 80,
                        fwd: FwdMethod::Masq,
                        weight: w,
                        last_weight: w,
                        u_threshold: 0,
                        l_threshold: 0,
                        tunnel: Default::default(),
                    },
                );
            }
            let rt = cfg
                .iter()
                .map(|d| DestRt {
                    id: d.id,
                    weight: d.weight,
                    available: true,
                    ..DestRt::default()
                })
                .collect();
            let slots = (0..cfg.len() as u32).collect();
            Fixture { cfg, rt, slots }
        }

        pub fn view(&self) -> DestView<'_> {
            DestView::new(&self.cfg, &self.slots, &self.rt)
        }

        pub fn pos(&self, id: u32) -> usize {
            self.cfg.iter().position(|d| d.id == DestId(id)).unwrap()
        }

        /// Sets (active, inactive) of server `id`.
        pub fn load(&mut self, id: u32, active: u32, inactive: u32) {
            let p = self.pos(id);
            self.rt[p].active = active;
            self.rt[p].inactive = inactive;
        }

        pub fn overload(&mut self, id: u32, on: bool) {
            let p = self.pos(id);
            self.rt[p].overloaded = on;
        }

        pub fn set_weight(&mut self, id: u32, w: u32) {
            let p = self.pos(id);
            self.cfg[p].weight = w;
            if w > 0 {
                self.cfg[p].last_weight = w;
            }
        }

        /// Runs the scheduler and names the chosen server by id.
        pub fn pick(&self, s: &mut dyn Scheduler, ctx: &SchedCtx) -> Option<u32> {
            s.schedule(&self.view(), ctx).map(|i| self.cfg[i].id.0)
        }
    }

    pub fn ctx(saddr: Addr, sport: u16, daddr: Addr, flags: u32) -> SchedCtx {
        SchedCtx {
            flow: FlowKey {
                proto: Proto::Tcp,
                saddr,
                daddr,
                sport,
                dport: 80,
            },
            svc_flags: flags,
            now_ms: 0,
        }
    }

    pub fn any_ctx() -> SchedCtx {
        ctx(Addr::v4(1, 2, 3, 4), 1000, Addr::v4(10, 10, 10, 10), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FwdMethod, Proto};
    use crate::service::{DestConfig, ServiceConfig, ServiceKey, ServiceTable};

    #[test]
    fn hash_32_matches_kernel_formula() {
        // 1 * 0x61C88647 >> 24 = 0x61
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        // 2 * 0x61C88647 = 0xC3910C8E -> top byte 0xC3
        assert_eq!(hash_32(2, 8), 0xC3);
        assert_eq!(hash_32(2, 10), 0xC3910C8E >> 22);
    }

    #[test]
    fn names_roundtrip_and_default_is_wlc() {
        for k in SchedKind::ALL {
            assert_eq!(SchedKind::from_name(k.name()), Some(k));
            assert_eq!(build(k, 1).kind(), k);
        }
        assert_eq!(SchedKind::default(), SchedKind::Wlc);
        assert_eq!(SchedKind::from_name("xyz"), None);
    }

    #[test]
    fn overload_set_at_upper_cleared_below_three_quarters_or_lower() {
        let mut t = DestTable::new();
        let mut st = ServiceTable::new();
        let k = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: Addr::v4(10, 0, 0, 1),
            port: 80,
        };
        st.add_service(ServiceConfig::new(k, SchedKind::Wlc))
            .unwrap();
        let a = st
            .add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq).thresholds(4, 0),
            )
            .unwrap();
        t.sync(&st.snapshot());
        let s = t.slot_of(a).unwrap();
        for _ in 0..3 {
            t.bind(s, false, true);
        }
        assert!(!t.get(s).unwrap().overloaded);
        t.bind(s, false, true); // total 4 >= 4
        assert!(t.get(s).unwrap().overloaded);
        t.unbind(s, false, true); // 3*4=12 < 4*3=12? no
        assert!(t.get(s).unwrap().overloaded);
        t.unbind(s, false, true); // 2*4=8 < 12: cleared
        assert!(!t.get(s).unwrap().overloaded);
        // With a lower threshold 1: cleared only when total < 1.
        st.edit_dest(
            &k,
            DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq).thresholds(2, 1),
        )
        .unwrap();
        t.sync(&st.snapshot());
        t.bind(s, false, false); // total 3 >= 2
        assert!(t.get(s).unwrap().overloaded);
        t.unbind(s, false, false);
        t.unbind(s, false, true);
        assert!(t.get(s).unwrap().overloaded); // total 1, not < 1
        t.unbind(s, false, true);
        assert!(!t.get(s).unwrap().overloaded);
        // Templates count as PersistConn, not towards thresholds.
        t.bind(s, true, false);
        assert_eq!(t.get(s).unwrap().persist, 1);
        assert_eq!(t.get(s).unwrap().total(), 0);
    }

    #[test]
    fn removed_dest_kept_until_last_session_then_freed() {
        let mut t = DestTable::new();
        let mut st = ServiceTable::new();
        let k = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: Addr::v4(10, 0, 0, 1),
            port: 80,
        };
        st.add_service(ServiceConfig::new(k, SchedKind::Wlc))
            .unwrap();
        let a = st
            .add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq),
            )
            .unwrap();
        t.sync(&st.snapshot());
        let s = t.slot_of(a).unwrap();
        t.bind(s, false, true);
        st.del_dest(&k, Addr::v4(10, 1, 1, 1), 80).unwrap();
        t.sync(&st.snapshot());
        assert!(!t.by_id(a).unwrap().available);
        t.unbind(s, false, true);
        assert!(t.by_id(a).is_none());
    }
}
