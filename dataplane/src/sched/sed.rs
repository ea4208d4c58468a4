//! sed: shortest expected delay (`ip_vs_sed.c`).
//!
//! Like wlc with `overhead = active + 1` (inactive sessions are ignored).

use super::{weighted_least, DestView, SchedCtx, SchedKind, Scheduler};

/// Shortest-expected-delay scheduler (stateless).
#[derive(Debug, Default)]
pub struct Sed;

impl Scheduler for Sed {
    fn kind(&self) -> SchedKind {
        SchedKind::Sed
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        weighted_least(d, |i| u64::from(d.active(i)) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn expected_delay_active_plus_one_over_weight() {
        // Added A(w1), B(w3): list B, A.
        let mut f = Fixture::added(&[(1, 1), (2, 3)]);
        let mut s = Sed;
        let c = any_ctx();
        // B (0+1)/3 < A (0+1)/1
        assert_eq!(f.pick(&mut s, &c), Some(2));
        // B (2+1)/3 = 1 vs A 1/1: tie -> B (first).
        f.load(2, 2, 0);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        // B (3+1)/3 > A 1 -> A; inactive counts do not matter.
        f.load(2, 3, 0);
        f.load(1, 0, 1000);
        assert_eq!(f.pick(&mut s, &c), Some(1));
    }
}
