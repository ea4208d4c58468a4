//! FULLNAT local-address (LIP) pools with per-core port slices.
//!
//! Every worker owns a disjoint slice of every LIP's port range: worker `w` of `n` owns
//! the ports `p` in the range with `p % n == w` (the low bits, as DPVS does: a clipped
//! range still gives every worker its share). A reply's destination port therefore names
//! its owner ([`crate::steer::owner_of_port`]), on any NIC. Each worker allocates from its own free
//! lists, so allocation takes no lock: O(1) (a pop from a ring of free ports), and
//! exhaustion refuses the new connection. Ports return when their session expires.
//!
//! A change of a pool's LIPs ([`LaddrPool::set_addrs`]) keeps the slices of the LIPs that
//! remain, with their ports in use. Where a slice's ports may also be held by sessions it
//! does not account (its LIP is in another service's pool too, or sessions from before
//! the slice existed could not be reserved in it: [`LaddrPool::check_held`]), allocation
//! also checks each port against the session table (the caller's `held` predicate): a
//! port whose tuple toward the real server a live session already has is never handed
//! out; it is counted as a *conflict* of its LIP (`ipvsadm -G`'s CONFLICTS) and the next
//! port is tried. A slice whose accounting is exact (the common case: a LIP in one pool)
//! skips that lookup, a cache miss per new session in a large table.
//!
//! Where the NIC spreads replies with RSS, [`LaddrPool::alloc`] takes a predicate that
//! prefers ports whose reply hash lands on the owner's own queue (no handoff needed);
//! it tries a bounded number of candidates and otherwise takes any port of the slice.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::steer::owner_of_port;

/// The default FULLNAT local port range (as DPVS): 1025..=65535.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (1025, 65535);

/// How many free ports [`LaddrPool::alloc`] inspects for one that satisfies the predicate.
pub const MAX_PREFERENCE_TRIES: usize = 16;

/// How many conflicting ports [`LaddrPool::alloc`] passes over on one LIP before it tries
/// the next LIP.
pub const MAX_CONFLICT_TRIES: usize = 4;

/// The Toeplitz hash NICs use for RSS, over `input` with a 40-byte key (the reference
/// algorithm of Microsoft's RSS specification; `rte_softrss` computes the same).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    // A 32-bit window over the key, advanced one bit per input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4usize..).zip(input.iter().take(36)) {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            let incoming = key.get(next).map_or(0, |k| (k >> (7 - bit)) & 1);
            window = (window << 1) | u32::from(incoming);
        }
    }
    hash
}

/// How a multi-queue port spreads received packets: the RSS key and the redirection
/// table (queue per entry). FULLNAT uses it to prefer local ports whose replies hash to
/// the owning worker's own queue, so no handoff is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSteer {
    /// The 40-byte Toeplitz key programmed into the port.
    pub key: [u8; 40],
    /// Redirection table: entry `hash % len` names the rx queue.
    pub reta: Vec<u16>,
}

impl RssSteer {
    /// The rx queue a reply `rip:rport -> lip:lport` (TCP/UDP over IPv4 or IPv6: the
    /// NIC hashes source address, destination address, source port, destination port)
    /// lands on. Addresses of different families (no such reply exists) land on queue 0.
    pub fn reply_queue(&self, rip: IpAddr, lip: IpAddr, rport: u16, lport: u16) -> u16 {
        if self.reta.is_empty() {
            return 0;
        }
        let mut input = [0u8; 36];
        let n = match (rip, lip) {
            (IpAddr::V4(r), IpAddr::V4(l)) => {
                input[..4].copy_from_slice(&r.octets());
                input[4..8].copy_from_slice(&l.octets());
                8
            }
            (IpAddr::V6(r), IpAddr::V6(l)) => {
                input[..16].copy_from_slice(&r.octets());
                input[16..32].copy_from_slice(&l.octets());
                32
            }
            _ => return 0,
        };
        input[n..n + 2].copy_from_slice(&rport.to_be_bytes());
        input[n + 2..n + 4].copy_from_slice(&lport.to_be_bytes());
        let h = toeplitz(&self.key, &input[..n + 4]);
        self.reta[h as usize % self.reta.len()]
    }
}

/// One worker's slice of one LIP's ports.
///
/// `free` holds the ports to hand out; `used` marks the ports in use (handed out or
/// reserved). A port is in at most one of them, except that [`LaddrPool::reserve`] leaves
/// the reserved port in `free` (removing it there would be a linear search): allocation
/// drops such a stale entry when it meets it.
#[derive(Debug, Clone)]
struct Slice {
    addr: IpAddr,
    free: VecDeque<u16>,
    /// One bit per port number (65536 bits).
    used: Box<[u64]>,
    in_use: u32,
    /// How many ports this slice owns (free or in use).
    owned: u32,
    conflicts: u64,
    /// Sessions this slice does not account may hold its ports: allocation checks each
    /// port against the session table ([`LaddrPool::check_held`]).
    check_held: bool,
}

