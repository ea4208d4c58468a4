//! The per-worker fragment table: how the fragments of one datagram are forwarded
//! without reassembly.
//!
//! Only a datagram's first fragment carries the L4 header (the ports): it decides (finds
//! or opens the session, or is refused) and its verdict (`V`, chosen by the caller)
//! is kept under the datagram's key ([`FragKey`]: source, destination, protocol,
//! identification). Later fragments take that verdict; fragments that arrive before the
//! first are held (at most [`HELD_PER_DATAGRAM`] per datagram, `max_held` in all) and
//! handed back with the verdict when the first one comes ([`FragTable::decided`]).
//!
//! What is refused ([`FragDrop`]): a fragment the table has no room for (datagrams,
//! held fragments, tracked ranges), a fragment partly overlapping what was seen (the whole
//! datagram is refused from then on: RFC 5722's rule, and RFC 1858's defence against
//! overlapping rewrites of the TCP header), a duplicate (wholly within what was seen:
//! skipped, as RFC 5722's errata skips duplicates), and tiny fragments
//! (RFC 1858): a first fragment too short for its L4 header ([`tiny_first`]), a TCP
//! fragment at offset 8. A datagram not complete within `timeout_ms` of the first of
//! its fragments arriving here is forgotten ([`FragTable::age`], from `Core::tick`); fragments
//! still held are dropped as timed out.
//!
//! Family-generic: addresses are [`IpAddr`] and the identification 32 bits (IPv6's).
//! Nothing allocates after [`FragTable::new`]: the map's capacity is reserved, held
//! packets and ranges live in fixed arrays of the entry.

use core::net::IpAddr;

use hashbrown::HashMap;

/// Fragments held per datagram before its first fragment arrives.
pub const HELD_PER_DATAGRAM: usize = 16;
/// Disjoint byte ranges tracked per datagram (adjacent fragments merge into one range).
pub const RANGES: usize = 16;

/// The key of a datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// The source address.
    pub src: IpAddr,
    /// The destination address.
    pub dst: IpAddr,
    /// The protocol (IPv4) or the upper-layer next header (IPv6).
    pub proto: u8,
    /// The identification (IPv4's 16 bits widened, IPv6's 32).
    pub ident: u32,
}

/// The bounds of a fragment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams tracked at once.
    pub max_datagrams: usize,
    /// Fragments held (waiting for their first fragment) at once, over all datagrams.
    pub max_held: usize,
    /// How long a datagram is tracked after the first of its fragments arrived here.
    pub timeout_ms: u64,
}

impl Default for FragConfig {
    fn default() -> FragConfig {
        FragConfig {
            max_datagrams: 4096,
            max_held: 4096,
            timeout_ms: 3000,
        }
    }
}

/// Why the table refused a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragDrop {
    /// No room: too many datagrams, held fragments or ranges.
    TableFull,
    /// It overlaps a fragment seen before, or its datagram was refused for an overlap.
    Overlap,
    /// A duplicate: wholly within what was seen of its datagram.
    Duplicate,
    /// A tiny fragment (RFC 1858).
    Tiny,
}

/// The table's counters (per worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Fragments held until their first fragment arrived.
    pub held: u64,
    /// Held fragments dropped when their datagram timed out.
    pub timed_out: u64,
    /// Datagrams forgotten by the timeout before they were complete.
    pub expired: u64,
}

/// What to do with a fragment ([`FragTable::admit`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<P, V> {
    /// The first fragment, no verdict yet: decide, then call [`FragTable::decided`].
    First(P),
    /// The datagram's verdict is known: act on it.
    Known(P, V),
    /// Held until the first fragment's verdict.
    Held,
    /// Refused.
    Drop(P, FragDrop),
}

