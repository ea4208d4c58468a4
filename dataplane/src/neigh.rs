//! The neighbour cache of one worker: ARP's for IPv4 next hops, neighbour discovery's
//! (RFC 4861) for IPv6 ones — the same table, keyed by either address type.
//!
//! Entries are learned from ARP requests and replies (neighbour solicitations and
//! advertisements) addressed to the director. A miss starts resolution: the caller sends
//! an ARP request (a neighbour solicitation) and may hold a few packets on the
//! entry ([`NeighTable::hold`]); they are released when the reply arrives
//! ([`NeighTable::learn`]) or dropped when resolution gives up ([`NeighTable::age`]).
//! Memory is reserved up front; a full table refuses new entries instead of growing.

use std::cell::Cell;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

/// Packets held per unresolved neighbour.
pub const MAX_HELD: usize = 4;

/// Tunables of the cache (times in the caller's clock unit, e.g. milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Capacity (entries).
    pub capacity: usize,
    /// A resolved entry is forgotten this long after it was last confirmed.
    pub reachable_time: u64,
    /// Interval between ARP requests for an unresolved entry.
    pub retrans_time: u64,
    /// Requests sent before giving up (held packets are then dropped).
    pub max_probes: u32,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 4096,
            reachable_time: 300_000,
            retrans_time: 1_000,
            max_probes: 3,
        }
    }
}

#[derive(Debug)]
enum State {
    Incomplete { last_probe: u64, probes: u32 },
    Reachable { mac: [u8; 6], confirmed: u64 },
    Static { mac: [u8; 6] },
}

#[derive(Debug)]
struct Entry<P> {
    state: State,
    held: [Option<P>; MAX_HELD],
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The neighbour's MAC.
    Hit([u8; 6]),
    /// Unresolved; `send_request` says whether the caller should send an ARP request now.
    Miss {
        /// Send an ARP request for the address now.
        send_request: bool,
    },
    /// Unresolved and the table is full: nothing can be held or resolved.
    Full,
}

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighStats {
    /// Packets dropped because the hold queue of an unresolved entry was full.
    pub hold_overflow: u64,
    /// Held packets dropped because resolution failed.
    pub unresolved_drops: u64,
    /// Entries refused because the table was full.
    pub table_full: u64,
}

/// An address a neighbour cache is keyed by: IPv4 (ARP) or IPv6 (neighbour discovery).
pub trait NeighKey: Copy + Eq + Hash + core::fmt::Debug {
    /// The slot of [`NeighTable::get`]'s memory of recent answers (the low bits).
    fn slot(self) -> usize;
}

impl NeighKey for Ipv4Addr {
    #[inline(always)]
    fn slot(self) -> usize {
        u32::from(self) as usize % RECENT
    }
}

impl NeighKey for Ipv6Addr {
    #[inline(always)]
    fn slot(self) -> usize {
        usize::from(self.octets()[15]) % RECENT
    }
}

/// A worker's neighbour cache; `P` is the held packet type (an mbuf in the dataplane),
/// `K` the address type (IPv4 by default; IPv6 for neighbour discovery).
#[derive(Debug)]
pub struct NeighTable<P, K: NeighKey = Ipv4Addr> {
    cfg: NeighConfig,
    entries: HashMap<K, Entry<P>>,
    stats: NeighStats,
    /// The last resolved addresses [`NeighTable::get`] answered, by the low bits of the
    /// address: every forwarded packet asks for its next hop, a handful of addresses
    /// (servers, gateways) over and over. Emptied by every change of an entry.
    recent: [Cell<Option<Answer<K>>>; RECENT],
}

/// A resolved address and its MAC.
type Answer<K> = (K, [u8; 6]);

/// Slots of [`NeighTable::get`]'s memory of recent answers.
const RECENT: usize = 16;

impl<P, K: NeighKey> NeighTable<P, K> {
    /// An empty cache with room for `cfg.capacity` entries.
    pub fn new(cfg: NeighConfig) -> NeighTable<P, K> {
        NeighTable {
            cfg,
            entries: HashMap::with_capacity(cfg.capacity),
            stats: NeighStats::default(),
            recent: Default::default(),
        }
    }