impl Slice {
    fn new(addr: IpAddr, range: (u16, u16), worker: usize, workers: usize) -> Slice {
        let free: VecDeque<u16> = (range.0..=range.1)
            .filter(|&p| owner_of_port(p, workers) == worker)
            .collect();
        Slice {
            addr,
            owned: free.len() as u32,
            free,
            used: vec![0u64; 1 << 10].into_boxed_slice(),
            in_use: 0,
            conflicts: 0,
            check_held: false,
        }
    }

    fn is_used(&self, port: u16) -> bool {
        self.used[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }

    fn set_used(&mut self, port: u16, used: bool) {
        let w = &mut self.used[usize::from(port >> 6)];
        if used {
            *w |= 1 << (port & 63);
        } else {
            *w &= !(1 << (port & 63));
        }
    }

    /// The next free port (stale entries of reserved ports are dropped on the way).
    fn pop_free(&mut self) -> Option<u16> {
        while let Some(p) = self.free.pop_front() {
            if !self.is_used(p) {
                return Some(p);
            }
        }
        None
    }

    /// Takes `port` (free) into use.
    fn take(&mut self, port: u16) {
        self.set_used(port, true);
        self.in_use += 1;
    }
}

/// One worker's share of a service's LIP pool.
#[derive(Debug, Clone)]
pub struct LaddrPool {
    slices: Vec<Slice>,
    next: usize,
    range: (u16, u16),
    worker: usize,
    workers: usize,
    exhausted: u64,
}

/// A local address and port handed out by [`LaddrPool::alloc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalEndpoint {
    /// The LIP.
    pub addr: IpAddr,
    /// The local port.
    pub port: u16,
}

impl LaddrPool {
    /// The pool of worker `worker` (of `workers`) over `lips`, with ports from `range`
    /// (inclusive). Memory is allocated here, once; never per connection.
    pub fn new(lips: &[IpAddr], range: (u16, u16), worker: usize, workers: usize) -> LaddrPool {
        let workers = workers.max(1);
        let range = (range.0.min(range.1), range.0.max(range.1));
        let slices = lips
            .iter()
            .map(|&addr| Slice::new(addr, range, worker, workers))
            .collect();
        LaddrPool {
            slices,
            next: 0,
            range,
            worker,
            workers,
            exhausted: 0,
        }
    }

    /// Changes the pool's LIPs to `lips` (a configuration change): the slice of a LIP that
    /// remains is kept as it is (its free list, its ports in use, its conflict count), a new
    /// LIP gets a full slice, and the slice of a LIP no longer listed is dropped (its
    /// sessions run on; their ports are returned to no pool). Returns the LIPs that are new.
    pub fn set_addrs(&mut self, lips: &[IpAddr]) -> Vec<IpAddr> {
        let mut old = std::mem::take(&mut self.slices);
        let mut added = Vec::new();
        for &addr in lips {
            match old.iter().position(|s| s.addr == addr) {
                Some(i) => self.slices.push(old.swap_remove(i)),
                None => {
                    let s = Slice::new(addr, self.range, self.worker, self.workers);
                    self.slices.push(s);
                    added.push(addr);
                }
            }
        }
        if self.next >= self.slices.len() {
            self.next = 0;
        }
        added
    }

