//! Active/active sync: a group of directors, each sending its sessions to every other
//! (unicast to each peer) and installing theirs — the kernel's master and backup daemons
//! at once on every director, with a list of peers in place of the multicast group.
//!
//! What keeps the group from installing a session twice or looping messages:
//! - a record is sent only after a local client packet (the master's rules,
//!   [`crate::conn::replica::conn_needed`]); installing a synced session emits nothing,
//!   so what a director receives is never sent on unless its own clients use the session
//!   (then it is sent as any local session is, by the same rules, and the peers update
//!   their copy in place);
//! - a message whose source is the director's own address, or whose authentication
//!   trailer names the director's own sender id, is refused (counted as `peer_own`);
//! - a message from an address not in the peer list is refused (counted as
//!   `peer_unknown`);
//! - a session already in the table is updated, not added again
//!   ([`crate::conn::ConnTable::install_synced`]).
//!
//! Each peer has its counters ([`Peer`]): messages and sessions received from it,
//! messages refused (bad MAC, replay, another syncid, bad size), heartbeats and the time
//! of its last accepted message. A director with nothing to send sends an empty message
//! (a header with no records, which the kernel's backup also accepts) to every peer each
//! [`HEARTBEAT`], so that a silent peer is a dead one: a peer is up while its last
//! accepted message is at most [`DOWN_AFTER`] old.
//!
//! Bulk sync at join: a peer that comes up (its first accepted message, or the first
//! after being down: a director joining or restarted) is due a bulk sync ([`Peer::note`]
//! marks it, [`Peer::take_bulk_due`] takes the mark): every session and template this
//! director has is sent to that peer alone, paced by a [`Pacer`]. A director restarted
//! within [`DOWN_AFTER`] is never seen silent; its hello's incarnation (new at each start
//! of rvsd, [`incarnation`]) is what shows the restart: a peer whose incarnation changes
//! is due a bulk sync too ([`PeerTable::heard_hello`]).
//!
//! The end of a bulk sync: once one is complete, the sender tells the receiver in a hello
//! naming the receiver's incarnation (`bulk_done_for`), sent at once and in every later
//! hello to it. A joining director has received the group's sessions
//! ([`PeerTable::joined`]) when it has listened for [`JOIN_LISTEN`] (time to hear from
//! every peer up) and every peer it sees up has named its incarnation so; rvsd withholds
//! its BGP announcements until then (bounded by `[bgp] announce_delay_ms`).
//!
//! Layout and LIPs: every heartbeat carries the sender's [`Hello`] (worker count, FULLNAT
//! port range, own LIPs; [`super::wire::encode_hello`]). A peer whose worker count or port
//! range is not this director's slices FULLNAT ports otherwise: its FULLNAT records are
//! refused and counted ([`Peer::refused_layout`]), and its LIPs are never taken over.
//!
//! LIP takeover: when a peer is down, its LIPs (as its last hello named them) are held by
//! exactly one live member: the one with the highest rendezvous hash of (LIP, member
//! address) among this director and the peers it sees up ([`PeerTable::lips_to_hold`]),
//! and only while this director sees a majority of the group (in a group of two, the
//! survivor alone). Every member computes the same choice from the same view, so two
//! survivors never both claim a LIP; the holder answers for it (ARP, replies to it) but
//! never opens sessions on it, and lets it go when its owner is up again.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth;
use super::wire::Hello;

/// How often a group member with nothing else to send sends an empty message.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A group member busy sending sessions (so never idle for a [`HEARTBEAT`]) still sends
/// its hello at least this often.
pub const HELLO_EVERY: Duration = Duration::from_secs(5);
/// A peer is down when its last accepted message is older than this.
pub const DOWN_AFTER: Duration = Duration::from_secs(3);
/// A joining director listens this long before it may count the peers up (each sends at
/// least every [`HEARTBEAT`]).
pub const JOIN_LISTEN: Duration = Duration::from_secs(2);
/// Bulk sync: messages sent per millisecond at most (4 000 a second, about 150 000
/// sessions a second: a million sessions in under 7 s, some 50 Mbit/s).
pub const BULK_MSGS_PER_MS: u32 = 4;

/// This rvsd's incarnation: a nonzero number fixed for the life of the process and new at
/// each start (the start time in nanoseconds mixed with the process id), sent in every
/// hello.
pub fn incarnation() -> u64 {
    static INC: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INC.get_or_init(|| {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut z = ns ^ (u64::from(std::process::id()) << 40);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).max(1)
    })
}