    /// Looks `ip` up; on a miss creates an incomplete entry (if there is room) and says
    /// whether an ARP request is due.
    pub fn lookup(&mut self, ip: K, now: u64) -> Lookup {
        if let Some(e) = self.entries.get_mut(&ip) {
            return match &mut e.state {
                State::Reachable { mac, .. } | State::Static { mac } => Lookup::Hit(*mac),
                State::Incomplete { last_probe, probes } => {
                    let due = now.saturating_sub(*last_probe) >= self.cfg.retrans_time
                        && *probes < self.cfg.max_probes;
                    if due {
                        *last_probe = now;
                        *probes += 1;
                    }
                    Lookup::Miss { send_request: due }
                }
            };
        }
        if self.entries.len() >= self.cfg.capacity {
            self.stats.table_full += 1;
            return Lookup::Full;
        }
        self.entries.insert(
            ip,
            Entry {
                state: State::Incomplete {
                    last_probe: now,
                    probes: 1,
                },
                held: std::array::from_fn(|_| None),
            },
        );
        Lookup::Miss { send_request: true }
    }

    /// The MAC of `ip` if resolved (no side effects on the entries).
    #[inline(always)]
    pub fn get(&self, ip: K) -> Option<[u8; 6]> {
        let slot = &self.recent[ip.slot()];
        if let Some((at, mac)) = slot.get() {
            if at == ip {
                return Some(mac);
            }
        }
        let mac = match self.entries.get(&ip)?.state {
            State::Reachable { mac, .. } | State::Static { mac } => mac,
            State::Incomplete { .. } => return None,
        };
        slot.set(Some((ip, mac)));
        Some(mac)
    }

    /// Forgets the answers [`NeighTable::get`] remembers (an entry changed).
    fn changed(&mut self) {
        for slot in &mut self.recent {
            *slot.get_mut() = None;
        }
    }

    /// Installs `ip` at `mac` permanently: never aged, never replaced by ARP. Ignored when
    /// the table is full.
    pub fn add_static(&mut self, ip: K, mac: [u8; 6]) {
        if self.entries.len() >= self.cfg.capacity && !self.entries.contains_key(&ip) {
            self.stats.table_full += 1;
            return;
        }
        self.changed();
        self.entries.insert(
            ip,
            Entry {
                state: State::Static { mac },
                held: std::array::from_fn(|_| None),
            },
        );
    }