#[derive(Debug)]
struct Entry<P, V> {
    since_ms: u64,
    verdict: Option<V>,
    /// Refused for an overlap: every later fragment is dropped.
    poisoned: bool,
    /// The datagram's length, known once its last fragment (no MF) was seen.
    total: Option<u32>,
    /// Disjoint, sorted byte ranges `[start, end)` seen.
    ranges: [(u32, u32); RANGES],
    n_ranges: usize,
    held: [Option<P>; HELD_PER_DATAGRAM],
    n_held: usize,
}

impl<P, V> Entry<P, V> {
    fn new(now_ms: u64) -> Self {
        Entry {
            since_ms: now_ms,
            verdict: None,
            poisoned: false,
            total: None,
            ranges: [(0, 0); RANGES],
            n_ranges: 0,
            held: [const { None }; HELD_PER_DATAGRAM],
            n_held: 0,
        }
    }

    /// Records `[start, end)`: `Err` for an overlap, a duplicate or no room.
    fn add_range(&mut self, start: u32, end: u32) -> Result<(), FragDrop> {
        let r = &mut self.ranges[..self.n_ranges];
        // Within what was seen (merged ranges: an exact duplicate, or a piece of it):
        // a duplicate, skipped; reaching past it: an overlap.
        if r.iter().any(|&(s, e)| s <= start && end <= e) {
            return Err(FragDrop::Duplicate);
        }
        if r.iter().any(|&(s, e)| start < e && s < end) {
            return Err(FragDrop::Overlap);
        }
        // Merge with the range ending at `start` and/or the one starting at `end`.
        let before = r.iter().position(|&(_, e)| e == start);
        let after = r.iter().position(|&(s, _)| s == end);
        match (before, after) {
            (Some(b), Some(a)) => {
                r[b].1 = r[a].1;
                self.remove_range(a);
            }
            (Some(b), None) => r[b].1 = end,
            (None, Some(a)) => r[a].0 = start,
            (None, None) => {
                if self.n_ranges == RANGES {
                    return Err(FragDrop::TableFull);
                }
                self.ranges[self.n_ranges] = (start, end);
                self.n_ranges += 1;
            }
        }
        Ok(())
    }

    fn remove_range(&mut self, i: usize) {
        self.ranges.copy_within(i + 1..self.n_ranges, i);
        self.n_ranges -= 1;
    }

    /// Whether every byte of the datagram has been seen.
    fn complete(&self) -> bool {
        self.total
            .is_some_and(|t| self.n_ranges == 1 && self.ranges[0] == (0, t))
    }
}

/// Whether a first fragment of protocol `proto` whose data (from the L4 header on) is
/// `l4_len` bytes is too short to hold what the director reads and rewrites there
/// (RFC 1858): TCP's whole header (at least 20 bytes, its data offset included when
/// present), UDP's 8, SCTP's 12.
pub fn tiny_first(proto: u8, l4: &[u8]) -> bool {
    match proto {
        6 => l4.len() < 20 || usize::from(l4[12] >> 4) * 4 > l4.len(),
        17 => l4.len() < 8,
        132 => l4.len() < 12,
        _ => false,
    }
}

/// Whether a fragment at byte `offset` of protocol `proto` is tiny by RFC 1858's second
/// rule: a TCP fragment at offset 8 (fragment offset field 1) can only be an attempt to
/// rewrite the TCP flags of the first.
pub fn tiny_offset(proto: u8, offset: u16) -> bool {
    proto == 6 && offset == 8
}

/// A worker's fragment table: datagrams by [`FragKey`], held packets `P`, verdicts `V`.
#[derive(Debug)]
pub struct FragTable<P, V> {
    cfg: FragConfig,
    map: HashMap<FragKey, Entry<P, V>>,
    held: usize,
    counters: FragCounters,
}

impl<P, V: Copy> FragTable<P, V> {
    /// An empty table with room for `cfg`'s bounds reserved.
    pub fn new(cfg: FragConfig) -> Self {
        FragTable {
            cfg,
            // Twice the bound: removals leave tombstones, and a table at most half full
            // rehashes them away in place rather than growing (no allocation, ever).
            map: HashMap::with_capacity(cfg.max_datagrams.saturating_mul(2)),
            held: 0,
            counters: FragCounters::default(),
        }
    }

