//! Access control lists: which clients may open a session (`rvsadm --add-blklst` /
//! `--add-whtlst`, `[acl]` and a service's `deny`/`allow` in the configuration).
//!
//! An [`Acl`] is an immutable list of prefixes, each with an action ([`AclAction::Allow`]
//! or [`AclAction::Deny`]), built on the control thread and shared by the workers behind
//! an `Arc` (in [`crate::pipeline::NetConfig::acl`] for the global list, in
//! [`crate::service::Service::acl`] for a service's).
//!
//! # Semantics
//! - The **longest matching prefix decides**: `10.0.0.0/8 deny` with `10.1.0.0/16 allow`
//!   denies 10.2.3.4 and allows 10.1.2.3; the reverse nesting works the same way.
//! - A client no prefix matches is **allowed**, unless the list has at least one allow
//!   entry: then it is an allow-list and an unmatched client is **denied** (whatever its
//!   address family: an allow-list names every client it lets in).
//! - The same prefix both allowed and denied is denied.
//! - A prefix's host bits (beyond its length) are ignored (`10.1.2.3/8` is `10.0.0.0/8`);
//!   the control plane refuses them before they get here.
//! - IPv4 and IPv6 prefixes live in the same list and never match the other family.
//!
//! # Cost
//! Building flattens the prefixes of each family into sorted, disjoint ranges that cover
//! the whole address space, each with its verdict (adjacent ranges of the same verdict
//! merged): at most `2n + 1` ranges for `n` prefixes. A lookup is a branch-free binary
//! search over the range starts, then one load of the verdict. For IPv4 a first-level
//! index by the address's top 12 bits (16 KB) narrows the search to the ranges of that
//! /12 block: for 10,000 random prefixes (at most 20,001 ranges, 80 KB) a few steps
//! instead of 15. No allocation, no lock; an empty list costs one compare
//! ([`Acl::is_empty`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a prefix of an ACL does to the clients it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclAction {
    /// The client may open sessions (`--add-whtlst`, `allow`).
    Allow,
    /// The client may not (`--add-blklst`, `deny`).
    Deny,
}

/// One entry of an ACL: a prefix and its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// The prefix's address (host bits are ignored).
    pub addr: IpAddr,
    /// Its length, 0..=32 (IPv4) or 0..=128 (IPv6); longer is clamped to the family's.
    pub len: u8,
    /// Allow or deny.
    pub action: AclAction,
}

impl AclRule {
    /// `addr/len` with `action`.
    pub fn new(addr: IpAddr, len: u8, action: AclAction) -> AclRule {
        AclRule { addr, len, action }
    }
}

/// The flattened ranges of one address family: `starts[i]` is the first address of range
/// `i` (`starts[0]` is 0), which runs up to `starts[i + 1] - 1` (the last to the end of
/// the space); `deny[i]` is its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranges<T> {
    starts: Box<[T]>,
    deny: Box<[bool]>,
}

impl<T: Copy + Ord + Default> Ranges<T> {
    /// The whole space with one verdict.
    fn all(deny: bool) -> Ranges<T> {
        Ranges {
            starts: vec![T::default()].into_boxed_slice(),
            deny: vec![deny].into_boxed_slice(),
        }
    }

    /// The verdict of address `a`: the range whose start is the last one `<= a`. A
    /// branch-free binary search (the compare becomes a conditional move).
    #[inline(always)]
    fn denies(&self, a: T) -> bool {
        self.denies_within(a, 0, self.starts.len())
    }

    /// [`Ranges::denies`] knowing that the answer is one of the `n` ranges from `base`
    /// (the first of which starts at or before `a`).
    #[inline(always)]
    fn denies_within(&self, a: T, mut base: usize, mut n: usize) -> bool {
        let s = &self.starts;
        while n > 1 {
            let half = n / 2;
            // base + half < base + n <= len: in bounds.
            base = if s[base + half] <= a {
                base + half
            } else {
                base
            };
            n -= half;
        }
        self.deny[base]
    }
}

/// Bits of an IPv4 address the first level of the lookup indexes ([`V4Index`]).
const V4_INDEX_BITS: u32 = 12;

