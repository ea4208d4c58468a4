//! mh: Maglev hashing (`ip_vs_mh.c`).
//!
//! A lookup table of M slots (a prime, 4093 by default). Each server gets
//! `offset = hsiphash(v, k1) % M` and `skip = hsiphash(v, k2) % (M-1) + 1` with
//! `v = ntohs(port) + ntohl(addr_fold)`, `k1 = {2654435761, 2654435761}`,
//! `k2 = {2654446892, 2654446892}`; servers take turns claiming their next free preferred
//! slot, `(last_weight / gcd) >> rshift` slots per turn (at least
//! one for a non-zero weight), `rshift = max(0, fls(max_weight / gcd) - 6)`. `last_weight`
//! keeps a quiesced server's slots (its clients get "no destination" rather than a new
//! server, unless `mh-fallback`). Lookup slot = `hsiphash(ntohs(sport if mh-port) +
//! ntohl(caddr_fold), k1) % M`; the fallback probes `hsiphash(roffset + port + addr, k1) % M`
//! for `roffset = ihash, ihash+1, ...` and stops at an empty slot.
//!
//! One difference from the kernel, for directors that share a service: the servers take
//! their turns in the order of their addresses and ports, not in the order of the list
//! (the kernel's newest first). The list's order is history (which `ipvsadm -a` came
//! first, a server a health check removed and put back at the head), and two directors
//! with the same servers would build different tables from different histories. Sorted,
//! the table depends on the servers' addresses, ports and weights only: every director
//! of a group, every worker of a director, and a director restarted from its
//! configuration pick the same server for a client. (What still differs between them is
//! the per-core overload flag of servers with an upper threshold: a server overloaded on
//! one director only is skipped there; with `mh-fallback` that client goes elsewhere.)

use super::hsiphash::hsiphash_u32;
use super::{gcd, DestView, SchedCtx, SchedKind, Scheduler};
use crate::flow::Addr;
use crate::service::svc_flags;

/// The kernel's table sizes (`primes[]`); `CONFIG_IP_VS_MH_TAB_INDEX` 12 picks 4093.
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// Default table size.
pub const MH_TAB_SIZE: u32 = 4093;
const MH_TAB_BITS: u32 = 6;
const K1: [u64; 2] = [2_654_435_761, 2_654_435_761];
const K2: [u64; 2] = [2_654_446_892, 2_654_446_892];
const NONE: u32 = u32::MAX;

/// Maglev state: the lookup table of server positions.
#[derive(Debug)]
pub struct Mh {
    size: u32,
    lookup: Vec<u32>,
}

impl Default for Mh {
    fn default() -> Mh {
        Mh::with_size(MH_TAB_SIZE)
    }
}

fn hashkey(addr: &Addr, port: u16, key: [u64; 2], offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(addr.fold());
    hsiphash_u32(v, key)
}

fn fls(x: u32) -> i32 {
    32 - x.leading_zeros() as i32
}

impl Mh {
    /// A Maglev table of `size` slots (one of [`MH_PRIMES`]; other values fall back to 4093).
    pub fn with_size(size: u32) -> Mh {
        let size = if MH_PRIMES.contains(&size) {
            size
        } else {
            MH_TAB_SIZE
        };
        Mh {
            size,
            lookup: vec![NONE; size as usize],
        }
    }

    /// The server position in slot `i`.
    pub fn slot(&self, i: usize) -> Option<usize> {
        match self.lookup.get(i) {
            Some(&v) if v != NONE => Some(v as usize),
            _ => None,
        }
    }

    fn get(&self, d: &DestView<'_>, i: u32) -> Option<usize> {
        self.slot(i as usize).filter(|&p| p < d.len())
    }
}

impl Scheduler for Mh {
    fn kind(&self) -> SchedKind {
        SchedKind::Mh
    }

