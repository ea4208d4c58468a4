//! dh: destination hashing (`ip_vs_dh.c`).
//!
//! 256 buckets assigned round-robin over the list (newest first), **ignoring weights**; the
//! bucket of a packet is `hash_32(ntohl(daddr_fold), 8)`. An unavailable server (weight 0 or
//! overloaded) means no destination.

use super::{hash_32, DestView, SchedCtx, SchedKind, Scheduler};

/// Number of buckets.
pub const DH_TAB_SIZE: usize = 256;

/// Destination-hashing state (the table is `bucket % n` of the list).
#[derive(Debug, Default)]
pub struct Dh {
    n: usize,
}

impl Scheduler for Dh {
    fn kind(&self) -> SchedKind {
        SchedKind::Dh
    }

    fn update(&mut self, d: &DestView<'_>) {
        self.n = d.len();
    }

    fn schedule(&mut self, d: &DestView<'_>, ctx: &SchedCtx) -> Option<usize> {
        if self.n == 0 || self.n != d.len() {
            return None;
        }
        let b = hash_32(ctx.flow.daddr.fold(), 8) as usize;
        let i = b % self.n;
        if d.weight(i) == 0 || d.overloaded(i) {
            return None;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Addr;
    use crate::sched::testutil::*;

    #[test]
    fn destination_keeps_server_weights_ignored() {
        // Added A(1), B(100): list B, A; buckets alternate B, A regardless of weight.
        let mut f = Fixture::added(&[(1, 1), (2, 100)]);
        let mut s = Dh::default();
        s.update(&f.view());
        // daddr 0.0.0.1: hash_32(1,8) = 97 (odd) -> A; 0.0.0.2: 195 (odd) -> A;
        // 0.0.0.3: 3*0x61C88647 = 0x25594D5 + ... top byte 0x25 = 37 (odd) -> A;
        // 0.0.0.4: 0x8722 1 91C >> 24 = 0x87 (odd). 0.0.0.5: 0xE8EA9E63 -> 0xE8 = 232 (even) -> B.
        let pick = |f: &Fixture, s: &mut Dh, d: u8, src: u8| {
            f.pick(s, &ctx(Addr::v4(1, 1, 1, src), 1, Addr::v4(0, 0, 0, d), 0))
        };
        assert_eq!(pick(&f, &mut s, 1, 1), Some(1));
        assert_eq!(pick(&f, &mut s, 5, 1), Some(2));
        // Same destination, any client: same server.
        for src in 0..50 {
            assert_eq!(pick(&f, &mut s, 5, src), Some(2));
        }
        // Weights ignored: over many destinations the split is about half and half.
        let b = (0..2000u32)
            .filter(|x| {
                let c = ctx(
                    Addr::v4(1, 1, 1, 1),
                    1,
                    Addr::from_v4_bits(0x0a00_0000 + x),
                    0,
                );
                f.pick(&mut s, &c) == Some(2)
            })
            .count();
        assert!((850..1150).contains(&b), "{b}");
        f.set_weight(2, 0);
        assert_eq!(pick(&f, &mut s, 5, 1), None);
        f.set_weight(2, 1);
        f.overload(2, true);
        assert_eq!(pick(&f, &mut s, 5, 1), None);
    }
}
