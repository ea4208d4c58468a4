//! rr: round robin (`ip_vs_rr.c`).
//!
//! A cursor on the list (initially the list head); each decision takes the next server after
//! the cursor, wrapping once, that is neither overloaded nor quiesced. When the server under
//! the cursor is removed the cursor moves to its predecessor (`ip_vs_rr_del_dest`).

use super::{DestView, SchedCtx, SchedKind, Scheduler};
use crate::service::DestId;

/// Round-robin state: the last chosen server (`None`: the list head).
#[derive(Debug, Default)]
pub struct Rr {
    cursor: Option<usize>,
    ids: Vec<DestId>,
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }

    fn schedule(&mut self, d: &DestView<'_>, _ctx: &SchedCtx) -> Option<usize> {
        let n = d.len();
        let ok = |i: usize| !d.overloaded(i) && d.weight(i) > 0;
        let start = self.cursor.map_or(0, |c| c + 1).min(n);
        let hit = (start..n).find(|&i| ok(i)).or_else(|| match self.cursor {
            // Second pass from the head up to and including the last choice.
            Some(c) => (0..=c.min(n.saturating_sub(1))).find(|&i| i < n && ok(i)),
            None => None,
        });
        if let Some(i) = hit {
            self.cursor = Some(i);
        }
        hit
    }

    fn update(&mut self, d: &DestView<'_>) {
        let new_ids: Vec<DestId> = (0..d.len()).map(|i| d.cfg(i).id).collect();
        self.cursor = self.cursor.and_then(|c| {
            // The cursor's server, or the nearest surviving predecessor; else the head.
            (0..=c.min(self.ids.len().saturating_sub(1)))
                .rev()
                .filter_map(|j| self.ids.get(j))
                .find_map(|id| new_ids.iter().position(|x| x == id))
        });
        self.ids = new_ids;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn cycles_newest_first_skipping_quiesced_and_overloaded() {
        // Added A(1), B(2), C(3): the list is C, B, A.
        let mut f = Fixture::added(&[(1, 1), (2, 1), (3, 1)]);
        let mut s = Rr::default();
        s.update(&f.view());
        let c = any_ctx();
        let seq: Vec<u32> = (0..6).map(|_| f.pick(&mut s, &c).unwrap()).collect();
        assert_eq!(seq, vec![3, 2, 1, 3, 2, 1]);
        f.set_weight(2, 0);
        f.overload(1, true);
        assert_eq!(f.pick(&mut s, &c), Some(3));
        assert_eq!(f.pick(&mut s, &c), Some(3));
        f.overload(3, true);
        assert_eq!(f.pick(&mut s, &c), None);
    }

    #[test]
    fn cursor_survives_add_and_moves_to_predecessor_on_delete() {
        let mut f = Fixture::added(&[(1, 1), (2, 1), (3, 1)]); // C B A
        let mut s = Rr::default();
        s.update(&f.view());
        let c = any_ctx();
        assert_eq!(f.pick(&mut s, &c), Some(3));
        assert_eq!(f.pick(&mut s, &c), Some(2)); // cursor on B
                                                 // Remove B: the cursor goes to C, so A is next.
        let p = f.pos(2);
        f.cfg.remove(p);
        f.rt.remove(p);
        f.slots = (0..f.cfg.len() as u32).collect();
        s.update(&f.view());
        assert_eq!(f.pick(&mut s, &c), Some(1));
        // Add D at the head: after A comes D (wrap), then C.
        let mut g = Fixture::added(&[(1, 1), (3, 1), (4, 1)]); // D C A
        std::mem::swap(&mut f, &mut g);
        s.update(&f.view());
        assert_eq!(f.pick(&mut s, &c), Some(4));
        assert_eq!(f.pick(&mut s, &c), Some(3));
    }
}