    fn update(&mut self, d: &DestView<'_>) {
        let m = self.size;
        self.lookup.fill(NONE);
        let n = d.len();
        if n == 0 || n > m as usize {
            return;
        }
        let mut g = 0u32;
        let mut maxw = 0u32;
        for i in 0..n {
            let w = d.cfg(i).last_weight;
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            maxw = maxw.max(w);
        }
        if g < 1 {
            return;
        }
        let rshift = (fls(maxw / g) - MH_TAB_BITS as i32).max(0) as u32;
        struct Setup {
            pos: u32,
            perm: u32,
            skip: u32,
            turns: u32,
        }
        // Turns in address order, so that the table does not depend on the list's order.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (d.cfg(a), d.cfg(b));
            (x.addr.0, x.port).cmp(&(y.addr.0, y.port))
        });
        let mut ds: Vec<Setup> = order
            .iter()
            .map(|&i| {
                let c = d.cfg(i);
                let offset = hashkey(&c.addr, c.port, K1, 0) % m;
                let skip = hashkey(&c.addr, c.port, K2, 0) % (m - 1) + 1;
                let lw = c.last_weight;
                let t = (lw / g) >> rshift;
                Setup {
                    pos: i as u32,
                    perm: offset,
                    skip,
                    turns: if t > 0 { t } else { u32::from(lw != 0) },
                }
            })
            .collect();
        let mut taken = vec![false; m as usize];
        let mut filled = 0u32;
        let mut dt_count = 0u32;
        'outer: loop {
            let mut p = 0usize;
            while p < n {
                if ds[p].turns < 1 {
                    p += 1;
                    continue;
                }
                let s = &mut ds[p];
                let mut c = s.perm;
                while taken[c as usize] {
                    s.perm += s.skip;
                    if s.perm >= m {
                        s.perm -= m;
                    }
                    c = s.perm;
                }
                taken[c as usize] = true;
                self.lookup[c as usize] = s.pos;
                filled += 1;
                if filled == m {
                    break 'outer;
                }
                dt_count += 1;
                if dt_count >= s.turns {
                    dt_count = 0;
                    p += 1;
                }
            }
        }
    }

    fn schedule(&mut self, d: &DestView<'_>, ctx: &SchedCtx) -> Option<usize> {
        let port = if ctx.svc_flags & svc_flags::MH_PORT != 0 {
            ctx.flow.sport
        } else {
            0
        };
        let addr = &ctx.flow.saddr;
        let m = self.size;
        let ihash = hashkey(addr, port, K1, 0) % m;
        let first = self.get(d, ihash)?;
        if !d.unavailable(first) {
            return Some(first);
        }
        if ctx.svc_flags & svc_flags::MH_FALLBACK == 0 {
            return None;
        }
        for offset in 0..m {
            let roffset = (offset + ihash) % m;
            let i = self.get(d, hashkey(addr, port, K1, roffset) % m)?;
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
    use crate::sched::DestId;
    use crate::service::RealServer;

    fn clients() -> impl Iterator<Item = Addr> {
        (0..10_000u32)
            .map(|x| Addr::from_v4_bits(0xc633_0000u32.wrapping_add(x.wrapping_mul(2_654_435_761))))
    }

    #[test]
    fn slots_split_by_weight() {
        let f = Fixture::added(&[(1, 1), (2, 3)]);
        let mut s = Mh::default();
        s.update(&f.view());
        let b = (0..4093)
            .filter(|&i| f.cfg[s.slot(i).unwrap()].id.0 == 2)
            .count();
        // Turns 3:1 -> B claims 3 slots for every 1 of A until the table is full.
        assert!((3060..3080).contains(&b), "{b}");
        let all = (0..4093).filter(|&i| s.slot(i).is_some()).count();
        assert_eq!(all, 4093);
    }

    #[test]
    fn adding_a_fifth_server_moves_about_one_fifth() {
        let mut f = Fixture::added(&[(1, 1), (2, 1), (3, 1), (4, 1)]);
        let mut s = Mh::default();
        s.update(&f.view());
        let before: Vec<u32> = clients()
            .map(|a| f.pick(&mut s, &ctx(a, 1, Addr::v4(9, 9, 9, 9), 0)).unwrap())
            .collect();
        // Add E at the head of the list.
        f.cfg.insert(
            0,
            RealServer {
                id: DestId(5),
                addr: Addr::v4(10, 0, 0, 5),
                port: 80,
                ..f.cfg[0]
            },
        );
        f.rt.insert(0, f.rt[0].clone());
        f.slots = (0..f.cfg.len() as u32).collect();
        s.update(&f.view());
        let after: Vec<u32> = clients()
            .map(|a| f.pick(&mut s, &ctx(a, 1, Addr::v4(9, 9, 9, 9), 0)).unwrap())
            .collect();
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let frac = moved as f64 / 10_000.0;
        assert!(frac > 0.15 && frac < 0.3, "moved {frac}");
        // Every moved client moved to the new server.
        let to_new = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| a != b && **b == 5)
            .count();
        assert!(to_new * 10 >= moved * 9, "{to_new} of {moved}");
    }

    #[test]
    fn quiesced_keeps_slots_and_fallback_finds_another() {
        let mut f = Fixture::added(&[(1, 1), (2, 1), (3, 1)]);
        let mut s = Mh::default();
        s.update(&f.view());
        let c = ctx(Addr::v4(203, 0, 113, 5), 1, Addr::v4(9, 9, 9, 9), 0);
        let home = f.pick(&mut s, &c).unwrap();
        // Quiesce it: last_weight keeps its slots (update keeps the same table).
        f.set_weight(home, 0);
        s.update(&f.view());
        assert_eq!(f.pick(&mut s, &c), None);
        let fb = ctx(
            Addr::v4(203, 0, 113, 5),
            1,
            Addr::v4(9, 9, 9, 9),
            svc_flags::MH_FALLBACK,
        );
        let other = f.pick(&mut s, &fb).unwrap();
        assert_ne!(other, home);
        // Back to weight 1: home again.
        f.set_weight(home, 1);
        s.update(&f.view());
        assert_eq!(f.pick(&mut s, &c), Some(home));
        // mh-port: the source port changes the slot for some clients.
        let diff = (0..200u16)
            .filter(|p| {
                let a = ctx(
                    Addr::v4(203, 0, 113, 5),
                    *p,
                    Addr::v4(9, 9, 9, 9),
                    svc_flags::MH_PORT,
                );
                f.pick(&mut s, &a) != Some(home)
            })
            .count();
        assert!(diff > 50, "{diff}");
        // A client sticks without mh-port whatever its port.
        for p in 0..50u16 {
            let a = ctx(Addr::v4(203, 0, 113, 5), p, Addr::v4(9, 9, 9, 9), 0);
            assert_eq!(f.pick(&mut s, &a), Some(home));
        }
    }

    /// Two directors (or two workers) with the same servers, added in other orders and
    /// with other ids, their schedulers built with other seeds: the same server (by
    /// address and port) for every one of 10,000 flows, with the mh-port flag too.
    #[test]
    fn independent_schedulers_agree_whatever_the_list_order() {
        let weights = [(1, 1), (2, 3), (3, 1), (4, 2), (5, 1)];
        let a = Fixture::added(&weights);
        let mut reordered: Vec<(u32, u32)> = weights.to_vec();
        reordered.rotate_left(2);
        reordered.swap(0, 1);
        let mut b = Fixture::added(&reordered);
        // Other ids on the second director: only addresses and ports are shared.
        for d in &mut b.cfg {
            d.id = DestId(d.id.0 + 100);
        }
        assert_ne!(
            a.cfg.iter().map(|d| d.addr).collect::<Vec<_>>(),
            b.cfg.iter().map(|d| d.addr).collect::<Vec<_>>()
        );
        let mut sa = crate::sched::build(SchedKind::Mh, 1);
        let mut sb = crate::sched::build(SchedKind::Mh, 0xdead_beef);
        sa.update(&a.view());
        sb.update(&b.view());
        let vip = Addr::v4(9, 9, 9, 9);
        for flags in [0, svc_flags::MH_PORT] {
            let mut picked = std::collections::HashSet::new();
            for (n, c) in clients().enumerate() {
                let x = ctx(c, 1024 + n as u16, vip, flags);
                let pa = sa.schedule(&a.view(), &x).map(|i| a.cfg[i].addr);
                let pb = sb.schedule(&b.view(), &x).map(|i| b.cfg[i].addr);
                assert!(pa.is_some());
                assert_eq!(pa, pb, "flow {n}");
                picked.insert(pa);
            }
            assert_eq!(picked.len(), 5);
        }
    }

    /// The list order used to decide the table: with it sorted, a reversed list gives
    /// the same table (positions mapped to the same servers).
    #[test]
    fn table_depends_on_addresses_not_positions() {
        let a = Fixture::added(&[(1, 1), (2, 1), (3, 1)]);
        let mut b = Fixture::added(&[(3, 1), (2, 1), (1, 1)]);
        b.slots = (0..3).collect();
        let (mut sa, mut sb) = (Mh::default(), Mh::default());
        sa.update(&a.view());
        sb.update(&b.view());
        for i in 0..MH_TAB_SIZE as usize {
            let x = sa.slot(i).map(|p| a.cfg[p].addr);
            let y = sb.slot(i).map(|p| b.cfg[p].addr);
            assert_eq!(x, y, "slot {i}");
        }
    }
}
