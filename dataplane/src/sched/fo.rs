//! fo: weighted failover (`ip_vs_fo.c`).
//!
//! The available server with the highest weight; the first in list order wins ties.

use super::{DestView, SchedCtx, SchedKind, Scheduler};

/// Weighted-failover scheduler (stateless).
#[derive(Debug, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn kind(&self) -> SchedKind {
        SchedKind::Fo
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let mut h: Option<usize> = None;
        for i in 0..d.len() {
            if !d.overloaded(i) && d.weight(i) > 0 && h.is_none_or_lighter(d, i) {
                h = Some(i);
            }
        }
        h
    }
}

pub(crate) trait Heavier {
    fn is_none_or_lighter(&self, d: &DestView<'_>, i: usize) -> bool;
}

impl Heavier for Option<usize> {
    fn is_none_or_lighter(&self, d: &DestView<'_>, i: usize) -> bool {
        match *self {
            None => true,
            Some(h) => d.weight(i) > d.weight(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn highest_weight_first_on_ties_then_failover() {
        // Added A(5), B(10), C(10): list C, B, A.
        let mut f = Fixture::added(&[(1, 5), (2, 10), (3, 10)]);
        let mut s = Fo;
        let c = any_ctx();
        f.load(3, 100, 0); // load does not matter
        assert_eq!(f.pick(&mut s, &c), Some(3));
        f.overload(3, true);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        f.set_weight(2, 0);
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.set_weight(1, 0);
        assert_eq!(f.pick(&mut s, &c), None);
    }
}
