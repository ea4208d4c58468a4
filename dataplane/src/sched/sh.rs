//! sh: source hashing (`ip_vs_sh.c`).
//!
//! 256 buckets tiled in list order (newest first), each server taking `weight` consecutive
//! buckets (at least one, so a quiesced server keeps one), the list repeated until the table
//! is full. Bucket of a client = `hash_32(ntohs(port) + ntohl(addr_fold), 8)`, the port being
//! the source port with `sh-port` and 0 otherwise. An unavailable server (weight 0 or
//! overloaded) means no destination, unless `sh-fallback`, which probes
//! `(2*ihash + i) & 255` for i = 0..255 and stops at an empty bucket.

use super::{hash_32, DestView, SchedCtx, SchedKind, Scheduler};
use crate::flow::Addr;
use crate::service::svc_flags;

/// Number of buckets.
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
/// Bits of a bucket number.
const SH_TAB_BITS: u32 = 8;
const NONE: u16 = u16::MAX;

/// Source-hashing state: the bucket table (server positions).
#[derive(Debug)]
pub struct Sh {
    buckets: Box<[u16; SH_TAB_SIZE]>,
}

impl Default for Sh {
    fn default() -> Sh {
        Sh {
            buckets: Box::new([NONE; SH_TAB_SIZE]),
        }
    }
}

fn hashkey(addr: &Addr, port: u16, offset: u32) -> usize {
    offset.wrapping_add(hash_32(
        u32::from(port).wrapping_add(addr.fold()),
        SH_TAB_BITS,
    )) as usize
        % SH_TAB_SIZE
}

impl Sh {
    /// The server position in bucket `b` (for tests and diagnostics).
    pub fn bucket(&self, b: usize) -> Option<usize> {
        self.buckets.get(b).and_then(|&v| {
            if v == NONE {
                None
            } else {
                Some(usize::from(v))
            }
        })
    }
}

impl Scheduler for Sh {
    fn kind(&self) -> SchedKind {
        SchedKind::Sh
    }

    fn update(&mut self, d: &DestView<'_>) {
        let n = d.len().min(usize::from(NONE));
        if n == 0 {
            self.buckets.fill(NONE);
            return;
        }
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            *b = p as u16;
            count += 1;
            if count >= d.weight(p) {
                p = (p + 1) % n;
                count = 0;
            }
        }
    }

    fn schedule(&mut self, d: &DestView<'_>, ctx: &SchedCtx) -> Option<usize> {
        let port = if ctx.svc_flags & svc_flags::SH_PORT != 0 {
            ctx.flow.sport
        } else {
            0
        };
        let addr = &ctx.flow.saddr;
        let ihash = hashkey(addr, port, 0);
        let first = self.bucket(ihash).filter(|&i| i < d.len())?;
        if !d.unavailable(first) {
            return Some(first);
        }
        if ctx.svc_flags & svc_flags::SH_FALLBACK == 0 {
            return None;
        }
        for offset in 0..SH_TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
            let i = self
                .bucket(hashkey(addr, port, roffset))
                .filter(|&i| i < d.len())?;
            if !d.unavailable(i) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn buckets_tiled_by_weight_newest_first() {
        // Added A(1), B(2), C(0): list C, B, A -> C, B, B, A, C, B, B, A, ...
        let f = Fixture::added(&[(1, 1), (2, 2), (3, 0)]);
        let mut s = Sh::default();
        s.update(&f.view());
        let ids: Vec<u32> = (0..8).map(|b| f.cfg[s.bucket(b).unwrap()].id.0).collect();
        assert_eq!(ids, vec![3, 2, 2, 1, 3, 2, 2, 1]);
    }

    #[test]
    fn bucket_formula_and_stickiness() {
        let f = Fixture::added(&[(1, 1), (2, 1), (3, 1), (4, 1)]); // D C B A
        let mut s = Sh::default();
        s.update(&f.view());
        let client = Addr::v4(0, 0, 0, 1);
        // hash_32(1, 8) = 0x61 = 97; 97 % 4 = 1 -> list position 1 = C.
        let c = ctx(client, 5555, Addr::v4(10, 10, 10, 10), 0);
        assert_eq!(f.pick(&mut s, &c), Some(3));
        // Without sh-port the source port is ignored; with it, it is hashed:
        // hash_32(1 + 1, 8) = 0xC3 = 195; 195 % 4 = 3 -> A.
        let c2 = ctx(client, 1, Addr::v4(10, 10, 10, 10), 0);
        assert_eq!(f.pick(&mut s, &c2), Some(3));
        let c3 = ctx(client, 1, Addr::v4(10, 10, 10, 10), svc_flags::SH_PORT);
        assert_eq!(f.pick(&mut s, &c3), Some(1));
        // Many clients: each always gets the same server.
        for x in 0..500u32 {
            let c = ctx(
                Addr::from_v4_bits(0x0a00_0000 + x * 7919),
                1,
                Addr::v4(9, 9, 9, 9),
                0,
            );
            let a = f.pick(&mut s, &c);
            assert!(a.is_some());
            assert_eq!(f.pick(&mut s, &c), a);
        }
    }

    #[test]
    fn weights_shape_the_distribution() {
        // Added A(1), B(3): 256 buckets alternate B B B A -> B has 192 buckets.
        let f = Fixture::added(&[(1, 1), (2, 3)]);
        let mut s = Sh::default();
        s.update(&f.view());
        let b = (0..256)
            .filter(|&i| f.cfg[s.bucket(i).unwrap()].id.0 == 2)
            .count();
        assert_eq!(b, 192);
        let hits = (0..4096u32)
            .filter(|x| {
                let c = ctx(
                    Addr::from_v4_bits(0xc000_0000 | x),
                    1,
                    Addr::v4(9, 9, 9, 9),
                    0,
                );
                f.pick(&mut s, &c) == Some(2)
            })
            .count();
        assert!((2900..3300).contains(&hits), "{hits}");
    }

    #[test]
    fn unavailable_without_and_with_fallback() {
        let mut f = Fixture::added(&[(1, 1), (2, 1), (3, 1), (4, 1)]); // D C B A
        let mut s = Sh::default();
        s.update(&f.view());
        let client = Addr::v4(0, 0, 0, 1); // bucket 97 -> C (see above)
        f.set_weight(3, 0);
        let c = ctx(client, 0, Addr::v4(9, 9, 9, 9), 0);
        assert_eq!(f.pick(&mut s, &c), None);
        // Fallback probes (2*97 + i) & 255: i=0 -> 194, 194 % 4 = 2 -> B.
        let cf = ctx(client, 0, Addr::v4(9, 9, 9, 9), svc_flags::SH_FALLBACK);
        assert_eq!(f.pick(&mut s, &cf), Some(2));
        f.overload(2, true);
        // i=1 -> 195 -> A.
        assert_eq!(f.pick(&mut s, &cf), Some(1));
        // Empty table: no destination.
        let e = Fixture::added(&[]);
        let mut s2 = Sh::default();
        s2.update(&e.view());
        assert_eq!(e.pick(&mut s2, &cf), None);
    }
}
