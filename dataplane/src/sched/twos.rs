//! twos: weighted random twos choice (`ip_vs_twos.c`, Linux 6.2+).
//!
//! Two servers are drawn at random in proportion to their weights (`rand % (total + 1)`
//! walked down the list, as the kernel does); the second replaces the first when
//! `w2 * overhead1 > w1 * overhead2`.

use super::{DestView, Rng, SchedCtx, SchedKind, Scheduler};

/// Twos state: the random generator.
#[derive(Debug)]
pub struct Twos {
    rng: Rng,
}

impl Twos {
    /// A twos scheduler with its own random sequence.
    pub fn new(seed: u64) -> Twos {
        Twos {
            rng: Rng::new(seed),
        }
    }

    /// The decision for two given random draws (separated out for tests).
    pub fn choose(d: &DestView<'_>, r1: u32, r2: u32) -> Option<usize> {
        let mut total: u64 = 0;
        let mut any = false;
        for i in 0..d.len() {
            if !d.overloaded(i) && d.weight(i) > 0 {
                total += u64::from(d.weight(i));
                any = true;
            }
        }
        if !any {
            return None;
        }
        total += 1;
        let mut rw1 = (u64::from(r1) % total) as i64;
        let mut rw2 = (u64::from(r2) % total) as i64;
        let mut c1: Option<(usize, u64, u64)> = None;
        let mut c2: Option<(usize, u64, u64)> = None;
        for i in 0..d.len() {
            if d.overloaded(i) || d.weight(i) == 0 {
                continue;
            }
            let w = i64::from(d.weight(i));
            rw1 -= w;
            rw2 -= w;
            if rw1 <= 0 && c1.is_none() {
                c1 = Some((i, u64::from(d.weight(i)), d.overhead(i)));
            }
            if rw2 <= 0 && c2.is_none() {
                c2 = Some((i, u64::from(d.weight(i)), d.overhead(i)));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        let (i1, w1, oh1) = c1?;
        match c2 {
            Some((i2, w2, oh2))
                if u128::from(w2) * u128::from(oh1) > u128::from(w1) * u128::from(oh2) =>
            {
                Some(i2)
            }
            _ => Some(i1),
        }
    }
}

impl Scheduler for Twos {
    fn kind(&self) -> SchedKind {
        SchedKind::Twos
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let r1 = self.rng.next_u32();
        let r2 = self.rng.next_u32();
        Twos::choose(d, r1, r2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn two_weighted_draws_less_loaded_wins() {
        // Added A(1), B(3): list B, A; total weight 4, draws mod 5.
        let mut f = Fixture::added(&[(1, 1), (2, 3)]);
        let id = |f: &Fixture, r1, r2| Twos::choose(&f.view(), r1, r2).map(|i| f.cfg[i].id.0);
        // r=0..3 land on B (0-3 <= 0 after B), r=4 on A (4-3=1 > 0, 1-1=0).
        assert_eq!(id(&f, 0, 3), Some(2));
        // draws B and A; both idle: 1*0 > 3*0 false -> first draw (B).
        assert_eq!(id(&f, 3, 4), Some(2));
        // B loaded (overhead 256), A idle: 1*256 > 3*0 -> A.
        f.load(2, 1, 0);
        assert_eq!(id(&f, 3, 4), Some(1));
        // First draw A (idle), second B: 3*0 > 1*256 false -> A.
        assert_eq!(id(&f, 4, 0), Some(1));
        f.overload(1, true);
        f.overload(2, true);
        assert_eq!(id(&f, 0, 0), None);
    }

    #[test]
    fn random_choices_follow_weights() {
        let f = Fixture::added(&[(1, 1), (2, 3)]);
        let mut s = Twos::new(42);
        let c = any_ctx();
        let b = (0..4000).filter(|_| f.pick(&mut s, &c) == Some(2)).count();
        // All idle: the first draw wins; B is drawn with probability 4/5.
        assert!((3000..3400).contains(&b), "{b}");
    }
}
