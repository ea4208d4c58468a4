//! The timer wheel of the session table: 16384 slots of 100 ms linked through the slab,
//! arming, linking and unlinking, and expiry (see the module docs of `conn`).

use crate::sched::NO_SLOT;

use super::session::{Session, DYING, NIL, SLOTS};
use super::state::TEMPLATE_RETRY;
use super::table::ConnTable;
use super::ConnId;

/// Milliseconds per second (timeouts are in seconds, the clock in milliseconds).
pub(super) const MS_PER_SEC: u64 = 1000;
/// Wheel resolution.
pub(super) const TICK_MS: u64 = 100;
pub(super) const MASK: u32 = (SLOTS - 1) as u32;
pub(super) fn ticks_ceil(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(TICK_MS)).unwrap_or(DYING - 1)
}

/// Wheel ticks in a second: timeouts are whole seconds, so a timeout adds whole ticks.
const TICKS_PER_SEC: u64 = MS_PER_SEC / TICK_MS;
const _: () = assert!(MS_PER_SEC.is_multiple_of(TICK_MS));

/// `ticks_ceil(now_ms + secs * MS_PER_SEC)`, as the clock's ticks plus the timeout's: the
/// division of `now_ms` is then the same for every packet the worker's poll handles with
/// one clock reading, and the compiler takes it out of the loop (the sum's division, a
/// multiply-high chain, was made per packet).
#[inline(always)]
pub(super) fn expiry_ticks(now_ms: u64, secs: u32) -> u32 {
    u32::try_from(now_ms.div_ceil(TICK_MS) + u64::from(secs) * TICKS_PER_SEC).unwrap_or(DYING - 1)
}

pub(super) fn ticks_floor(ms: u64) -> u32 {
    u32::try_from(ms / TICK_MS).unwrap_or(DYING - 1)
}

impl ConnTable {
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

    /// Seconds until a session expires.
    pub fn expires_in_secs(&self, s: &Session, now_ms: u64) -> u64 {
        if s.wheel_at == DYING {
            return 0;
        }
        (u64::from(s.expires) * TICK_MS).saturating_sub(now_ms) / MS_PER_SEC
    }

    /// Sets the expiry to `now + timeout`; moves the entry in the wheel only when the expiry
    /// got earlier than its slot (otherwise the slot visit moves it lazily).
    #[inline(always)]
    pub(super) fn arm(&mut self, i: u32, now_ms: u64) {
        let s = &mut self.slab[i as usize];
        let exp = expiry_ticks(now_ms, s.timeout);
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

    pub(super) fn link(&mut self, i: u32, tick: u32) {
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

    pub(super) fn unlink(&mut self, i: u32) {
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

    pub(super) fn push_dying(&mut self, i: u32) {
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
                .saturating_add(ticks_ceil(u64::from(TEMPLATE_RETRY) * MS_PER_SEC))
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
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::{expiry_ticks, ticks_ceil, MS_PER_SEC};

    proptest::proptest! {
        /// The expiry from the clock's ticks plus the timeout's is the tick of the sum,
        /// the saturation at the wheel's end included.
        #[test]
        fn expiry_ticks_is_the_tick_of_the_sum(
            now in proptest::prelude::any::<u64>(), secs in proptest::prelude::any::<u32>(),
            small in proptest::prelude::any::<bool>(),
        ) {
            // Real clocks are small: most cases well inside the wheel's range.
            let now = if small { now % (1 << 40) } else { now >> 4 };
            proptest::prop_assert_eq!(
                expiry_ticks(now, secs),
                ticks_ceil(now + u64::from(secs) * MS_PER_SEC)
            );
        }
    }

    #[test]
    fn template_with_live_session_retries_every_60s() {
        let key = vip_key(Proto::Tcp, 80);
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
    fn wheel_handles_long_gaps_and_many_sessions() {
        let key = vip_key(Proto::Udp, 53);
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