/// One peer's counters.
#[derive(Debug)]
pub struct Peer {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Messages with sessions accepted from it.
    pub msgs: AtomicU64,
    /// Session records received from it and handed to the workers.
    pub conns: AtomicU64,
    /// Heartbeats (empty messages) accepted from it.
    pub heartbeats: AtomicU64,
    /// Its messages refused: bad or missing MAC, replay, another syncid, bad size.
    pub refused: AtomicU64,
    /// Milliseconds since the Unix epoch of its last accepted message (0: none yet).
    pub last_unix_ms: AtomicU64,
    /// Session records sent to it in bulk syncs.
    pub bulk_records: AtomicU64,
    /// Bulk syncs to it completed.
    pub bulk_syncs: AtomicU64,
    /// Its FULLNAT records refused because its layout (workers, port range) is not ours.
    pub refused_layout: AtomicU64,
    /// The incarnation of it to which this director completed a bulk sync (0: none), named
    /// in the hellos sent to it.
    pub bulk_sent_for: AtomicU64,
    /// Its bulk sync to this director is complete (a hello of it named this director's
    /// incarnation).
    bulk_received: AtomicBool,
    /// Its last hello (layout and LIPs), kept after it goes down.
    hello: Mutex<Option<Hello>>,
    /// It came up and has not had its bulk sync yet.
    bulk_due: AtomicBool,
}

impl Peer {
    fn new(addr: Ipv4Addr) -> Peer {
        Peer {
            addr,
            msgs: AtomicU64::new(0),
            conns: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_unix_ms: AtomicU64::new(0),
            bulk_records: AtomicU64::new(0),
            bulk_syncs: AtomicU64::new(0),
            refused_layout: AtomicU64::new(0),
            bulk_sent_for: AtomicU64::new(0),
            bulk_received: AtomicBool::new(false),
            hello: Mutex::new(None),
            bulk_due: AtomicBool::new(false),
        }
    }

    /// Keeps the hello of one of its accepted heartbeats. A hello whose incarnation is not
    /// that of its previous one comes from a restarted rvsd: a bulk sync is due, however
    /// short the silence was. Returns whether it restarted.
    pub fn set_hello(&self, h: Hello) -> bool {
        let mut g = self.hello.lock().unwrap_or_else(|p| p.into_inner());
        let restarted = g
            .as_ref()
            .is_some_and(|old| old.incarnation != h.incarnation);
        if restarted {
            self.bulk_due.store(true, Ordering::Release);
        }
        *g = Some(h);
        restarted
    }

    /// Whether its bulk sync to this director is complete.
    pub fn bulk_received(&self) -> bool {
        self.bulk_received.load(Ordering::Acquire)
    }

