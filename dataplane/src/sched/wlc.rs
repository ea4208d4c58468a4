//! wlc: weighted least connection (`ip_vs_wlc.c`), the default scheduler.
//!
//! Start from the first server (list order) that is not overloaded and has weight > 0; then
//! replace `least` by a later server `d` when `overhead(least) * w(d) > overhead(d) *
//! w(least)` (64-bit products), overhead being `(active << 8) + inactive`. Ties keep the
//! earlier (newer) server.

use super::{weighted_least, DestView, SchedCtx, SchedKind, Scheduler};

/// Weighted least-connection scheduler (stateless).
#[derive(Debug, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn kind(&self) -> SchedKind {
        SchedKind::Wlc
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        weighted_least(d, |i| d.overhead(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn weighted_choice_and_ties() {
        // Added A(w1), B(w2): list B, A.
        let mut f = Fixture::added(&[(1, 1), (2, 2)]);
        let mut s = Wlc;
        let c = any_ctx();
        assert_eq!(f.pick(&mut s, &c), Some(2)); // both idle: first (B)
                                                 // B: 3 active (768) / w2 = 384 ; A: 1 active 10 inactive (266) / w1 = 266 -> A.
        f.load(2, 3, 0);
        f.load(1, 1, 10);
        assert_eq!(f.pick(&mut s, &c), Some(1));
        // A: 2 active (512)/1 = 512 vs B 768/2 = 384 -> B.
        f.load(1, 2, 0);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        // Exact tie: A 384*2 = 768 vs B 768*1: not greater -> keep B (first).
        f.load(1, 1, 128);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        // Quiesced and overloaded servers are never chosen.
        f.set_weight(2, 0);
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.overload(1, true);
        assert_eq!(f.pick(&mut s, &c), None);
    }
}
