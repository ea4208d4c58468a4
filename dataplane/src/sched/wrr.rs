//! wrr: weighted round robin (`ip_vs_wrr.c`).
//!
//! `di` = gcd of the positive weights, `mw` = max weight - (di - 1), `cw` starts at `mw`.
//! Each decision takes the next server after the cursor with `weight >= cw`; at the end of the
//! list `cw -= di`, and when it reaches 0 it restarts at `mw`. Any change of the servers resets
//! the cursor to the head and recomputes `di`/`mw` (`ip_vs_wrr_dest_changed`).

use super::{gcd, DestView, SchedCtx, SchedKind, Scheduler};

/// Weighted round-robin state (`struct ip_vs_wrr_mark`).
#[derive(Debug, Default)]
pub struct Wrr {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
    init: bool,
}

fn gcd_weight(d: &DestView<'_>) -> i64 {
    let mut g = 0u32;
    for i in 0..d.len() {
        let w = d.weight(i);
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
    }
    if g == 0 {
        1
    } else {
        i64::from(g)
    }
}

fn max_weight(d: &DestView<'_>) -> i64 {
    (0..d.len())
        .map(|i| i64::from(d.weight(i)))
        .max()
        .unwrap_or(0)
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }

    fn update(&mut self, d: &DestView<'_>) {
        self.cl = None;
        self.di = gcd_weight(d);
        self.mw = max_weight(d) - (self.di - 1);
        if !self.init {
            self.init = true;
            self.cw = self.mw;
        } else if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        if self.mw <= 0 {
            return None;
        }
        let n = d.len();
        let last = self.cl;
        let mut pos = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = pos.map_or(0, |p| p + 1).min(n);
            for i in start..n {
                if !d.overloaded(i) && i64::from(d.weight(i)) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    fn names(f: &Fixture, s: &mut Wrr, n: usize) -> String {
        let c = any_ctx();
        (0..n)
            .map(|_| match f.pick(s, &c) {
                Some(1) => 'A',
                Some(2) => 'B',
                Some(3) => 'C',
                Some(_) => '?',
                None => '-',
            })
            .collect()
    }

    #[test]
    fn a4_b3_c2_added_in_order() {
        let f = Fixture::added(&[(1, 4), (2, 3), (3, 2)]);
        let mut s = Wrr::default();
        s.update(&f.view());
        assert_eq!(names(&f, &mut s, 18), "ABACBACBAABACBACBA");
    }

    #[test]
    fn gcd_steps_and_quiesced_and_overloaded() {
        // A4 B2: gcd 2, mw 3 -> cw 3: A; cw 1: B A; cw 3: A; ...
        let mut f = Fixture::added(&[(1, 4), (2, 2)]);
        let mut s = Wrr::default();
        s.update(&f.view());
        assert_eq!(names(&f, &mut s, 6), "ABAABA");
        f.overload(1, true);
        assert_eq!(names(&f, &mut s, 3), "BBB");
        f.overload(2, true);
        assert_eq!(names(&f, &mut s, 2), "--");
        let mut z = Fixture::added(&[(1, 0), (2, 0)]);
        let mut s2 = Wrr::default();
        s2.update(&z.view());
        assert_eq!(names(&z, &mut s2, 2), "--");
        z.set_weight(1, 1);
        s2.update(&z.view());
        assert_eq!(names(&z, &mut s2, 2), "AA");
    }

    #[test]
    fn dest_change_resets_cursor_to_head() {
        let f = Fixture::added(&[(1, 1), (2, 1), (3, 1)]); // C B A
        let mut s = Wrr::default();
        s.update(&f.view());
        assert_eq!(names(&f, &mut s, 2), "CB");
        s.update(&f.view());
        assert_eq!(names(&f, &mut s, 2), "CB");
    }
}