    /// The worker this pool belongs to.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The LIPs of the pool.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.slices.iter().map(|s| s.addr)
    }

    /// Whether `addr` is one of the pool's LIPs.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.slices.iter().any(|s| s.addr == addr)
    }

    /// From now on, allocation from `addr`'s slice checks every port with the `held`
    /// predicate: sessions this pool does not account may hold its ports (the LIP is in
    /// another pool as well, or live sessions on it could not be reserved in its slice).
    /// Never undone while the slice lives: such sessions may outlive the reason.
    pub fn check_held(&mut self, addr: IpAddr) {
        for s in self.slices.iter_mut().filter(|s| s.addr == addr) {
            s.check_held = true;
        }
    }

    /// Whether allocation from `addr`'s slice checks ports against the session table
    /// ([`LaddrPool::check_held`]).
    pub fn checks_held(&self, addr: IpAddr) -> bool {
        self.slices.iter().any(|s| s.addr == addr && s.check_held)
    }

    /// Allocates a local endpoint: LIPs are taken round-robin; within a LIP, the first of
    /// up to [`MAX_PREFERENCE_TRIES`] free ports for which `prefer(lip, port)` holds, else
    /// the first free port. On a slice marked by [`LaddrPool::check_held`], a port for
    /// which `held(lip, port)` holds (a live session not accounted in this pool uses it
    /// toward the same real server) is a *conflict*: it is counted on its LIP, goes back
    /// to the end of the free list, and the next port is tried (at most
    /// [`MAX_CONFLICT_TRIES`] per LIP). `None` when no LIP has a port to give (counted as
    /// exhaustion).
    pub fn alloc(
        &mut self,
        mut prefer: impl FnMut(IpAddr, u16) -> bool,
        mut held: impl FnMut(IpAddr, u16) -> bool,
    ) -> Option<LocalEndpoint> {
        let n = self.slices.len();
        // Round robin from `next`, stepped without a division (a new session's hot path).
        let mut i = self.next;
        for _ in 0..n {
            if i >= n {
                i = 0;
            }
            let at = i;
            i += 1;
            let s = &mut self.slices[at];
            for _ in 0..MAX_CONFLICT_TRIES.min(s.free.len()) {
                // Inspect up to MAX_PREFERENCE_TRIES ports from the front; the ones passed
                // over go to the back, so the front never fills up with unpreferred ports.
                let tries = s.free.len().min(MAX_PREFERENCE_TRIES);
                let mut port = None;
                for _ in 0..tries {
                    let Some(p) = s.pop_free() else { break };
                    if prefer(s.addr, p) {
                        port = Some(p);
                        break;
                    }
                    s.free.push_back(p);
                }
                let Some(port) = port.or_else(|| s.pop_free()) else {
                    break;
                };
                if s.check_held && held(s.addr, port) {
                    s.conflicts += 1;
                    s.free.push_back(port);
                    continue;
                }
                s.take(port);
                self.next = i;
                return Some(LocalEndpoint { addr: s.addr, port });
            }
        }
        self.exhausted += 1;
        None
    }

    /// Reserves a specific endpoint (a session installed by sync, or one that outlived a
    /// change of the pool's LIPs); `false` if it is not a port of this worker's slice or is
    /// already in use.
    pub fn reserve(&mut self, ep: LocalEndpoint) -> bool {
        let (lo, hi) = self.range;
        if ep.port < lo || ep.port > hi || owner_of_port(ep.port, self.workers) != self.worker {
            return false;
        }
        let Some(s) = self.slices.iter_mut().find(|s| s.addr == ep.addr) else {
            return false;
        };
        if s.is_used(ep.port) {
            return false;
        }
        s.take(ep.port);
        true
    }

    /// Returns a port to its slice (when its session expires). A port this slice does not
    /// have in use (another worker's, another pool's, or one of a LIP that left the pool)
    /// is ignored.
    pub fn release(&mut self, ep: LocalEndpoint) {
        if let Some(s) = self.slices.iter_mut().find(|s| s.addr == ep.addr) {
            if s.is_used(ep.port) {
                s.set_used(ep.port, false);
                s.in_use -= 1;
                s.free.push_back(ep.port);
            }
        }
    }

    /// Ports in use over all LIPs.
    pub fn in_use(&self) -> u32 {
        self.slices.iter().map(|s| s.in_use).sum()
    }

    /// Ports in use on one LIP.
    pub fn in_use_of(&self, addr: IpAddr) -> u32 {
        self.slices
            .iter()
            .filter(|s| s.addr == addr)
            .map(|s| s.in_use)
            .sum()
    }

    /// Conflicts counted on one LIP (see [`LaddrPool::alloc`]).
    pub fn conflicts_of(&self, addr: IpAddr) -> u64 {
        self.slices
            .iter()
            .filter(|s| s.addr == addr)
            .map(|s| s.conflicts)
            .sum()
    }

    /// Free ports over all LIPs.
    pub fn free(&self) -> usize {
        self.slices
            .iter()
            .map(|s| (s.owned - s.in_use) as usize)
            .sum()
    }

    /// How many allocations were refused because every slice was exhausted.
    pub fn exhausted(&self) -> u64 {
        self.exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LIP1: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 11));
    const LIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 12));

    #[test]
    fn workers_own_disjoint_slices_that_cover_the_range() {
        let pools: Vec<LaddrPool> = (0..3)
            .map(|w| LaddrPool::new(&[LIP1], (1025, 65535), w, 3))
            .collect();
        let total: usize = pools.iter().map(LaddrPool::free).sum();
        assert_eq!(total, 65535 - 1025 + 1);
        for (w, p) in pools.iter().enumerate() {
            for &port in &p.slices[0].free {
                assert_eq!(owner_of_port(port, 3), w);
            }
        }
    }

    #[test]
    fn reply_port_names_the_owner() {
        let mut pool = LaddrPool::new(&[LIP1, LIP2], (2000, 2999), 1, 4);
        for _ in 0..100 {
            let ep = pool.alloc(|_, _| true, |_, _| false).expect("free port");
            assert_eq!(owner_of_port(ep.port, 4), 1);
        }
    }

    #[test]
    fn lips_are_used_round_robin_and_exhaustion_refuses() {
        // 8 ports, 2 workers: this worker owns 4 per LIP.
        let mut pool = LaddrPool::new(&[LIP1, LIP2], (100, 107), 0, 2);
        let got: Vec<LocalEndpoint> = (0..8)
            .map(|_| pool.alloc(|_, _| true, |_, _| false).expect("port"))
            .collect();
        assert_eq!(got[0].addr, LIP1);
        assert_eq!(got[1].addr, LIP2);
        assert_eq!(got[2].addr, LIP1);
        let mut ports: Vec<(IpAddr, u16)> = got.iter().map(|e| (e.addr, e.port)).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 8, "no endpoint handed out twice");
        assert_eq!(pool.alloc(|_, _| true, |_, _| false), None);
        assert_eq!(pool.exhausted(), 1);
        assert_eq!(pool.in_use(), 8);
        pool.release(got[3]);
        assert_eq!(pool.alloc(|_, _| true, |_, _| false), Some(got[3]));
    }

    #[test]
    fn preference_picks_a_matching_port_within_the_bound() {
        let mut pool = LaddrPool::new(&[LIP1], (1025, 65535), 0, 1);
        let ep = pool.alloc(|_, p| p % 7 == 3, |_, _| false).expect("port");
        assert_eq!(ep.port % 7, 3);
        // Nothing matches: any port is taken rather than failing.
        let ep2 = pool.alloc(|_, _| false, |_, _| false).expect("port");
        assert_ne!(ep.port, ep2.port);
    }

    /// The verification vectors of Microsoft's RSS specification (IPv4, with ports).
    #[test]
    fn toeplitz_matches_the_published_vectors() {
        const KEY: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let v = |src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16| {
            let mut i = Vec::new();
            i.extend_from_slice(&src);
            i.extend_from_slice(&dst);
            i.extend_from_slice(&sp.to_be_bytes());
            i.extend_from_slice(&dp.to_be_bytes());
            toeplitz(&KEY, &i)
        };
        assert_eq!(
            v([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766),
            0x51cc_c178
        );
        assert_eq!(
            v([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739),
            0xc626_b0ea
        );
        assert_eq!(
            v([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024),
            0x5c2b_394a
        );
        // Address-only (2-tuple) vector.
        let mut i = Vec::new();
        i.extend_from_slice(&[66, 9, 149, 187]);
        i.extend_from_slice(&[161, 142, 100, 80]);
        assert_eq!(toeplitz(&KEY, &i), 0x323e_8fc2);
    }

    #[test]
    fn rss_preference_picks_ports_whose_replies_reach_the_owner_queue() {
        // The key rvs programs into multi-queue ports (Microsoft's reference key).
        const KEY: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let steer = RssSteer {
            key: KEY,
            reta: (0..128).map(|i| i % 2).collect(),
        };
        let rip = IpAddr::V4(Ipv4Addr::new(10, 20, 0, 11));
        for w in 0..2usize {
            let mut pool = LaddrPool::new(&[LIP1], (1025, 65535), w, 2);
            for _ in 0..50 {
                let ep = pool
                    .alloc(
                        |lip, lport| usize::from(steer.reply_queue(rip, lip, 80, lport)) == w,
                        |_, _| false,
                    )
                    .expect("port");
                assert_eq!(usize::from(steer.reply_queue(rip, ep.addr, 80, ep.port)), w);
                assert_eq!(owner_of_port(ep.port, 2), w);
            }
        }
    }

    #[test]
    fn reserve_takes_a_port_out_of_the_free_list() {
        let mut pool = LaddrPool::new(&[LIP1], (5000, 5009), 0, 1);
        let ep = LocalEndpoint {
            addr: LIP1,
            port: 5005,
        };
        assert!(pool.reserve(ep));
        assert!(!pool.reserve(ep), "already taken");
        for _ in 0..9 {
            assert_ne!(
                pool.alloc(|_, _| true, |_, _| false).map(|e| e.port),
                Some(5005)
            );
        }
        assert_eq!(pool.alloc(|_, _| true, |_, _| false), None);
        pool.release(ep);
        assert_eq!(pool.alloc(|_, _| true, |_, _| false), Some(ep));
    }

    #[test]
    fn a_pool_change_keeps_the_ports_in_use_of_the_lips_that_remain() {
        // 16 ports, one worker.
        let mut pool = LaddrPool::new(&[LIP1, LIP2], (100, 115), 0, 1);
        let taken: Vec<LocalEndpoint> = (0..6)
            .map(|_| pool.alloc(|_, _| true, |_, _| false).expect("port"))
            .collect();
        // LIP2 leaves, LIP3 comes: LIP1's three ports stay in use.
        let lip3 = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 13));
        assert_eq!(pool.set_addrs(&[LIP1, lip3]), vec![lip3]);
        assert_eq!(pool.addrs().collect::<Vec<_>>(), vec![LIP1, lip3]);
        assert_eq!(pool.in_use_of(LIP1), 3);
        assert_eq!(pool.in_use_of(lip3), 0);
        assert_eq!(pool.free(), 13 + 16);
        // Everything LIP1 still has to give: never a port of a live session.
        let mut more = Vec::new();
        while let Some(ep) = pool.alloc(|_, _| true, |_, _| false) {
            more.push(ep);
        }
        assert_eq!(more.len(), 13 + 16);
        for ep in taken.iter().filter(|e| e.addr == LIP1) {
            assert!(!more.contains(ep), "{ep:?} handed out again while in use");
        }
        // A session of the LIP that left expires: its port goes nowhere.
        let gone = *taken.iter().find(|e| e.addr == LIP2).expect("LIP2 port");
        pool.release(gone);
        assert_eq!(pool.free(), 0);
    }

    #[test]
    fn a_port_held_by_a_live_session_is_passed_over_and_counted() {
        let mut pool = LaddrPool::new(&[LIP1], (5000, 5009), 0, 1);
        pool.check_held(LIP1);
        assert!(pool.checks_held(LIP1));
        let held = |_: IpAddr, p: u16| p == 5000 || p == 5001;
        let ep = pool.alloc(|_, _| true, held).expect("port");
        assert_eq!(ep.port, 5002);
        assert_eq!(pool.conflicts_of(LIP1), 2);
        assert_eq!(pool.in_use_of(LIP1), 1);
        // The passed-over ports stay free: once their holder is gone they are handed out.
        let rest: Vec<u16> = (0..9)
            .map(|_| pool.alloc(|_, _| true, |_, _| false).expect("port").port)
            .collect();
        assert!(rest.contains(&5000) && rest.contains(&5001), "{rest:?}");
        // Every port held: nothing is handed out.
        pool.release(ep);
        assert_eq!(pool.alloc(|_, _| true, |_, _| true), None);
        assert_eq!(pool.exhausted(), 1);
    }

    #[test]
    fn a_slice_that_accounts_every_holder_never_asks_the_session_table() {
        let mut pool = LaddrPool::new(&[LIP1, LIP2], (5000, 5009), 0, 1);
        pool.check_held(LIP2);
        let asked = std::cell::Cell::new(Vec::new());
        let mut held = |lip: IpAddr, p: u16| {
            let mut v = asked.take();
            v.push(lip);
            asked.set(v);
            p == 5000
        };
        let a = pool.alloc(|_, _| true, &mut held).expect("port");
        let b = pool.alloc(|_, _| true, &mut held).expect("port");
        // LIP1's first port is handed out unasked; LIP2's is asked about and passed over.
        assert_eq!((a.addr, a.port), (LIP1, 5000));
        assert_eq!((b.addr, b.port), (LIP2, 5001));
        assert_eq!(asked.take(), vec![LIP2, LIP2]);
        assert_eq!((pool.conflicts_of(LIP1), pool.conflicts_of(LIP2)), (0, 1));
        assert!(!pool.checks_held(LIP1));
    }

    #[test]
    fn a_port_is_released_once_and_only_when_in_use() {
        let mut pool = LaddrPool::new(&[LIP1], (5000, 5003), 0, 1);
        let ep = pool.alloc(|_, _| true, |_, _| false).expect("port");
        pool.release(ep);
        pool.release(ep);
        pool.release(LocalEndpoint {
            addr: LIP1,
            port: 5003,
        });
        assert_eq!(pool.free(), 4);
        let all: Vec<u16> = (0..4)
            .map(|_| pool.alloc(|_, _| true, |_, _| false).expect("port").port)
            .collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "no port twice: {all:?}");
        assert_eq!(pool.alloc(|_, _| true, |_, _| false), None);
    }
}