    /// Whether `ip` has an entry (resolved or not).
    pub fn contains(&self, ip: K) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Holds `pkt` until `ip` resolves. Gives it back (the caller drops and counts it)
    /// when there is no incomplete entry or its hold queue is full.
    pub fn hold(&mut self, ip: K, pkt: P) -> Result<(), P> {
        let Some(e) = self.entries.get_mut(&ip) else {
            return Err(pkt);
        };
        if matches!(e.state, State::Reachable { .. } | State::Static { .. }) {
            return Err(pkt);
        }
        match e.held.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(pkt);
                Ok(())
            }
            None => {
                self.stats.hold_overflow += 1;
                Err(pkt)
            }
        }
    }

    /// Learns (or confirms) `ip` at `mac` and hands every held packet to `release`.
    /// Returns `false` when the table is full and `ip` was not known.
    pub fn learn(
        &mut self,
        ip: K,
        mac: [u8; 6],
        now: u64,
        mut release: impl FnMut(P, [u8; 6]),
    ) -> bool {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.cfg.capacity {
            self.stats.table_full += 1;
            return false;
        }
        self.changed();
        let e = self.entries.entry(ip).or_insert_with(|| Entry {
            state: State::Incomplete {
                last_probe: now,
                probes: 0,
            },
            held: std::array::from_fn(|_| None),
        });
        if !matches!(e.state, State::Static { .. }) {
            e.state = State::Reachable {
                mac,
                confirmed: now,
            };
        }
        for slot in &mut e.held {
            if let Some(p) = slot.take() {
                release(p, mac);
            }
        }
        true
    }

    /// Forgets resolved entries not confirmed within the reachable time, and gives up on
    /// unresolved ones whose probes are exhausted (their held packets go to `drop_held`).
    /// Call it from the worker's slow path (e.g. once a second), not per packet.
    pub fn age(&mut self, now: u64, mut drop_held: impl FnMut(P)) {
        let cfg = self.cfg;
        let mut dropped = 0u64;
        self.changed();
        self.entries.retain(|_, e| {
            let keep = match e.state {
                State::Static { .. } => true,
                State::Reachable { confirmed, .. } => {
                    now.saturating_sub(confirmed) < cfg.reachable_time
                }
                State::Incomplete { last_probe, probes } => {
                    probes < cfg.max_probes || now.saturating_sub(last_probe) < cfg.retrans_time
                }
            };
            if !keep {
                for slot in &mut e.held {
                    if let Some(p) = slot.take() {
                        dropped += 1;
                        drop_held(p);
                    }
                }
            }
            keep
        });
        self.stats.unresolved_drops += dropped;
    }

    /// Entries in the cache.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> NeighStats {
        self.stats
    }

    /// Resolved entries, for listings.
    pub fn resolved(&self) -> impl Iterator<Item = (K, [u8; 6])> + '_ {
        self.entries.iter().filter_map(|(ip, e)| match e.state {
            State::Reachable { mac, .. } | State::Static { mac } => Some((*ip, mac)),
            State::Incomplete { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn table() -> NeighTable<u32> {
        NeighTable::new(NeighConfig {
            capacity: 2,
            reachable_time: 10_000,
            retrans_time: 1_000,
            max_probes: 3,
        })
    }

    #[test]
    fn miss_holds_packets_and_reply_releases_them_in_order() {
        let mut t = table();
        assert_eq!(t.lookup(IP, 0), Lookup::Miss { send_request: true });
        assert_eq!(
            t.lookup(IP, 10),
            Lookup::Miss {
                send_request: false
            },
            "no flood of requests"
        );
        for p in 0..MAX_HELD as u32 {
            t.hold(IP, p).expect("room");
        }
        assert_eq!(t.hold(IP, 99), Err(99), "the hold queue is bounded");
        assert_eq!(t.stats().hold_overflow, 1);
        let mut out = Vec::new();
        assert!(t.learn(IP, MAC, 20, |p, mac| out.push((p, mac))));
        assert_eq!(out, vec![(0, MAC), (1, MAC), (2, MAC), (3, MAC)]);
        assert_eq!(t.lookup(IP, 30), Lookup::Hit(MAC));
    }

    #[test]
    fn requests_are_retried_then_given_up_and_held_packets_dropped() {
        let mut t = table();
        assert_eq!(t.lookup(IP, 0), Lookup::Miss { send_request: true });
        t.hold(IP, 7).expect("room");
        assert_eq!(t.lookup(IP, 1_000), Lookup::Miss { send_request: true });
        assert_eq!(t.lookup(IP, 2_000), Lookup::Miss { send_request: true });
        assert_eq!(
            t.lookup(IP, 3_000),
            Lookup::Miss {
                send_request: false
            },
            "max probes"
        );
        let mut dropped = Vec::new();
        t.age(3_500, |p| dropped.push(p));
        assert_eq!(dropped, vec![7]);
        assert_eq!(t.stats().unresolved_drops, 1);
        assert!(t.is_empty());
    }

    #[test]
    fn answers_follow_every_change_of_an_entry() {
        // `get` remembers recent answers: a new MAC, an aged-out entry and a static entry
        // replacing a learned one must show at once, also for addresses sharing a slot.
        let mut t = table();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::from(u32::from(a) + RECENT as u32); // same slot as `a`
        t.learn(a, [1; 6], 0, |_, _| {});
        t.learn(b, [2; 6], 0, |_, _| {});
        for _ in 0..2 {
            assert_eq!(t.get(a), Some([1; 6]));
            assert_eq!(t.get(b), Some([2; 6]));
        }
        t.learn(a, [3; 6], 10, |_, _| {});
        assert_eq!(t.get(a), Some([3; 6]), "a new MAC shows at once");
        t.add_static(b, [4; 6]);
        assert_eq!(
            t.get(b),
            Some([4; 6]),
            "a static entry replaces the learned one"
        );
        let later = t.cfg.reachable_time + 20;
        t.age(later, |_| {});
        assert_eq!(t.get(a), None, "aged out");
        assert_eq!(t.get(b), Some([4; 6]), "static entries stay");
        assert_eq!(t.get(Ipv4Addr::new(10, 0, 0, 9)), None);
    }

    #[test]
    fn static_entries_never_age_and_arp_does_not_replace_them() {
        let mut t = table();
        t.add_static(IP, MAC);
        t.learn(IP, [9; 6], 1, |_, _| {});
        t.age(1_000_000, |_| {});
        assert_eq!(t.lookup(IP, 1_000_000), Lookup::Hit(MAC));
    }

    #[test]
    fn resolved_entries_age_out_and_capacity_is_kept() {
        let mut t = table();
        t.learn(IP, MAC, 0, |_, _| {});
        t.learn(Ipv4Addr::new(10, 0, 0, 10), MAC, 0, |_, _| {});
        assert_eq!(t.lookup(Ipv4Addr::new(10, 0, 0, 11), 0), Lookup::Full);
        assert_eq!(t.stats().table_full, 1);
        t.age(5_000, |_| {});
        assert_eq!(t.len(), 2);
        t.learn(IP, MAC, 6_000, |_, _| {}); // confirmed again
        t.age(12_000, |_| {});
        assert_eq!(t.get(IP), Some(MAC));
        assert_eq!(t.len(), 1);
    }
}