    /// The bounds.
    pub fn config(&self) -> FragConfig {
        self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> FragCounters {
        self.counters
    }

    /// Datagrams tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no datagram is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Fragments held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Admits fragment `pkt` of datagram `key`: its data is `[offset, offset + len)`,
    /// `more` its MF flag. Tiny fragments are the caller's check ([`tiny_first`],
    /// [`tiny_offset`]), before this. Fragments held for a datagram this one turns out
    /// to overlap are dropped with it: they go to `dropped`.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        key: FragKey,
        offset: u16,
        len: u16,
        more: bool,
        pkt: P,
        now_ms: u64,
        dropped: impl FnMut(P),
    ) -> Admit<P, V> {
        if self.map.len() >= self.cfg.max_datagrams && !self.map.contains_key(&key) {
            return Admit::Drop(pkt, FragDrop::TableFull);
        }
        let e = self.map.entry(key).or_insert_with(|| Entry::new(now_ms));
        if e.poisoned {
            return Admit::Drop(pkt, FragDrop::Overlap);
        }
        let (start, end) = (u32::from(offset), u32::from(offset) + u32::from(len));
        // A last fragment fixes the length: nothing may lie beyond it, and a second last
        // fragment must agree.
        let beyond = match e.total {
            Some(t) => end > t || (!more && end != t),
            None => !more && e.ranges[..e.n_ranges].iter().any(|&(_, e)| e > end),
        };
        let res = if beyond {
            Err(FragDrop::Overlap)
        } else {
            e.add_range(start, end)
        };
        match res {
            Ok(()) => {}
            Err(FragDrop::Overlap) => {
                e.poisoned = true;
                let n = Self::free_held(e, dropped);
                self.held -= n;
                return Admit::Drop(pkt, FragDrop::Overlap);
            }
            Err(r) => {
                if e.n_ranges == 0 {
                    self.map.remove(&key);
                }
                return Admit::Drop(pkt, r);
            }
        }
        if !more {
            e.total = Some(end);
        }
        if let Some(v) = e.verdict {
            if e.complete() {
                self.map.remove(&key);
            }
            return Admit::Known(pkt, v);
        }
        if offset == 0 {
            return Admit::First(pkt);
        }
        if e.n_held == HELD_PER_DATAGRAM || self.held >= self.cfg.max_held {
            // Not held: its range is forgotten again so that a retransmission may be.
            if let Some(i) = e.ranges[..e.n_ranges]
                .iter()
                .position(|r| r.0 <= start && end <= r.1)
            {
                let (s, en) = e.ranges[i];
                e.remove_range(i);
                if s < start {
                    let _ = e.add_range(s, start);
                }
                if end < en {
                    let _ = e.add_range(end, en);
                }
            }
            if e.n_ranges == 0 {
                self.map.remove(&key);
            }
            return Admit::Drop(pkt, FragDrop::TableFull);
        }
        e.held[e.n_held] = Some(pkt);
        e.n_held += 1;
        self.held += 1;
        self.counters.held += 1;
        Admit::Held
    }

    /// The first fragment of datagram `key` was decided: `verdict` applies to every
    /// fragment from now on; the fragments held for it go to `release`, in the order they
    /// arrived.
    pub fn decided(&mut self, key: &FragKey, verdict: V, mut release: impl FnMut(P, V)) {
        let Some(e) = self.map.get_mut(key) else {
            return;
        };
        e.verdict = Some(verdict);
        let n = e.n_held;
        for slot in &mut e.held[..n] {
            if let Some(p) = slot.take() {
                release(p, verdict);
            }
        }
        e.n_held = 0;
        self.held -= n;
        if e.complete() {
            self.map.remove(key);
        }
    }