    /// Its last hello, if it sent one.
    pub fn hello(&self) -> Option<Hello> {
        self.hello.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether it came up since the last call (its first accepted message, or the first
    /// after more than [`DOWN_AFTER`] of silence), and so is due a bulk sync; the mark is
    /// taken.
    pub fn take_bulk_due(&self) -> bool {
        self.bulk_due.swap(false, Ordering::AcqRel)
    }

    /// Records what became of one of its messages: `records` is `Some(n)` when it was
    /// accepted (`n` records in it, 0 for a heartbeat), `None` when refused; `installed`
    /// the records handed to the workers; `now_ms` the time (Unix milliseconds).
    pub fn note(&self, records: Option<usize>, installed: u64, now_ms: u64) {
        match records {
            None => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(0) => {
                self.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.msgs.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.conns.fetch_add(installed, Ordering::Relaxed);
        let before = self.last_unix_ms.swap(now_ms, Ordering::Relaxed);
        if before == 0 || u128::from(now_ms.saturating_sub(before)) > DOWN_AFTER.as_millis() {
            self.bulk_due.store(true, Ordering::Release);
        }
    }

    /// Whether it is up at `now_ms`: its last accepted message at most [`DOWN_AFTER`] old.
    pub fn is_up(&self, now_ms: u64) -> bool {
        let last = self.last_unix_ms.load(Ordering::Relaxed);
        last != 0 && u128::from(now_ms.saturating_sub(last)) <= DOWN_AFTER.as_millis()
    }

    /// Its state at `now_ms`; `own` is this director's layout (to name a mismatch).
    pub fn report(&self, now_ms: u64, own: &Hello) -> PeerReport {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = l(&self.last_unix_ms);
        let age_ms = (last != 0).then(|| now_ms.saturating_sub(last));
        let hello = self.hello();
        PeerReport {
            addr: self.addr,
            up: self.is_up(now_ms),
            layout: hello.as_ref().and_then(|h| layout_mismatch(own, h)),
            lips: hello.map(|h| h.lips).unwrap_or_default(),
            refused_layout: l(&self.refused_layout),
            msgs: l(&self.msgs),
            conns: l(&self.conns),
            heartbeats: l(&self.heartbeats),
            refused: l(&self.refused),
            last_age_ms: age_ms,
            bulk_records: l(&self.bulk_records),
            bulk_syncs: l(&self.bulk_syncs),
        }
    }
}

/// A peer's state, for listings and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Whether a message of it was accepted within [`DOWN_AFTER`].
    pub up: bool,
    /// Messages with sessions accepted from it.
    pub msgs: u64,
    /// Sessions received from it.
    pub conns: u64,
    /// Heartbeats accepted from it.
    pub heartbeats: u64,
    /// Its messages refused.
    pub refused: u64,
    /// Milliseconds since its last accepted message (`None`: none yet).
    pub last_age_ms: Option<u64>,
    /// Session records sent to it in bulk syncs.
    pub bulk_records: u64,
    /// Bulk syncs to it completed.
    pub bulk_syncs: u64,
    /// Why its layout is not this director's (`None`: the same, or no hello yet).
    pub layout: Option<&'static str>,
    /// Its LIPs, as its last hello named them.
    pub lips: Vec<Ipv4Addr>,
    /// Its FULLNAT records refused for its layout.
    pub refused_layout: u64,
}

/// Why a peer's layout (`peer`) is not this director's (`own`): another worker count or
/// another FULLNAT port range; `None` when they are the same.
pub fn layout_mismatch(own: &Hello, peer: &Hello) -> Option<&'static str> {
    if peer.workers != own.workers {
        Some("workers")
    } else if peer.lport_range != own.lport_range {
        Some("port-range")
    } else {
        None
    }
}

/// The rendezvous weight of member `member` for LIP `lip` (splitmix64 of both): the live
/// member with the highest weight holds the LIP.
pub fn rendezvous(lip: Ipv4Addr, member: Ipv4Addr) -> u64 {
    let mut z = (u64::from(u32::from(lip)) << 32 | u64::from(u32::from(member)))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One member as the takeover sees it: its address, whether it is up, and (for a peer)
/// its last hello and whether its layout is this director's.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// Its sync address.
    pub addr: Ipv4Addr,
    /// Up (this director itself always is).
    pub up: bool,
    /// Its LIPs (from its last hello).
    pub lips: Vec<Ipv4Addr>,
    /// Its layout is this director's.
    pub layout_ok: bool,
}

/// The LIPs director `own` (whose own LIPs are `own_lips`) holds for dead peers, with the
/// peer each belongs to, given the other members' views (`peers`): every LIP of a down
/// peer whose layout is ours, that is not one of `own_lips`, and for which `own` has the
/// highest [`rendezvous`] weight among the live members (`own` and the peers up); none
/// unless `own` sees a majority of the group, or the group has two members. Sorted.
pub fn lips_to_hold(
    own: Ipv4Addr,
    own_lips: &[Ipv4Addr],
    peers: &[MemberView],
) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let total = peers.len() + 1;
    let live: Vec<Ipv4Addr> = std::iter::once(own)
        .chain(peers.iter().filter(|p| p.up).map(|p| p.addr))
        .collect();
    if total > 2 && live.len() * 2 <= total {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in peers.iter().filter(|p| !p.up && p.layout_ok) {
        for &lip in &p.lips {
            if own_lips.contains(&lip) || out.iter().any(|(l, _)| *l == lip) {
                continue;
            }
            // A LIP a live peer names as its own is not free to take.
            if peers.iter().any(|q| q.up && q.lips.contains(&lip)) {
                continue;
            }
            let winner = live
                .iter()
                .copied()
                .max_by_key(|&m| (rendezvous(lip, m), u32::from(m)));
            if winner == Some(own) {
                out.push((lip, p.addr));
            }
        }
    }
    out.sort();
    out
}

/// Paces a bulk sync: at most `per_ms` messages per millisecond since it started.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    per_ms: u32,
    sent: u64,
}

impl Pacer {
    /// A pacer starting at `start`.
    pub fn new(start: Instant, per_ms: u32) -> Pacer {
        Pacer {
            start,
            per_ms: per_ms.max(1),
            sent: 0,
        }
    }