/// The first level of the IPv4 lookup: for each block of addresses sharing their top
/// [`V4_INDEX_BITS`] bits, the first range that may hold them (the last range starting at
/// or before the block's first address). An address is then searched among the ranges
/// from its block's entry to the next block's (inclusive), a handful for 10,000 random
/// prefixes, instead of among all of them. 4,097 `u32`s (16 KB).
#[derive(Debug, Clone, PartialEq, Eq)]
struct V4Index(Box<[u32]>);

impl V4Index {
    fn new(starts: &[u32]) -> V4Index {
        let blocks = 1usize << V4_INDEX_BITS;
        let mut idx = Vec::with_capacity(blocks + 1);
        for b in 0..blocks {
            let first = (b as u32) << (32 - V4_INDEX_BITS);
            idx.push((starts.partition_point(|&s| s <= first) - 1) as u32);
        }
        idx.push((starts.len() - 1) as u32);
        V4Index(idx.into_boxed_slice())
    }
}

/// An immutable access control list (see the module's documentation for the semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    v4: Ranges<u32>,
    v4_index: V4Index,
    v6: Ranges<u128>,
    /// The prefixes it was built from (after deduplication), in the order given.
    rules: Vec<AclRule>,
    /// No prefix at all: everything is allowed, without a lookup.
    empty: bool,
}

impl Default for Acl {
    fn default() -> Acl {
        Acl::empty()
    }
}

/// Flattens the prefixes of one family (`(first, last, deny)`, `first`/`last` the
/// prefix's first and last address) over a space ending at `max` whose unmatched
/// addresses have verdict `default`: `(start, deny)` of each range, sorted, adjacent
/// verdicts merged, the first starting at 0.
fn flatten(mut prefixes: Vec<(u128, u128, bool)>, max: u128, default: bool) -> Vec<(u128, bool)> {
    // Outer prefixes first (same start: the larger last address first); the same prefix
    // twice: deny first (the second is skipped below, so deny wins).
    prefixes.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    let mut out = Flat {
        ranges: vec![(0, default)],
    };
    // The prefixes containing the current position, innermost last.
    let mut open: Vec<(u128, u128, bool)> = Vec::new();
    for (first, last, deny) in prefixes {
        out.close(&mut open, Some(first), max, default);
        if open.last().is_some_and(|o| o.0 == first && o.1 == last) {
            continue;
        }
        open.push((first, last, deny));
        out.emit(first, deny);
    }
    out.close(&mut open, None, max, default);
    out.ranges
}

/// The ranges being built by [`flatten`].
struct Flat {
    ranges: Vec<(u128, bool)>,
}

impl Flat {
    /// From address `at` on, the verdict is `deny`.
    fn emit(&mut self, at: u128, deny: bool) {
        let last = self.ranges.len() - 1;
        if self.ranges[last].0 == at {
            self.ranges[last].1 = deny;
            if last > 0 && self.ranges[last - 1].1 == deny {
                self.ranges.pop();
            }
        } else if self.ranges[last].1 != deny {
            self.ranges.push((at, deny));
        }
    }

    /// Closes the open prefixes that end before `upto` (all of them for `None`): after
    /// each, the verdict is that of the prefix around it, or `default`.
    fn close(
        &mut self,
        open: &mut Vec<(u128, u128, bool)>,
        upto: Option<u128>,
        max: u128,
        default: bool,
    ) {
        while let Some(&(_, last, _)) = open.last() {
            if upto.is_some_and(|u| last >= u) {
                break;
            }
            open.pop();
            if last < max {
                let resume = open.last().map_or(default, |o| o.2);
                self.emit(last + 1, resume);
            }
        }
    }
}

impl Acl {
    /// The empty list: everybody is allowed.
    pub fn empty() -> Acl {
        let v4 = Ranges::all(false);
        Acl {
            v4_index: V4Index::new(&v4.starts),
            v4,
            v6: Ranges::all(false),
            rules: Vec::new(),
            empty: true,
        }
    }