    /// Forgets datagrams older than the timeout; their held fragments go to `drop_held`.
    /// Returns the number of fragments dropped.
    pub fn age(&mut self, now_ms: u64, mut drop_held: impl FnMut(P)) -> u64 {
        if self.map.is_empty() {
            return 0;
        }
        let timeout = self.cfg.timeout_ms;
        let (mut dropped, mut expired) = (0u64, 0u64);
        self.map.retain(|_, e| {
            if now_ms.saturating_sub(e.since_ms) < timeout {
                return true;
            }
            expired += 1;
            for slot in &mut e.held[..e.n_held] {
                if let Some(p) = slot.take() {
                    dropped += 1;
                    drop_held(p);
                }
            }
            false
        });
        self.held -= dropped as usize;
        self.counters.timed_out += dropped;
        self.counters.expired += expired;
        dropped
    }

    /// Hands an entry's held packets to `dropped`; returns how many.
    fn free_held(e: &mut Entry<P, V>, mut dropped: impl FnMut(P)) -> usize {
        let n = e.n_held;
        for slot in &mut e.held[..n] {
            if let Some(p) = slot.take() {
                dropped(p);
            }
        }
        e.n_held = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(ident: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)),
            proto: 17,
            ident,
        }
    }

    fn drop(_: u32) {}

    fn table() -> FragTable<u32, char> {
        FragTable::new(FragConfig {
            max_datagrams: 4,
            max_held: 6,
            timeout_ms: 1000,
        })
    }

    #[test]
    fn in_order_first_decides_the_rest() {
        let mut t = table();
        assert_eq!(t.admit(key(1), 0, 1480, true, 1, 0, drop), Admit::First(1));
        t.decided(&key(1), 'a', |_, _| panic!("nothing held"));
        assert_eq!(
            t.admit(key(1), 1480, 1480, true, 2, 0, drop),
            Admit::Known(2, 'a')
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.admit(key(1), 2960, 1048, false, 3, 0, drop),
            Admit::Known(3, 'a')
        );
        // Complete: forgotten.
        assert!(t.is_empty());
    }

    #[test]
    fn reverse_order_is_held_and_released_in_arrival_order() {
        let mut t = table();
        assert_eq!(t.admit(key(1), 2960, 1048, false, 3, 0, drop), Admit::Held);
        assert_eq!(t.admit(key(1), 1480, 1480, true, 2, 0, drop), Admit::Held);
        assert_eq!(t.held(), 2);
        assert_eq!(t.admit(key(1), 0, 1480, true, 1, 0, drop), Admit::First(1));
        let mut out = Vec::new();
        t.decided(&key(1), 'z', |p, v| out.push((p, v)));
        assert_eq!(out, [(3, 'z'), (2, 'z')]);
        assert_eq!(t.held(), 0);
        assert!(t.is_empty());
        assert_eq!(t.counters().held, 2);
    }

    #[test]
    fn duplicates_and_overlaps() {
        let mut t = table();
        assert_eq!(t.admit(key(1), 0, 16, true, 1, 0, drop), Admit::First(1));
        t.decided(&key(1), 'a', |_, _| {});
        assert_eq!(
            t.admit(key(1), 0, 16, true, 9, 0, drop),
            Admit::Drop(9, FragDrop::Duplicate)
        );
        // Overlapping the first: the datagram is refused from now on.
        assert_eq!(
            t.admit(key(1), 8, 16, true, 2, 0, drop),
            Admit::Drop(2, FragDrop::Overlap)
        );
        assert_eq!(
            t.admit(key(1), 16, 8, false, 3, 0, drop),
            Admit::Drop(3, FragDrop::Overlap)
        );
        // A held fragment is dropped with its datagram.
        assert_eq!(t.admit(key(2), 32, 8, false, 4, 0, drop), Admit::Held);
        let mut freed = Vec::new();
        assert_eq!(
            t.admit(key(2), 24, 16, true, 5, 0, |p| freed.push(p)),
            Admit::Drop(5, FragDrop::Overlap)
        );
        assert_eq!(freed, [4], "the held fragment goes with its datagram");
        assert_eq!(t.held(), 0);
        // Data past the last fragment's end, or two different ends: an overlap.
        assert_eq!(t.admit(key(3), 16, 8, false, 6, 0, drop), Admit::Held);
        assert_eq!(
            t.admit(key(3), 24, 8, true, 7, 0, drop),
            Admit::Drop(7, FragDrop::Overlap)
        );
    }

    #[test]
    fn bounds() {
        let mut t = table();
        for id in 0..4 {
            assert_eq!(t.admit(key(id), 8, 8, true, id, 0, drop), Admit::Held);
        }
        // A fifth datagram: no room.
        assert_eq!(
            t.admit(key(9), 8, 8, true, 9, 0, drop),
            Admit::Drop(9, FragDrop::TableFull)
        );
        // Held in all: 6.
        assert_eq!(t.admit(key(0), 16, 8, true, 10, 0, drop), Admit::Held);
        assert_eq!(t.admit(key(0), 24, 8, true, 11, 0, drop), Admit::Held);
        assert_eq!(
            t.admit(key(0), 32, 8, true, 12, 0, drop),
            Admit::Drop(12, FragDrop::TableFull)
        );
        // The refused fragment's range was forgotten: it may come again later.
        assert_eq!(t.held(), 6);
        let mut out = Vec::new();
        assert_eq!(t.admit(key(0), 0, 8, true, 13, 0, drop), Admit::First(13));
        t.decided(&key(0), 'x', |p, _| out.push(p));
        assert_eq!(out, [0, 10, 11]);
        assert_eq!(
            t.admit(key(0), 32, 8, false, 12, 0, drop),
            Admit::Known(12, 'x')
        );
        // Per datagram: at most HELD_PER_DATAGRAM.
        let mut t: FragTable<u32, char> = FragTable::new(FragConfig::default());
        for i in 0..HELD_PER_DATAGRAM as u16 {
            assert_eq!(
                t.admit(key(1), 8 + 16 * i, 8, true, 0, 0, drop),
                Admit::Held
            );
        }
        assert_eq!(
            t.admit(key(1), 4000, 8, true, 1, 0, drop),
            Admit::Drop(1, FragDrop::TableFull)
        );
    }

    #[test]
    fn timeout_drops_held_fragments() {
        let mut t = table();
        assert_eq!(t.admit(key(1), 8, 8, true, 1, 100, drop), Admit::Held);
        assert_eq!(t.admit(key(1), 16, 8, true, 2, 100, drop), Admit::Held);
        assert_eq!(t.age(1099, |_| panic!("too early")), 0);
        let mut dropped = Vec::new();
        assert_eq!(t.age(1100, |p| dropped.push(p)), 2);
        assert_eq!(dropped, [1, 2]);
        assert!(t.is_empty());
        assert_eq!(t.held(), 0);
        assert_eq!(t.counters().timed_out, 2);
        assert_eq!(t.counters().expired, 1);
        // A first fragment after the timeout starts afresh.
        assert_eq!(t.admit(key(1), 0, 8, true, 3, 2000, drop), Admit::First(3));
    }

    #[test]
    fn tiny() {
        let mut tcp = [0u8; 20];
        tcp[12] = 0x50;
        assert!(!tiny_first(6, &tcp));
        assert!(tiny_first(6, &tcp[..19]));
        tcp[12] = 0x60; // 24-byte header in 20 bytes
        assert!(tiny_first(6, &tcp));
        assert!(tiny_first(17, &[0; 7]));
        assert!(!tiny_first(17, &[0; 8]));
        assert!(tiny_offset(6, 8));
        assert!(!tiny_offset(17, 8) && !tiny_offset(6, 16));
    }
}
