//! lblc: locality-based least connection (`ip_vs_lblc.c`).
//!
//! A cache maps a destination IP to a server. The cached server is used unless it is gone,
//! quiesced, or "overloaded" in lblc's sense: `active > weight` while some server of the
//! service has `active * 2 < weight`. Otherwise a server is picked with wlc and cached.
//! Entries are expired by a 60 s housekeeping pass: every 30th pass drops entries unused for
//! `lblc_expiration` (24 h); in between, when the cache holds more than 16384 entries, entries
//! unused for 6 minutes are dropped (at most `(entries - 16384) * 4/3`, capped at 8192).

use hashbrown::HashMap;

use super::{locality_key, weighted_least, DestView, SchedCtx, SchedKind, Scheduler};
use crate::flow::Addr;
use crate::service::DestId;

/// Default `lblc_expiration` / `lblcr_expiration` (24 h) in ms.
pub const EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Housekeeping period (`CHECK_EXPIRE_TIME`).
pub const CHECK_EXPIRE_MS: u64 = 60 * 1000;
/// `ENTRY_TIMEOUT`: idle time after which an entry may go when the cache is too big.
pub const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// Cache size above which idle entries are trimmed (`IP_VS_LBLC_TAB_SIZE * 16`).
pub const MAX_SIZE: usize = 1024 * 16;
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// lblc's overload test (also used by lblcr).
pub(crate) fn lblc_overloaded(d: &DestView<'_>, i: usize) -> bool {
    if d.active(i) > d.weight(i) {
        (0..d.len()).any(|j| u64::from(d.active(j)) * 2 < u64::from(d.weight(j)))
    } else {
        false
    }
}

/// The periodic expiry schedule shared by lblc and lblcr.
#[derive(Debug, Default)]
pub(crate) struct Gc {
    next_ms: Option<u64>,
    counter: u32,
}

/// Housekeeping passes one call catches up at most (after a long gap in the clock).
const MAX_PASSES: usize = 64;

/// What one housekeeping pass should do.
pub(crate) enum GcPass {
    Nothing,
    /// Drop entries idle for `expiration`.
    Full,
    /// Drop up to `goal` entries idle for 6 minutes.
    Trim(usize),
}

impl Gc {
    pub(crate) fn passes(&mut self, now_ms: u64, entries: usize) -> Vec<GcPass> {
        let mut out = Vec::new();
        let next = *self.next_ms.get_or_insert(now_ms + CHECK_EXPIRE_MS);
        if self.counter == 0 {
            self.counter = 1;
        }
        let mut next = next;
        while now_ms >= next && out.len() < MAX_PASSES {
            if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
                self.counter = 1;
                out.push(GcPass::Full);
            } else if entries <= MAX_SIZE {
                self.counter += 1;
                out.push(GcPass::Nothing);
            } else {
                let goal = ((entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
                out.push(GcPass::Trim(goal));
            }
            next += CHECK_EXPIRE_MS;
        }
        if now_ms >= next {
            next = now_ms + CHECK_EXPIRE_MS;
        }
        self.next_ms = Some(next);
        out
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dest: DestId,
    lastuse_ms: u64,
}

/// lblc state: the destination-IP cache.
#[derive(Debug, Default)]
pub struct Lblc {
    cache: HashMap<Addr, Entry>,
    gc: Gc,
    expiration_ms: Option<u64>,
}

impl Lblc {
    /// Number of cache entries.
    pub fn entries(&self) -> usize {
        self.cache.len()
    }

    /// Sets `lblc_expiration` (ms).
    pub fn set_expiration(&mut self, ms: u64) {
        self.expiration_ms = Some(ms);
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }

    fn schedule(&mut self, d: &DestView<'_>, ctx: &SchedCtx) -> Option<usize> {
        let key = locality_key(ctx);
        if let Some(en) = self.cache.get_mut(&key) {
            en.lastuse_ms = ctx.now_ms;
            if let Some(i) = d.position(en.dest) {
                if d.weight(i) > 0 && !lblc_overloaded(d, i) {
                    return Some(i);
                }
            }
        }
        let i = weighted_least(d, |i| d.overhead(i))?;
        let dest = d.cfg(i).id;
        self.cache
            .entry(key)
            .and_modify(|e| e.dest = dest)
            .or_insert(Entry {
                dest,
                lastuse_ms: ctx.now_ms,
            });
        Some(i)
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
    fn sticks_per_destination_until_lblc_overload() {
        // Added A(w2), B(w2): list B, A.
        let mut f = Fixture::added(&[(1, 2), (2, 2)]);
        let mut s = Lblc::default();
        let x = Addr::v4(172, 16, 0, 1);
        let y = Addr::v4(172, 16, 0, 2);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(2)); // wlc: both idle -> B
        f.load(2, 1, 0);
        assert_eq!(f.pick(&mut s, &to(y, 0)), Some(1)); // wlc -> A, cached for y
                                                        // x stays on B even though B is busier than A.
        f.load(2, 2, 0);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(2));
        // B active 3 > weight 2, but no server has active*2 < weight (A: 1*2 < 2? no): stays.
        f.load(1, 1, 0);
        f.load(2, 3, 0);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(2));
        // A idle (0*2 < 2): B is now overloaded for lblc -> rescheduled with wlc -> A.
        f.load(1, 0, 0);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(1));
        // The cache now says A for x.
        f.load(1, 2, 0);
        f.load(2, 0, 0);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(1));
        // Quiesced cached server: rescheduled.
        f.set_weight(1, 0);
        assert_eq!(f.pick(&mut s, &to(x, 0)), Some(2));
        assert_eq!(s.entries(), 2);
    }

    #[test]
    fn idle_entries_expire_after_24h_on_the_30th_pass() {
        let f = Fixture::added(&[(1, 1)]);
        let mut s = Lblc::default();
        s.tick(0); // arms the 60 s timer
        assert_eq!(f.pick(&mut s, &to(Addr::v4(172, 16, 0, 1), 0)), Some(1));
        s.tick(EXPIRATION_MS - 1);
        assert_eq!(s.entries(), 1);
        // The next full pass after 24 h of idleness removes it (passes every 30 min).
        s.tick(EXPIRATION_MS + 31 * 60 * 1000);
        assert_eq!(s.entries(), 0);
    }
}