    /// Builds the list from its entries (any order; duplicates are kept once).
    pub fn new(rules: &[AclRule]) -> Acl {
        let mut kept: Vec<AclRule> = Vec::with_capacity(rules.len());
        let mut seen = hashbrown::HashSet::with_capacity(rules.len());
        for r in rules {
            let r = normalized(*r);
            if seen.insert(r) {
                kept.push(r);
            }
        }
        if kept.is_empty() {
            return Acl::empty();
        }
        let default = kept.iter().any(|r| r.action == AclAction::Allow);
        let (mut p4, mut p6) = (Vec::new(), Vec::new());
        for r in &kept {
            let deny = r.action == AclAction::Deny;
            match r.addr {
                IpAddr::V4(a) => {
                    let (first, last) = span(u128::from(u32::from(a)), r.len, 32);
                    p4.push((first, last, deny));
                }
                IpAddr::V6(a) => {
                    let (first, last) = span(u128::from(a), r.len, 128);
                    p6.push((first, last, deny));
                }
            }
        }
        let f4 = flatten(p4, u128::from(u32::MAX), default);
        let f6 = flatten(p6, u128::MAX, default);
        let v4 = Ranges {
            starts: f4.iter().map(|r| r.0 as u32).collect(),
            deny: f4.iter().map(|r| r.1).collect(),
        };
        Acl {
            v4_index: V4Index::new(&v4.starts),
            v4,
            v6: Ranges {
                starts: f6.iter().map(|r| r.0).collect(),
                deny: f6.iter().map(|r| r.1).collect(),
            },
            rules: kept,
            empty: false,
        }
    }

    /// Whether the list has no entry (everybody is allowed).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The entries it was built from (host bits cleared, duplicates removed).
    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }

    /// How many ranges the IPv4 and IPv6 prefixes flattened into.
    pub fn ranges(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }

    /// Whether IPv4 client `a` is denied.
    #[inline]
    pub fn denies_v4(&self, a: Ipv4Addr) -> bool {
        if self.empty {
            return false;
        }
        let a = u32::from(a);
        let b = (a >> (32 - V4_INDEX_BITS)) as usize;
        let idx = &self.v4_index.0;
        let (lo, hi) = (idx[b] as usize, idx[b + 1] as usize);
        self.v4.denies_within(a, lo, hi - lo + 1)
    }

    /// Whether IPv6 client `a` is denied.
    #[inline]
    pub fn denies_v6(&self, a: Ipv6Addr) -> bool {
        !self.empty && self.v6.denies(u128::from(a))
    }

    /// Whether client `a` is denied.
    #[inline]
    pub fn denies(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.denies_v4(a),
            IpAddr::V6(a) => self.denies_v6(a),
        }
    }
}

/// The first and last address of `addr/len` in a `bits`-wide space.
fn span(addr: u128, len: u8, bits: u32) -> (u128, u128) {
    let len = u32::from(len).min(bits);
    let host = bits - len;
    let hostmask = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let first = addr & !hostmask;
    (first, first | hostmask)
}

