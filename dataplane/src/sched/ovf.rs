//! ovf: weighted overflow (`ip_vs_ovf.c`).
//!
//! The highest-weight server whose active sessions do not exceed its weight (first in list
//! order on ties); overloaded and quiesced servers are skipped.

use super::fo::Heavier;
use super::{DestView, SchedCtx, SchedKind, Scheduler};

/// Weighted-overflow scheduler (stateless).
#[derive(Debug, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn kind(&self) -> SchedKind {
        SchedKind::Ovf
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let mut h: Option<usize> = None;
        for i in 0..d.len() {
            let w = d.weight(i);
            if d.overloaded(i) || d.active(i) > w || w == 0 {
                continue;
            }
            if h.is_none_or_lighter(d, i) {
                h = Some(i);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn overflows_when_active_exceeds_weight() {
        // Added A(2), B(3): list B, A.
        let mut f = Fixture::added(&[(1, 2), (2, 3)]);
        let mut s = Ovf;
        let c = any_ctx();
        f.load(2, 3, 50); // active 3 <= weight 3: still B
        assert_eq!(f.pick(&mut s, &c), Some(2));
        f.load(2, 4, 0); // 4 > 3: overflow to A
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.load(1, 3, 0); // A full too
        assert_eq!(f.pick(&mut s, &c), None);
    }
}