    /// Accounts one message about to be sent at `now`: how long to wait first (zero when
    /// the budget of the time elapsed has room).
    pub fn next(&mut self, now: Instant) -> Duration {
        let slot_ms = self.sent / u64::from(self.per_ms);
        self.sent += 1;
        let due = self.start + Duration::from_millis(slot_ms);
        due.saturating_duration_since(now)
    }
}

/// Why a group member refuses a datagram before looking at its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It comes from this director (its address, or its sender id in the trailer).
    Own,
    /// Its source is not in the peer list.
    Unknown,
}

/// The peers of a group member: the configured list less its own address.
#[derive(Debug)]
pub struct PeerTable {
    own: Ipv4Addr,
    peers: Vec<Peer>,
    /// This director's hello: its layout and own LIPs (set with each configuration).
    local: Mutex<Hello>,
    /// When the table was made (the director joined its group).
    since: Instant,
}

impl PeerTable {
    /// The table of the director whose sync address is `own`, from the group's list
    /// (`own` in it is skipped, as are repeated addresses, so that every member can be
    /// given the same list).
    pub fn new(own: Ipv4Addr, list: &[Ipv4Addr]) -> PeerTable {
        let mut peers: Vec<Peer> = Vec::with_capacity(list.len());
        for &a in list {
            if a != own && !peers.iter().any(|p| p.addr == a) {
                peers.push(Peer::new(a));
            }
        }
        PeerTable {
            own,
            peers,
            local: Mutex::new(Hello::default()),
            since: Instant::now(),
        }
    }

    /// Keeps `h`, a hello of `peer` ([`Peer::set_hello`]: a changed incarnation makes a
    /// bulk sync due), and notes a bulk sync of it to this director completed when `h`
    /// names this director's incarnation. Returns whether the peer restarted.
    pub fn heard_hello(&self, peer: &Peer, h: Hello) -> bool {
        let mine = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .incarnation;
        if mine != 0 && h.bulk_done_for == mine {
            peer.bulk_received.store(true, Ordering::Release);
        }
        peer.set_hello(h)
    }

    /// Whether this director has received its group's sessions at `now_ms` (`now` as an
    /// instant): it has listened for [`JOIN_LISTEN`] since the table was made and every
    /// peer up has completed its bulk sync to it. Also true with no peer up.
    pub fn joined(&self, now: Instant, now_ms: u64) -> bool {
        now.saturating_duration_since(self.since) >= JOIN_LISTEN
            && self
                .peers
                .iter()
                .all(|p| !p.is_up(now_ms) || p.bulk_received())
    }

    /// The peers up at `now_ms` whose bulk sync to this director is not complete.
    pub fn bulk_pending(&self, now_ms: u64) -> Vec<Ipv4Addr> {
        self.peers
            .iter()
            .filter(|p| p.is_up(now_ms) && !p.bulk_received())
            .map(|p| p.addr)
            .collect()
    }

    /// Makes the table as if made at `since` (tests).
    #[cfg(test)]
    fn made_at(mut self, since: Instant) -> PeerTable {
        self.since = since;
        self
    }

