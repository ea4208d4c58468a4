//! lc: least connection (`ip_vs_lc.c`).
//!
//! The server with the least `overhead = (active << 8) + inactive`, skipping overloaded and
//! quiesced servers; on a tie the first in list order (newest first) wins.

use super::{DestView, SchedCtx, SchedKind, Scheduler};

/// Least-connection scheduler (stateless).
#[derive(Debug, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lc
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for i in 0..d.len() {
            if d.overloaded(i) || d.weight(i) == 0 {
                continue;
            }
            let doh = d.overhead(i);
            if least.is_none_or_gt(doh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

trait LeastExt {
    fn is_none_or_gt(&self, v: u64) -> bool;
}

impl LeastExt for Option<(usize, u64)> {
    fn is_none_or_gt(&self, v: u64) -> bool {
        match self {
            None => true,
            Some((_, l)) => v < *l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn least_overhead_ties_to_newest_weights_ignored() {
        // Added A, B, C: list C, B, A.
        let mut f = Fixture::added(&[(1, 1), (2, 5), (3, 1)]);
        let mut s = Lc;
        let c = any_ctx();
        assert_eq!(f.pick(&mut s, &c), Some(3)); // all 0: first in list (C)
        f.load(3, 1, 0); // C 256
        f.load(2, 0, 300); // B 300
        f.load(1, 0, 255); // A 255
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.load(1, 0, 256); // A 256 ties C 256: C first in list
        assert_eq!(f.pick(&mut s, &c), Some(3));
        f.set_weight(3, 0);
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.overload(1, true);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        f.overload(2, true);
        assert_eq!(f.pick(&mut s, &c), None);
    }
}
