//! nq: never queue (`ip_vs_nq.c`).
//!
//! The first eligible server (list order) with no active session; otherwise sed's choice
//! (`overhead = active + 1`, weighted).

use super::{DestView, SchedCtx, SchedKind, Scheduler};

/// Never-queue scheduler (stateless).
#[derive(Debug, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn kind(&self) -> SchedKind {
        SchedKind::Nq
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for i in 0..d.len() {
            if d.overloaded(i) || d.weight(i) == 0 {
                continue;
            }
            let doh = u64::from(d.active(i)) + 1;
            if d.active(i) == 0 {
                return Some(i);
            }
            let better = match least {
                None => true,
                Some((l, loh)) => {
                    u128::from(loh) * u128::from(d.weight(i))
                        > u128::from(doh) * u128::from(d.weight(l))
                }
            };
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn idle_server_first_else_sed() {
        // Added A(w1), B(w4), C(w1): list C, B, A.
        let mut f = Fixture::added(&[(1, 1), (2, 4), (3, 1)]);
        let mut s = Nq;
        let c = any_ctx();
        f.load(3, 1, 0);
        f.load(2, 2, 0);
        // A is idle: taken although B has the larger weight.
        assert_eq!(f.pick(&mut s, &c), Some(1));
        f.load(1, 1, 0);
        // C (1+1)/1=2, B (2+1)/4=0.75, A 2 -> B.
        assert_eq!(f.pick(&mut s, &c), Some(2));
        // Idle but quiesced or overloaded servers are skipped.
        f.load(3, 0, 5);
        f.set_weight(3, 0);
        assert_eq!(f.pick(&mut s, &c), Some(2));
        f.set_weight(3, 1);
        f.overload(3, true);
        assert_eq!(f.pick(&mut s, &c), Some(2));
    }
}