    /// Sets this director's hello (its worker count, port range and own LIPs), sent in
    /// its heartbeats and compared with the peers'.
    pub fn set_local(&self, h: Hello) {
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    /// This director's hello.
    pub fn local(&self) -> Hello {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `peer`'s FULLNAT records are refused: its last hello names another layout.
    pub fn refuses_fullnat_of(&self, peer: &Peer) -> bool {
        // Per datagram: compared under the locks, nothing cloned.
        let theirs = peer.hello.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = theirs.as_ref() else {
            return false;
        };
        let own = self.local.lock().unwrap_or_else(|p| p.into_inner());
        layout_mismatch(&own, h).is_some()
    }

    /// The LIPs this director holds at `now_ms` for its dead peers ([`lips_to_hold`]).
    pub fn lips_to_hold(&self, now_ms: u64) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let local = self.local();
        let views: Vec<MemberView> = self
            .peers
            .iter()
            .map(|p| {
                let h = p.hello();
                MemberView {
                    addr: p.addr,
                    up: p.is_up(now_ms),
                    layout_ok: h
                        .as_ref()
                        .is_some_and(|h| layout_mismatch(&local, h).is_none()),
                    lips: h.map(|h| h.lips).unwrap_or_default(),
                }
            })
            .collect();
        lips_to_hold(self.own, &local.lips, &views)
    }

    /// This director's sync address.
    pub fn own(&self) -> Ipv4Addr {
        self.own
    }

    /// The peers, in the list's order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The peer that sent `datagram` from `src`, or why it is refused. With a key
    /// (`keyed`), a trailer naming this director's sender id ([`super::net::sender_id`],
    /// its sync address) is its own message whatever the source.
    pub fn admit(&self, src: Ipv4Addr, datagram: &[u8], keyed: bool) -> Result<&Peer, Refusal> {
        if src == self.own {
            return Err(Refusal::Own);
        }
        if keyed && auth::trailer(datagram).is_some_and(|t| t.sender == u32::from(self.own)) {
            return Err(Refusal::Own);
        }
        self.peers
            .iter()
            .find(|p| p.addr == src)
            .ok_or(Refusal::Unknown)
    }

    /// Every peer's state at `now_ms` (Unix milliseconds).
    pub fn report(&self, now_ms: u64) -> Vec<PeerReport> {
        let local = self.local();
        self.peers
            .iter()
            .map(|p| p.report(now_ms, &local))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::auth::{Signer, SyncKey};
    use crate::sync::MessageBuilder;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, d)
    }

    #[test]
    fn own_address_and_repeats_are_skipped() {
        let t = PeerTable::new(ip(2), &[ip(1), ip(2), ip(3), ip(1)]);
        let addrs: Vec<Ipv4Addr> = t.peers().iter().map(|p| p.addr).collect();
        assert_eq!(addrs, [ip(1), ip(3)]);
        assert_eq!(t.own(), ip(2));
        assert!(PeerTable::new(ip(1), &[ip(1)]).peers().is_empty());
    }

    #[test]
    fn unknown_and_own_senders_are_refused() {
        let t = PeerTable::new(ip(2), &[ip(1), ip(2), ip(3)]);
        let msg = MessageBuilder::new(0, 1472).bytes().to_vec();
        assert_eq!(t.admit(ip(1), &msg, false).unwrap().addr, ip(1));
        assert_eq!(t.admit(ip(3), &msg, true).unwrap().addr, ip(3));
        assert_eq!(t.admit(ip(9), &msg, false).unwrap_err(), Refusal::Unknown);
        assert_eq!(t.admit(ip(2), &msg, false).unwrap_err(), Refusal::Own);
        // With a key, the trailer's sender id: this director's own message relayed by a
        // peer's address is still its own.
        let key = SyncKey::new(&[3; 32]).unwrap();
        let mine = Signer::new(&key, u32::from(ip(2)), 1).sign(&msg).to_vec();
        let theirs = Signer::new(&key, u32::from(ip(1)), 1).sign(&msg).to_vec();
        assert_eq!(t.admit(ip(1), &mine, true).unwrap_err(), Refusal::Own);
        assert_eq!(t.admit(ip(1), &theirs, true).unwrap().addr, ip(1));
        // Without a key the trailer is not looked at here (the receiver refuses it).
        assert_eq!(t.admit(ip(1), &mine, false).unwrap().addr, ip(1));
    }

