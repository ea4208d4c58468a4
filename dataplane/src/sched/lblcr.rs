//! lblcr: locality-based least connection with replication (`ip_vs_lblcr.c`).
//!
//! Each destination IP maps to a *set* of servers (newest first). The set's weighted least
//! loaded available member is used unless it is missing or overloaded in lblc's sense; then
//! a cluster-wide wlc pick is added to the set and used. A set with more than one member
//! that has not changed for `lblcr_expiration` (24 h) drops its most loaded member. Cache
//! entries expire like lblc's.

use hashbrown::HashMap;

use super::lblc::{lblc_overloaded, Gc, GcPass, ENTRY_TIMEOUT_MS, EXPIRATION_MS};
use super::{locality_key, weighted_least, DestView, SchedCtx, SchedKind, Scheduler};
use crate::flow::Addr;
use crate::service::DestId;

#[derive(Debug, Clone)]
struct Entry {
    set: Vec<DestId>,
    lastmod_ms: u64,
    lastuse_ms: u64,
}

/// lblcr state: the destination-IP cache of server sets.
#[derive(Debug, Default)]
pub struct Lblcr {
    cache: HashMap<Addr, Entry>,
    gc: Gc,
    expiration_ms: Option<u64>,
}

/// `ip_vs_dest_set_min`: weighted least loaded member that is available.
fn set_min(d: &DestView<'_>, set: &[DestId]) -> Option<usize> {
    let mut it = set.iter().filter_map(|id| d.position(*id));
    let mut least = loop {
        let i = it.next()?;
        if d.overloaded(i) {
            continue;
        }
        if d.weight(i) > 0 {
            break i;
        }
    };
    let mut loh = d.overhead(least);
    for i in it {
        if d.overloaded(i) {
            continue;
        }
        let doh = d.overhead(i);
        if u128::from(loh) * u128::from(d.weight(i)) > u128::from(doh) * u128::from(d.weight(least))
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// `ip_vs_dest_set_max`: weighted most loaded member with weight > 0.
fn set_max(d: &DestView<'_>, set: &[DestId]) -> Option<usize> {
    let mut it = set.iter().filter_map(|id| d.position(*id));
    let mut most = loop {
        let i = it.next()?;
        if d.weight(i) > 0 {
            break i;
        }
    };
    let mut moh = d.overhead(most);
    for i in it {
        let doh = d.overhead(i);
        if u128::from(moh) * u128::from(d.weight(i)) < u128::from(doh) * u128::from(d.weight(most))
            && d.weight(i) > 0
        {
            most = i;
            moh = doh;
        }
    }
    Some(most)
}

impl Lblcr {
    /// The server set cached for a destination address (newest first).
    pub fn set_of(&self, daddr: &Addr) -> Option<&[DestId]> {
        self.cache.get(daddr).map(|e| e.set.as_slice())
    }

    /// Sets `lblcr_expiration` (ms).
    pub fn set_expiration(&mut self, ms: u64) {
        self.expiration_ms = Some(ms);
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }

    fn schedule(&mut self, d: &DestView<'_>, ctx: &SchedCtx) -> Option<usize> {
        let key = locality_key(ctx);
        let now = ctx.now_ms;
        let exp = self.expiration_ms.unwrap_or(EXPIRATION_MS);
        if let Some(en) = self.cache.get_mut(&key) {
            en.lastuse_ms = now;
            let dest = set_min(d, &en.set);
            if en.set.len() > 1 && now > en.lastmod_ms + exp {
                if let Some(m) = set_max(d, &en.set) {
                    let id = d.cfg(m).id;
                    en.set.retain(|x| *x != id);
                    en.lastmod_ms = now;
                }
            }
            if let Some(i) = dest {
                if !lblc_overloaded(d, i) {
                    return Some(i);
                }
            }
            let i = weighted_least(d, |i| d.overhead(i))?;
            let id = d.cfg(i).id;
            if !en.set.contains(&id) {
                en.set.insert(0, id);
                en.lastmod_ms = now;
            }
            return Some(i);
        }
        let i = weighted_least(d, |i| d.overhead(i))?;
        self.cache.insert(
            key,
            Entry {
                set: vec![d.cfg(i).id],
                lastmod_ms: now,
                lastuse_ms: now,
            },
        );
        Some(i)
    }

    fn update(&mut self, d: &DestView<'_>) {
        // Removed servers leave every set (the kernel keeps them, unavailable, until the
        // entry goes; they can never be chosen either way).
        for e in self.cache.values_mut() {
            e.set.retain(|id| d.position(*id).is_some());
        }
    }

    fn tick(&mut self, now_ms: u64) {
        let exp = self.expiration_ms.unwrap_or(EXPIRATION_MS);
        for pass in self.gc.passes(now_ms, self.cache.len()) {
            match pass {
                GcPass::Nothing => {}
                GcPass::Full => self.cache.retain(|_, e| now_ms < e.lastuse_ms + exp),
                GcPass::Trim(mut goal) => self.cache.retain(|_, e| {
                    if goal == 0 || now_ms < e.lastuse_ms + ENTRY_TIMEOUT_MS {
                        true
                    } else {
                        goal -= 1;
                        false
                    }
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn to(daddr: Addr, now: u64) -> SchedCtx {
        let mut c = ctx(Addr::v4(1, 1, 1, 1), 1000, daddr, 0);
        c.now_ms = now;
        c
    }

    #[test]
    fn set_grows_on_overload_and_shrinks_after_expiration() {
        // Added A(w2), B(w2), C(w2): list C, B, A.
        let mut f = Fixture::added(&[(1, 2), (2, 2), (3, 2)]);
        let mut s = Lblcr::default();
        let x = Addr::v4(172, 16, 0, 1);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(3)); // wlc, all idle -> C
        assert_eq!(s.set_of(&x).unwrap(), &[DestId(3)]);
        // C active 3 > 2 and A idle: lblc-overloaded -> wlc pick (B: list order before A) added.
        f.load(3, 3, 0);
        assert_eq!(f.pick(&mut s, &to(x, 1000)), Some(2));
        assert_eq!(s.set_of(&x).unwrap(), &[DestId(2), DestId(3)]);
        // Set minimum: B (idle) over C.
        f.load(2, 1, 0);
        assert_eq!(f.pick(&mut s, &to(x, 2000)), Some(2));
        // B lighter than C, but C 3 active is the most loaded: after 24 h without change the
        // set drops C (the max), and B is used.
        assert_eq!(f.pick(&mut s, &to(x, 1000 + EXPIRATION_MS + 1)), Some(2));
        assert_eq!(s.set_of(&x).unwrap(), &[DestId(2)]);
        // Removing B from the service empties the set; the next pick repopulates it.
        let p = f.pos(2);
        f.cfg.remove(p);
        f.rt.remove(p);
        f.slots = (0..f.cfg.len() as u32).collect();
        s.update(&f.view());
        assert_eq!(s.set_of(&x).unwrap(), &[] as &[DestId]);
        assert_eq!(f.pick(&mut s, &to(x, 5)), Some(1)); // wlc: C 768/2 vs A 0 -> A
        assert_eq!(s.set_of(&x).unwrap(), &[DestId(1)]);
    }
}