/// `r` with its length clamped to its family's and its host bits cleared.
fn normalized(r: AclRule) -> AclRule {
    let (addr, len) = match r.addr {
        IpAddr::V4(a) => {
            let len = r.len.min(32);
            let (first, _) = span(u128::from(u32::from(a)), len, 32);
            (IpAddr::V4(Ipv4Addr::from(first as u32)), len)
        }
        IpAddr::V6(a) => {
            let len = r.len.min(128);
            let (first, _) = span(u128::from(a), len, 128);
            (IpAddr::V6(Ipv6Addr::from(first)), len)
        }
    };
    AclRule { addr, len, ..r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn rule(s: &str, action: AclAction) -> AclRule {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().unwrap();
        let len = if l.is_empty() {
            if addr.is_ipv4() {
                32
            } else {
                128
            }
        } else {
            l.parse().unwrap()
        };
        AclRule::new(addr, len, action)
    }

    use AclAction::{Allow, Deny};

    /// The reference: every rule looked at, the longest match wins (deny on a tie), no
    /// match is the list's default.
    fn naive(rules: &[AclRule], a: IpAddr) -> bool {
        if rules.is_empty() {
            return false;
        }
        let default = rules.iter().any(|r| r.action == Allow);
        let mut best: Option<(u8, bool)> = None;
        for r in rules.iter().map(|r| normalized(*r)) {
            let hit = match (r.addr, a) {
                (IpAddr::V4(p), IpAddr::V4(x)) => {
                    let (f, l) = span(u128::from(u32::from(p)), r.len, 32);
                    (f..=l).contains(&u128::from(u32::from(x)))
                }
                (IpAddr::V6(p), IpAddr::V6(x)) => {
                    let (f, l) = span(u128::from(p), r.len, 128);
                    (f..=l).contains(&u128::from(x))
                }
                _ => false,
            };
            if !hit {
                continue;
            }
            let deny = r.action == Deny;
            best = match best {
                Some((bl, bd)) if bl > r.len || (bl == r.len && bd) => Some((bl, bd)),
                _ => Some((r.len, deny)),
            };
        }
        best.map_or(default, |b| b.1)
    }

    /// xorshift64*: deterministic random numbers without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn empty_allows_everything() {
        let a = Acl::new(&[]);
        assert!(a.is_empty());
        assert!(!a.denies(v4("1.2.3.4")));
        assert!(!a.denies("::1".parse().unwrap()));
        assert_eq!(a, Acl::default());
    }

    #[test]
    fn a_deny_list_denies_its_prefixes_only() {
        let a = Acl::new(&[rule("10.0.0.0/8", Deny), rule("192.168.1.7", Deny)]);
        assert!(a.denies(v4("10.0.0.0")));
        assert!(a.denies(v4("10.255.255.255")));
        assert!(!a.denies(v4("11.0.0.0")));
        assert!(!a.denies(v4("9.255.255.255")));
        assert!(a.denies(v4("192.168.1.7")));
        assert!(!a.denies(v4("192.168.1.8")));
        assert!(!a.denies(v4("192.168.1.6")));
        assert!(!a.denies("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn an_allow_list_denies_the_rest() {
        let a = Acl::new(&[rule("10.1.0.0/16", Allow)]);
        assert!(!a.denies(v4("10.1.2.3")));
        assert!(a.denies(v4("10.2.0.0")));
        assert!(a.denies(v4("0.0.0.0")));
        assert!(a.denies(v4("255.255.255.255")));
        // The whole list is an allow-list: IPv6 clients are not on it.
        assert!(a.denies("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn allow_inside_deny_and_the_reverse() {
        let a = Acl::new(&[
            rule("10.0.0.0/8", Deny),
            rule("10.1.0.0/16", Allow),
            rule("10.1.2.0/24", Deny),
            rule("10.1.2.3/32", Allow),
        ]);
        assert!(a.denies(v4("10.0.0.1")));
        assert!(!a.denies(v4("10.1.0.1")));
        assert!(a.denies(v4("10.1.2.1")));
        assert!(!a.denies(v4("10.1.2.3")));
        assert!(a.denies(v4("10.1.2.4")));
        assert!(!a.denies(v4("10.1.3.0")));
        assert!(a.denies(v4("10.2.0.0")));
        // It has allow entries: unmatched clients are denied.
        assert!(a.denies(v4("11.0.0.0")));
        let b = Acl::new(&[rule("0.0.0.0/0", Allow), rule("203.0.113.0/24", Deny)]);
        assert!(!b.denies(v4("203.0.112.255")));
        assert!(b.denies(v4("203.0.113.0")));
        assert!(b.denies(v4("203.0.113.255")));
        assert!(!b.denies(v4("203.0.114.0")));
    }

    #[test]
    fn edge_prefixes() {
        let all = Acl::new(&[rule("0.0.0.0/0", Deny)]);
        assert!(all.denies(v4("0.0.0.0")));
        assert!(all.denies(v4("255.255.255.255")));
        assert!(!all.denies("::".parse().unwrap()), "/0 of IPv4 is not IPv6");
        assert_eq!(all.ranges().0, 1);
        let top = Acl::new(&[rule("255.255.255.255/32", Deny), rule("0.0.0.0/32", Deny)]);
        assert!(top.denies(v4("255.255.255.255")));
        assert!(!top.denies(v4("255.255.255.254")));
        assert!(top.denies(v4("0.0.0.0")));
        assert!(!top.denies(v4("0.0.0.1")));
        let v6all = Acl::new(&[rule("::/0", Deny), rule("2001:db8::/32", Allow)]);
        assert!(v6all.denies("::1".parse().unwrap()));
        assert!(v6all.denies("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!v6all.denies("2001:db8:ffff::1".parse().unwrap()));
        let v6top = Acl::new(&[rule("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", Deny)]);
        assert!(v6top.denies("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!v6top.denies("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap()));
    }

    #[test]
    fn host_bits_are_ignored_and_duplicates_kept_once() {
        let a = Acl::new(&[
            rule("10.1.2.3/8", Deny),
            rule("10.0.0.0/8", Deny),
            rule("10.9.9.9/8", Allow),
        ]);
        assert_eq!(a.rules().len(), 2);
        assert_eq!(a.rules()[0].addr, v4("10.0.0.0"));
        // Allowed and denied: denied.
        assert!(a.denies(v4("10.5.5.5")));
        assert!(a.denies(v4("11.0.0.0")), "an allow-list");
    }

    #[test]
    fn lookups_agree_with_the_reference_on_random_lists() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cases = 0;
        for round in 0..400 {
            let n = 1 + rng.below(if round % 10 == 0 { 300 } else { 12 }) as usize;
            // Prefixes drawn near each other so that they nest and touch: a few /8s,
            // addresses within them.
            let base = (rng.below(4) as u32) << 30;
            let mut rules = Vec::with_capacity(n);
            for _ in 0..n {
                let len = match rng.below(10) {
                    0 => 0,
                    1 => 32,
                    _ => rng.below(33) as u8,
                };
                let a = base | (rng.next() as u32 & 0x3fff_ffff & !(rng.below(2) as u32 * 0xffff));
                let action = if rng.below(round % 3 + 2) == 0 {
                    Allow
                } else {
                    Deny
                };
                rules.push(AclRule::new(
                    v4(&Ipv4Addr::from(a).to_string()),
                    len,
                    action,
                ));
            }
            let acl = Acl::new(&rules);
            let mut probes: Vec<u32> = vec![0, u32::MAX];
            for r in &rules {
                let IpAddr::V4(p) = r.addr else { continue };
                let (f, l) = span(u128::from(u32::from(p)), r.len, 32);
                for x in [f, l, f.wrapping_sub(1), l + 1] {
                    if x <= u128::from(u32::MAX) {
                        probes.push(x as u32);
                    }
                }
            }
            for _ in 0..50 {
                probes.push(base | (rng.next() as u32 & 0x3fff_ffff));
            }
            for p in probes {
                let a = IpAddr::V4(Ipv4Addr::from(p));
                assert_eq!(acl.denies(a), naive(&rules, a), "{a} in {rules:?}");
                cases += 1;
            }
        }
        assert!(cases > 10_000, "{cases}");
    }

    #[test]
    fn ipv6_lookups_agree_with_the_reference() {
        let mut rng = Rng(42);
        for round in 0..200 {
            let n = 1 + rng.below(20) as usize;
            let base = u128::from(0x2001_0db8u32) << 96;
            let mut rules = Vec::new();
            for _ in 0..n {
                let len = [0u8, 16, 32, 48, 64, 100, 127, 128][rng.below(8) as usize];
                let a = base | (u128::from(rng.next()) << 40) | u128::from(rng.below(4));
                let action = if rng.below(round % 3 + 2) == 0 {
                    Allow
                } else {
                    Deny
                };
                rules.push(AclRule::new(IpAddr::V6(Ipv6Addr::from(a)), len, action));
            }
            let acl = Acl::new(&rules);
            let mut probes = vec![0u128, u128::MAX];
            for r in &rules {
                let IpAddr::V6(p) = r.addr else { continue };
                let (f, l) = span(u128::from(p), r.len, 128);
                probes.extend([f, l, f.wrapping_sub(1), l.wrapping_add(1)]);
            }
            for p in probes {
                let a = IpAddr::V6(Ipv6Addr::from(p));
                assert_eq!(acl.denies(a), naive(&rules, a), "{a} in {rules:?}");
            }
        }
    }

    #[test]
    fn ten_thousand_prefixes_flatten_to_at_most_twice_as_many_ranges() {
        let mut rng = Rng(7);
        let rules: Vec<AclRule> = (0..10_000)
            .map(|_| {
                let a = Ipv4Addr::from(rng.next() as u32);
                let len = 8 + rng.below(25) as u8;
                AclRule::new(
                    IpAddr::V4(a),
                    len,
                    if rng.below(4) == 0 { Allow } else { Deny },
                )
            })
            .collect();
        let acl = Acl::new(&rules);
        assert!(acl.ranges().0 <= 2 * acl.rules().len() + 1);
        for _ in 0..2000 {
            let a = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            assert_eq!(acl.denies(a), naive(&rules, a));
        }
    }
}