    #[test]
    fn counters_state_and_age() {
        let t = PeerTable::new(ip(2), &[ip(1), ip(3)]);
        let p = t.admit(ip(1), &[], false).unwrap();
        let now = 1_000_000;
        assert_eq!(
            p.report(now, &Hello::default()),
            PeerReport {
                addr: ip(1),
                up: false,
                msgs: 0,
                conns: 0,
                heartbeats: 0,
                refused: 0,
                last_age_ms: None,
                bulk_records: 0,
                bulk_syncs: 0,
                layout: None,
                lips: Vec::new(),
                refused_layout: 0,
            }
        );
        p.note(Some(3), 3, now);
        p.note(Some(0), 0, now + 500);
        p.note(None, 0, now + 900);
        let r = p.report(now + 1500, &Hello::default());
        assert_eq!(
            (
                r.msgs,
                r.conns,
                r.heartbeats,
                r.refused,
                r.last_age_ms,
                r.up
            ),
            (1, 3, 1, 1, Some(1000), true),
            "a refused message does not make a peer up"
        );
        let down = now + 500 + DOWN_AFTER.as_millis() as u64 + 1;
        assert!(!p.report(down, &Hello::default()).up);
        let all = t.report(now + 1500);
        let _ = all;
        // Up after being down: a bulk sync is due once.
        assert!(p.take_bulk_due(), "first message");
        assert!(!p.take_bulk_due());
        p.note(Some(0), 0, now + 1500);
        assert!(!p.take_bulk_due(), "still up");
        p.note(Some(0), 0, down + 2000);
        assert!(p.take_bulk_due(), "up again after a silence");
        p.note(None, 0, down + 9000);
        assert!(!p.take_bulk_due(), "a refused message does not count");
        let all = t.report(now + 1500);
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].addr, all[1].up), (ip(3), false));
    }

    #[test]
    fn the_pacer_bounds_messages_per_millisecond() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 4);
        // The first 4 go at once, the next 4 wait for the second millisecond, ...
        let waits: Vec<Duration> = (0..12).map(|_| p.next(t0)).collect();
        assert!(waits[..4].iter().all(|w| w.is_zero()));
        assert!(waits[4..8].iter().all(|&w| w == Duration::from_millis(1)));
        assert!(waits[8..].iter().all(|&w| w == Duration::from_millis(2)));
        // Time passing frees the budget: at 10 ms, messages 12..40 go at once.
        let later = t0 + Duration::from_millis(10);
        assert!((12..40).all(|_| p.next(later).is_zero()));
        assert_eq!(p.next(later), Duration::from_millis(0));
        assert_eq!(p.next(later), Duration::from_millis(0));
        assert_eq!(p.next(later), Duration::from_millis(0));
        assert_eq!(p.next(later), Duration::from_millis(0));
        assert_eq!(p.next(later), Duration::from_millis(1), "message 44");
        // Over a second at most 4 000 + 4.
        let mut q = Pacer::new(t0, BULK_MSGS_PER_MS);
        let in_a_second = (0..10_000)
            .take_while(|_| q.next(t0 + Duration::from_secs(1)).is_zero())
            .count();
        assert_eq!(in_a_second, 4004);
    }

    fn view(addr: Ipv4Addr, up: bool, lips: &[Ipv4Addr]) -> MemberView {
        MemberView {
            addr,
            up,
            lips: lips.to_vec(),
            layout_ok: true,
        }
    }

    fn lips(first: u8, n: u8) -> Vec<Ipv4Addr> {
        (first..first + n)
            .map(|d| Ipv4Addr::new(10, 20, 0, d))
            .collect()
    }

    #[test]
    fn a_dead_peers_lips_are_held_by_exactly_one_survivor() {
        // A, B, C; A dies. B and C each compute from their own view: every one of A's 40
        // LIPs is held by exactly one of them, and both hold some.
        let (a, b, c) = (ip(1), ip(2), ip(3));
        let (la, lb, lc) = (lips(100, 40), lips(150, 2), lips(160, 2));
        let by_b = lips_to_hold(b, &lb, &[view(a, false, &la), view(c, true, &lc)]);
        let by_c = lips_to_hold(c, &lc, &[view(a, false, &la), view(b, true, &lb)]);
        assert!(!by_b.is_empty() && !by_c.is_empty(), "{by_b:?} {by_c:?}");
        for l in &la {
            let n = by_b.iter().chain(&by_c).filter(|(x, _)| x == l).count();
            assert_eq!(n, 1, "{l}");
        }
        assert!(by_b.iter().chain(&by_c).all(|(_, from)| *from == a));
        // A back up: nothing held any more.
        assert!(lips_to_hold(b, &lb, &[view(a, true, &la), view(c, true, &lc)]).is_empty());
        // C dies too: B alone is one of three, which it cannot tell from a split.
        let all = lips_to_hold(b, &lb, &[view(a, false, &la), view(c, false, &lc)]);
        assert!(all.is_empty(), "B alone is not a majority of three");
    }

    #[test]
    fn a_minority_holds_nothing_and_two_members_are_the_exception() {
        let (a, b, c, d) = (ip(1), ip(2), ip(3), ip(4));
        let la = lips(100, 4);
        // Four members, B sees only itself and C: 2 of 4 is no majority.
        let v = [
            view(a, false, &la),
            view(c, true, &[]),
            view(d, false, &lips(120, 1)),
        ];
        assert!(lips_to_hold(b, &[], &v).is_empty());
        // Three of four: a majority.
        let v = [
            view(a, false, &la),
            view(c, true, &[]),
            view(d, true, &lips(120, 1)),
        ];
        let held: usize = [b, c, d]
            .iter()
            .map(|&m| {
                let others: Vec<MemberView> = v
                    .iter()
                    .filter(|x| x.addr != m)
                    .cloned()
                    .chain((m != b).then(|| view(b, true, &[])))
                    .collect();
                lips_to_hold(m, &[], &others).len()
            })
            .sum();
        assert_eq!(held, 4, "each of A's LIPs once among B, C, D");
        // Two members: the survivor alone holds the other's LIPs.
        assert_eq!(lips_to_hold(b, &[], &[view(a, false, &la)]).len(), 4);
    }

    #[test]
    fn own_lips_other_layouts_and_lips_a_live_peer_names_are_not_taken() {
        let (a, b) = (ip(1), ip(2));
        let shared = Ipv4Addr::new(10, 20, 0, 100);
        let la = vec![shared, Ipv4Addr::new(10, 20, 0, 101)];
        // B has 10.20.0.100 in its own pools: it is B's anyway, not held.
        let held = lips_to_hold(b, &[shared], &[view(a, false, &la)]);
        assert_eq!(held, [(Ipv4Addr::new(10, 20, 0, 101), a)]);
        // A peer of another layout: its LIPs are never taken.
        let mut other = view(a, false, &la);
        other.layout_ok = false;
        assert!(lips_to_hold(b, &[], &[other]).is_empty());
        // A dead peer naming a LIP a live one names too (moved by a reload): not taken.
        let c = ip(3);
        let v = [view(a, false, &la), view(c, true, &[shared])];
        let (by_b, by_c) = (
            lips_to_hold(b, &[], &v),
            lips_to_hold(c, &[shared], &[view(a, false, &la), view(b, true, &[])]),
        );
        assert!(by_b.iter().chain(&by_c).all(|(l, _)| *l != shared));
    }

    #[test]
    fn the_peer_table_holds_from_hellos_and_heartbeat_ages() {
        let own_hello = Hello {
            workers: 2,
            lport_range: (1025, 65535),
            lips: lips(150, 1),
            ..Hello::default()
        };
        let t = PeerTable::new(ip(2), &[ip(1), ip(2)]);
        t.set_local(own_hello.clone());
        let p = &t.peers()[0];
        let now = 5_000_000;
        p.note(Some(0), 0, now);
        p.set_hello(Hello {
            lips: lips(100, 3),
            ..own_hello.clone()
        });
        assert!(t.lips_to_hold(now + 1000).is_empty(), "up");
        let later = now + DOWN_AFTER.as_millis() as u64 + 1;
        assert_eq!(t.lips_to_hold(later).len(), 3);
        assert!(!t.refuses_fullnat_of(p));
        let r = &t.report(later)[0];
        assert_eq!((r.layout, r.lips.len()), (None, 3));
        // Another worker count: refused, named, and not taken over.
        p.set_hello(Hello {
            workers: 4,
            lips: lips(100, 3),
            ..own_hello.clone()
        });
        assert!(t.refuses_fullnat_of(p));
        assert!(t.lips_to_hold(later).is_empty());
        assert_eq!(t.report(later)[0].layout, Some("workers"));
        p.set_hello(Hello {
            lport_range: (2048, 65535),
            ..own_hello
        });
        assert_eq!(t.report(later)[0].layout, Some("port-range"));
    }

    #[test]
    fn a_split_never_gives_one_lip_to_two_members_of_three() {
        // Every way three members can see each other (each sees each other member up or
        // down, independently: 64 combinations, splits and one-way losses included): a
        // LIP is held by at most one member, never by its owner, and a member that sees no other up (the lone side of a split) holds
        // nothing.
        let m = [ip(1), ip(2), ip(3)];
        let lips_of = |i: usize| lips(100 + 10 * i as u8, 5);
        for views in 0u32..64 {
            // bit (2*i + k): member i sees its k-th other member up.
            let mut held: Vec<(Ipv4Addr, usize)> = Vec::new();
            for i in 0..3 {
                let others: Vec<MemberView> = (0..3)
                    .filter(|&j| j != i)
                    .enumerate()
                    .map(|(k, j)| view(m[j], views & (1 << (2 * i + k)) != 0, &lips_of(j)))
                    .collect();
                let sees = others.iter().filter(|o| o.up).count();
                let got = lips_to_hold(m[i], &lips_of(i), &others);
                if sees == 0 {
                    assert!(got.is_empty(), "a lone member holds nothing");
                }
                held.extend(got.into_iter().map(|(l, _)| (l, i)));
            }
            for (l, i) in &held {
                let owner = (0..3).find(|&j| lips_of(j).contains(l)).unwrap();
                assert_ne!(owner, *i);
                let holders: Vec<usize> =
                    held.iter().filter(|(x, _)| x == l).map(|h| h.1).collect();
                assert_eq!(
                    holders.len(),
                    1,
                    "views {views:06b}: {l} held by {holders:?}"
                );
            }
        }
    }

    #[test]
    fn a_peer_restarted_within_the_down_time_is_due_a_bulk_sync() {
        let t = PeerTable::new(ip(2), &[ip(1), ip(2)]);
        let p = &t.peers()[0];
        let now = 9_000_000;
        let hello = |incarnation| Hello {
            workers: 2,
            lport_range: (1025, 65535),
            incarnation,
            ..Hello::default()
        };
        assert!(!t.heard_hello(p, hello(7)));
        p.note(Some(0), 0, now);
        assert!(p.take_bulk_due(), "first message");
        // The same incarnation a second later: nothing due.
        assert!(!t.heard_hello(p, hello(7)));
        p.note(Some(0), 0, now + 1000);
        assert!(!p.take_bulk_due());
        // Restarted: back 500 ms after its last message, never seen down, yet due.
        assert!(t.heard_hello(p, hello(8)));
        p.note(Some(0), 0, now + 1500);
        assert!(p.is_up(now + 1500));
        assert!(
            p.take_bulk_due(),
            "a new incarnation is a peer that came up"
        );
        assert!(!p.take_bulk_due());
        // An older rvs (no incarnation, 0) keeps 0: nothing due.
        assert!(t.heard_hello(p, hello(0)));
        assert!(p.take_bulk_due(), "7 -> 0 is a restart too");
        assert!(!t.heard_hello(p, hello(0)));
        assert!(!p.take_bulk_due());
    }

    #[test]
    fn a_joining_director_has_joined_when_every_peer_up_completed_its_bulk_sync() {
        let t0 = Instant::now();
        let t = PeerTable::new(ip(2), &[ip(1), ip(2), ip(3)]).made_at(t0);
        t.set_local(Hello {
            workers: 2,
            lport_range: (1025, 65535),
            incarnation: 42,
            ..Hello::default()
        });
        let (a, c) = (&t.peers()[0], &t.peers()[1]);
        let now = 7_000_000;
        let listened = t0 + JOIN_LISTEN;
        // Nobody heard yet: not before the listening time, then yes (alone).
        assert!(!t.joined(t0, now));
        assert!(t.joined(listened, now), "no peer up");
        // A and C up, neither done.
        let hello = |done| Hello {
            workers: 2,
            lport_range: (1025, 65535),
            incarnation: 5,
            bulk_done_for: done,
            ..Hello::default()
        };
        for p in [a, c] {
            t.heard_hello(p, hello(0));
            p.note(Some(0), 0, now);
        }
        assert!(!t.joined(listened, now));
        assert_eq!(t.bulk_pending(now), [ip(1), ip(3)]);
        // A's bulk sync done, for another incarnation (a previous life): not counted.
        t.heard_hello(a, hello(41));
        assert!(!a.bulk_received());
        t.heard_hello(a, hello(42));
        assert!(a.bulk_received());
        assert!(!t.joined(listened, now));
        assert_eq!(t.bulk_pending(now), [ip(3)]);
        // C goes down before it is done: A alone counts.
        let later = now + DOWN_AFTER.as_millis() as u64 + 1;
        a.note(Some(0), 0, later);
        assert!(t.joined(listened, later));
        // C done: joined with both up.
        t.heard_hello(c, hello(42));
        c.note(Some(0), 0, later);
        assert!(t.joined(listened, later));
        assert!(t.bulk_pending(later).is_empty());
    }
}
