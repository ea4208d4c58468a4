//! The sync daemon's sockets and thread loops (kernel sockets: they run on the host's
//! network stack, not on DPDK ports).
//!
//! The sync network therefore needs a kernel interface with an IPv4 address: a dedicated
//! link between the directors, or the exception path's tap. Multicast goes out of (and is
//! joined on) the interface whose address is given; a unicast peer replaces the group.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use socket2::{Domain, Protocol, Socket, Type};

use super::auth::{self, AuthError, Signer, SyncKey, Verifier};
use super::group::{Pacer, PeerTable, Refusal};
use super::wire::{self, Hello, MessageBuilder, Record};
use crate::conn::SyncConn;

/// A partial message waits at most this long before it is sent (the kernel's 2 s).
pub const PARTIAL_FLUSH: Duration = Duration::from_secs(2);
/// How long the sender sleeps when every queue is empty (the kernel's `HZ/50`).
pub const IDLE_SLEEP: Duration = Duration::from_millis(20);

/// How long the backup's receive waits before it checks its stop flag.
const RECV_POLL: Duration = Duration::from_millis(100);
/// The backup socket's receive buffer (bursts of messages while the workers are busy).
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Records the sender takes from one worker queue per round before moving to the next.
const DRAIN_PER_QUEUE: usize = 4096;
/// The largest datagram the backup receives.
const MAX_DATAGRAM: usize = 65536;
/// Decoded records kept per message (a message holds at most 255).
const RECORDS_PER_MESSAGE: usize = 256;

/// Where and how a sync daemon talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncNetConfig {
    /// Sync id: written by the master; the backup drops other ids unless it is 0.
    pub syncid: u8,
    /// Maximum message length (`--sync-maxlen`).
    pub maxlen: u16,
    /// Multicast group.
    pub group: Ipv4Addr,
    /// UDP port.
    pub port: u16,
    /// Multicast TTL.
    pub ttl: u8,
    /// Address of the interface to send from and join on (`--mcast-interface`).
    pub iface: Option<Ipv4Addr>,
    /// Unicast peer instead of the group (master side).
    pub peer: Option<Ipv4Addr>,
    /// The sync group's key (`[sync] key_file`): the master signs every message, the
    /// backup refuses messages without a valid MAC and replays (see [`super::auth`]).
    /// `None`: plain messages, as the kernel's.
    pub key: Option<SyncKey>,
}

impl Default for SyncNetConfig {
    fn default() -> Self {
        SyncNetConfig {
            syncid: 0,
            maxlen: super::DEFAULT_MAXLEN,
            group: super::DEFAULT_GROUP,
            port: super::DEFAULT_PORT,
            ttl: 1,
            iface: None,
            peer: None,
            key: None,
        }
    }
}

/// Counters of a sync daemon (both roles).
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages sent.
    pub sent_msgs: AtomicU64,
    /// Records sent.
    pub sent_conns: AtomicU64,
    /// Send failures (the message is lost).
    pub send_errors: AtomicU64,
    /// Messages received.
    pub recv_msgs: AtomicU64,
    /// Records handed to workers.
    pub recv_conns: AtomicU64,
    /// Messages dropped: bad size, other syncid, undecodable header.
    pub recv_dropped: AtomicU64,
    /// Records lost to a malformed record (it and the rest of its message).
    pub decode_errors: AtomicU64,
    /// Well-formed records skipped (mandatory unknown option, persistence engine).
    pub skipped: AtomicU64,
    /// With a key: messages refused for having no authentication trailer.
    pub auth_missing: AtomicU64,
    /// With a key: messages refused for a wrong MAC (forged, altered, another key).
    pub auth_bad_mac: AtomicU64,
    /// With a key: messages refused because their sequence number was seen before.
    pub auth_replayed: AtomicU64,
    /// With a key: messages refused because their sequence number is more than
    /// [`auth::WINDOW`] behind the sender's highest.
    pub auth_too_old: AtomicU64,
    /// Without a key: messages refused because they carry an authentication trailer (a
    /// master with a key; the kernel drops them too).
    pub auth_unexpected: AtomicU64,
    /// Records a worker's queue could not take.
    pub queue_full: AtomicU64,
    /// Group: empty messages sent to every peer after [`super::group::HEARTBEAT`] without
    /// anything else to send (not in `sent_msgs`).
    pub heartbeats_sent: AtomicU64,
    /// Group: messages refused as this director's own (its address as source, or its
    /// sender id in the trailer).
    pub peer_own: AtomicU64,
    /// Group: messages refused because their source is not in the peer list.
    pub peer_unknown: AtomicU64,
    /// Group: messages sent in bulk syncs to a peer that came up (not in `sent_msgs`).
    pub bulk_msgs: AtomicU64,
    /// Group: records sent in bulk syncs (not in `sent_conns`).
    pub bulk_conns: AtomicU64,
    /// Group: FULLNAT records refused because their peer's layout (worker count, port
    /// range) is not this director's.
    pub peer_layout: AtomicU64,
    /// Group: heartbeats whose hello block is malformed (the heartbeat still counts).
    pub bad_hello: AtomicU64,
    /// When the last message was received: milliseconds since the Unix epoch (0: none
    /// yet). Not a counter: not in [`Stats::snapshot`].
    pub last_recv_unix_ms: AtomicU64,
}

impl Stats {
    /// The counters as `name=value` pairs, for listings.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("sent_msgs", l(&self.sent_msgs)),
            ("sent_conns", l(&self.sent_conns)),
            ("send_errors", l(&self.send_errors)),
            ("recv_msgs", l(&self.recv_msgs)),
            ("recv_conns", l(&self.recv_conns)),
            ("recv_dropped", l(&self.recv_dropped)),
            ("decode_errors", l(&self.decode_errors)),
            ("skipped", l(&self.skipped)),
            ("queue_full", l(&self.queue_full)),
            ("auth_missing", l(&self.auth_missing)),
            ("auth_bad_mac", l(&self.auth_bad_mac)),
            ("auth_replayed", l(&self.auth_replayed)),
            ("auth_too_old", l(&self.auth_too_old)),
            ("auth_unexpected", l(&self.auth_unexpected)),
            ("heartbeats_sent", l(&self.heartbeats_sent)),
            ("peer_own", l(&self.peer_own)),
            ("peer_unknown", l(&self.peer_unknown)),
            ("bulk_msgs", l(&self.bulk_msgs)),
            ("bulk_conns", l(&self.bulk_conns)),
            ("peer_layout", l(&self.peer_layout)),
            ("bad_hello", l(&self.bad_hello)),
        ]
    }
}

/// Milliseconds since the Unix epoch of `t` (0 before it).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The master's socket and where it sends.
pub fn master_socket(cfg: &SyncNetConfig) -> io::Result<(UdpSocket, SocketAddr)> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let dest = match cfg.peer {
        Some(p) => SocketAddrV4::new(p, cfg.port),
        None => {
            if let Some(a) = cfg.iface {
                s.set_multicast_if_v4(&a)?;
            }
            s.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
            s.set_multicast_loop_v4(false)?;
            SocketAddrV4::new(cfg.group, cfg.port)
        }
    };
    let local = SocketAddrV4::new(cfg.iface.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    s.bind(&local.into())?;
    Ok((s.into(), dest.into()))
}

/// The backup's socket: bound to the port, member of the multicast group on the
/// interface unless `unicast` (a group of unicast peers).
pub fn backup_socket(cfg: &SyncNetConfig, unicast: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port).into())?;
    if cfg.peer.is_none() && !unicast {
        s.join_multicast_v4(&cfg.group, &cfg.iface.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
    }
    s.set_read_timeout(Some(RECV_POLL))?;
    let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
    Ok(s.into())
}

/// The id a master's signed messages name it by: its sync address (else the process id).
pub fn sender_id(cfg: &SyncNetConfig) -> u32 {
    cfg.iface.map_or_else(std::process::id, u32::from)
}

/// The master's signer when it has a key, shared by the master loop and the bulk syncs
/// of a group so that their messages take their sequence numbers from one counter (a
/// second counter would make the peers refuse one of them as too old).
pub fn shared_signer(cfg: &SyncNetConfig) -> Option<Mutex<Signer>> {
    cfg.key
        .map(|k| Mutex::new(Signer::new(&k, sender_id(cfg), auth::first_seq())))
}

/// `msg` as it goes on the wire: signed when there is a signer, with `send` called on it
/// while the signer is held (so that sequence numbers leave in order).
fn signed<R>(signer: Option<&Mutex<Signer>>, msg: &[u8], send: impl FnOnce(&[u8]) -> R) -> R {
    match signer {
        Some(m) => {
            let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
            send(s.sign(msg))
        }
        None => send(msg),
    }
}

/// The master loop: drains the workers' queues into messages and sends them, a full
/// message at once, a partial one after [`PARTIAL_FLUSH`], until `stop`. With a key,
/// each message carries its trailer, and the messages are shorter by its length so that
/// the datagram stays within `maxlen`. Every message goes to each of `dests` (the group
/// or the unicast peer; a group's peers); with `heartbeat` (a group), after that long
/// without anything sent, the partial message goes at once, or an empty message when
/// there is none.
pub fn run_master(
    sock: &UdpSocket,
    dests: &[SocketAddr],
    cfg: &SyncNetConfig,
    queues: &[ArrayQueue<SyncConn>],
    stop: &AtomicBool,
    stats: &Stats,
    heartbeat: Option<Duration>,
) {
    let signer = shared_signer(cfg);
    run_master_signed(
        sock,
        dests,
        cfg,
        queues,
        stop,
        stats,
        heartbeat,
        signer.as_ref(),
        None,
    );
}

/// The message length a master uses: `maxlen`, less the trailer with a key.
fn message_len(cfg: &SyncNetConfig) -> usize {
    let maxlen = usize::from(cfg.maxlen).min(wire::MAX_UDP_PAYLOAD);
    if cfg.key.is_some() {
        maxlen.saturating_sub(auth::TRAILER_LEN)
    } else {
        maxlen
    }
}

/// [`run_master`] with the signer given (one shared with the bulk syncs,
/// [`shared_signer`]). In a group (`group`), each heartbeat carries this director's
/// hello ([`PeerTable::local`]: its layout and LIPs), and a director that is never idle
/// sends one every [`super::group::HELLO_EVERY`] anyway.
#[allow(clippy::too_many_arguments)]
pub fn run_master_signed(
    sock: &UdpSocket,
    dests: &[SocketAddr],
    cfg: &SyncNetConfig,
    queues: &[ArrayQueue<SyncConn>],
    stop: &AtomicBool,
    stats: &Stats,
    heartbeat: Option<Duration>,
    signer: Option<&Mutex<Signer>>,
    group: Option<&PeerTable>,
) {
    let mut b = MessageBuilder::new(cfg.syncid, message_len(cfg));
    let mut first: Option<Instant> = None;
    let last_sent = std::cell::Cell::new(Instant::now());
    let last_hello = std::cell::Cell::new(None::<Instant>);
    let send_hello = |g: &PeerTable| {
        // One per peer: each names the peer's incarnation if its bulk sync is done.
        let mut local = g.local();
        for p in g.peers() {
            local.bulk_done_for = p.bulk_sent_for.load(Ordering::Relaxed);
            let hello = wire::encode_hello(cfg.syncid, &local, message_len(cfg));
            let dest = SocketAddr::from((p.addr, cfg.port));
            signed(signer, &hello, |bytes| {
                send_to_all(sock, bytes, &[dest], stats, true, 0)
            });
        }
        last_hello.set(Some(Instant::now()));
        last_sent.set(Instant::now());
    };
    let send = |b: &mut MessageBuilder, beat: bool| {
        if b.is_empty() && !beat {
            return;
        }
        match group.filter(|_| beat && b.is_empty()) {
            Some(g) => send_hello(g),
            None => signed(signer, b.bytes(), |bytes| {
                send_to_all(sock, bytes, dests, stats, beat && b.is_empty(), b.len())
            }),
        }
        b.reset();
        last_sent.set(Instant::now());
    };

    while !stop.load(Ordering::Acquire) {
        let mut got = 0usize;
        for q in queues {
            for _ in 0..DRAIN_PER_QUEUE {
                let Some(c) = q.pop() else { break };
                got += 1;
                if !b.push(&c) {
                    send(&mut b, false);
                    first = None;
                    let _ = b.push(&c);
                }
                first.get_or_insert_with(Instant::now);
                if b.is_full() {
                    send(&mut b, false);
                    first = None;
                }
            }
        }
        if first.is_some_and(|t| t.elapsed() >= PARTIAL_FLUSH) {
            send(&mut b, false);
            first = None;
        }
        if heartbeat.is_some_and(|h| last_sent.get().elapsed() >= h) {
            // In a group the peers hear from a member at least every heartbeat: a
            // partial message then goes early (else they could see it silent for the
            // partial flush's 2 s plus a heartbeat, close to the 3 s that make it down).
            send(&mut b, true);
            first = None;
        }
        if let Some(g) = group {
            if last_hello
                .get()
                .is_none_or(|t| t.elapsed() >= super::group::HELLO_EVERY)
            {
                send_hello(g);
            }
        }
        if got == 0 {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
    send(&mut b, false);
}

/// Sends `bytes` to each of `dests`, counting it as a heartbeat (`beat`) or as a message
/// of `records` records.
fn send_to_all(
    sock: &UdpSocket,
    bytes: &[u8],
    dests: &[SocketAddr],
    stats: &Stats,
    beat: bool,
    records: usize,
) {
    for &dest in dests {
        match sock.send_to(bytes, dest) {
            Ok(_) if beat => {
                stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                stats.sent_msgs.fetch_add(1, Ordering::Relaxed);
                stats
                    .sent_conns
                    .fetch_add(records as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// After a complete bulk sync to `peer` (whose hello named `incarnation`): notes it in
/// the peer's entry (every later hello to it names the incarnation) and sends it a hello
/// saying so at once, its sessions all sent.
pub fn send_bulk_done(
    sock: &UdpSocket,
    group: &PeerTable,
    peer: &super::group::Peer,
    incarnation: u64,
    cfg: &SyncNetConfig,
    signer: Option<&Mutex<Signer>>,
    stats: &Stats,
) {
    peer.bulk_sent_for.store(incarnation, Ordering::Relaxed);
    let mut local = group.local();
    local.bulk_done_for = incarnation;
    let hello = wire::encode_hello(cfg.syncid, &local, message_len(cfg));
    let dest = SocketAddr::from((peer.addr, cfg.port));
    signed(signer, &hello, |bytes| {
        send_to_all(sock, bytes, &[dest], stats, true, 0)
    });
}

/// How a bulk sync went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Records sent.
    pub records: u64,
    /// Messages sent.
    pub messages: u64,
    /// Whether every worker's table was walked to its end (`false`: stopped, or a worker
    /// did not answer).
    pub complete: bool,
}

/// One bulk sync to `dest` (a peer that came up): the records of every session and
/// template of `workers` workers, taken a chunk at a time with `fetch(worker, cursor,
/// buffer)` (which appends a chunk's records to the buffer and returns the cursor to go
/// on from, `Some(None)` at the end of the worker's table, `None` when the worker did not
/// answer), batched into messages of the master's length and sent to `dest` alone, at most
/// `per_ms` messages per millisecond ([`Pacer`]). Stops early when `stop` is set.
#[allow(clippy::too_many_arguments)]
pub fn run_bulk(
    sock: &UdpSocket,
    dest: SocketAddr,
    cfg: &SyncNetConfig,
    signer: Option<&Mutex<Signer>>,
    workers: usize,
    mut fetch: impl FnMut(usize, u32, &mut Vec<SyncConn>) -> Option<Option<u32>>,
    stop: &AtomicBool,
    stats: &Stats,
    per_ms: u32,
) -> BulkOutcome {
    let mut b = MessageBuilder::new(cfg.syncid, message_len(cfg));
    let mut pacer = Pacer::new(Instant::now(), per_ms);
    let mut out = BulkOutcome {
        records: 0,
        messages: 0,
        complete: true,
    };
    let mut send = |b: &mut MessageBuilder, out: &mut BulkOutcome| {
        if b.is_empty() {
            return;
        }
        let wait = pacer.next(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let ok = signed(signer, b.bytes(), |bytes| sock.send_to(bytes, dest).is_ok());
        if ok {
            out.messages += 1;
            out.records += b.len() as u64;
            stats.bulk_msgs.fetch_add(1, Ordering::Relaxed);
            stats
                .bulk_conns
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        } else {
            stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        b.reset();
    };
    let mut chunk = Vec::new();
    'workers: for w in 0..workers {
        let mut cursor = 0u32;
        loop {
            if stop.load(Ordering::Acquire) {
                out.complete = false;
                break 'workers;
            }
            chunk.clear();
            let Some(next) = fetch(w, cursor, &mut chunk) else {
                out.complete = false;
                break;
            };
            for c in &chunk {
                if !b.push(c) {
                    send(&mut b, &mut out);
                    let _ = b.push(c);
                }
                if b.is_full() {
                    send(&mut b, &mut out);
                }
            }
            match next {
                Some(n) => cursor = n,
                None => break,
            }
        }
    }
    send(&mut b, &mut out);
    out
}

/// The backup loop: receives, checks and decodes messages, and hands every record to
/// `deliver` (which returns false when the owner's queue is full), until `stop`. In a
/// group (`group`), a datagram is first matched to its peer: this director's own and
/// those of an address not in the list are refused and counted, and each peer's
/// messages are counted in its entry.
pub fn run_backup(
    sock: &UdpSocket,
    cfg: &SyncNetConfig,
    group: Option<&PeerTable>,
    stop: &AtomicBool,
    stats: &Stats,
    mut deliver: impl FnMut(SyncConn) -> bool,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut rx = Receiver::new(cfg);
    while !stop.load(Ordering::Acquire) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        stats.recv_msgs.fetch_add(1, Ordering::Relaxed);
        let now = unix_ms(std::time::SystemTime::now());
        stats.last_recv_unix_ms.store(now, Ordering::Relaxed);
        let datagram = &buf[..n];
        let peer = match group {
            None => None,
            Some(g) => {
                let src = match from {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(a) => a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                match g.admit(src, datagram, cfg.key.is_some()) {
                    Ok(p) => Some(p),
                    Err(r) => {
                        let c = match r {
                            Refusal::Own => &stats.peer_own,
                            Refusal::Unknown => &stats.peer_unknown,
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
        };
        let before = stats.recv_conns.load(Ordering::Relaxed);
        let refused_before = stats.peer_layout.load(Ordering::Relaxed);
        let refuse = match (group, peer) {
            (Some(g), Some(p)) => g.refuses_fullnat_of(p),
            _ => false,
        };
        rx.set_refuse_fullnat(refuse);
        let records = rx.process(datagram, stats, &mut deliver);
        if let Some(p) = peer {
            let installed = stats.recv_conns.load(Ordering::Relaxed) - before;
            let refused = stats.peer_layout.load(Ordering::Relaxed) - refused_before;
            p.refused_layout.fetch_add(refused, Ordering::Relaxed);
            if let (Some(h), Some(g)) = (rx.take_hello(), group) {
                g.heard_hello(p, h);
            }
            p.note(records, installed, now);
        }
    }
}

/// What the backup thread does with each datagram: with a key, checks its trailer and
/// sequence number first; then [`process_message`].
#[derive(Debug)]
pub struct Receiver {
    syncid: u8,
    verifier: Option<Verifier>,
    recs: Vec<Record>,
    /// FULLNAT records of the next datagrams are refused (their peer's layout differs).
    refuse_fullnat: bool,
    /// The hello of the last accepted heartbeat that carried one.
    hello: Option<Hello>,
}

impl Receiver {
    /// A receiver for the backup daemon `cfg` that has seen nothing yet.
    pub fn new(cfg: &SyncNetConfig) -> Receiver {
        Receiver {
            syncid: cfg.syncid,
            verifier: cfg.key.as_ref().map(Verifier::new),
            recs: Vec::with_capacity(RECORDS_PER_MESSAGE),
            refuse_fullnat: false,
            hello: None,
        }
    }

    /// Refuses (and counts as `peer_layout`) the FULLNAT records of the datagrams that
    /// follow, or stops refusing them.
    pub fn set_refuse_fullnat(&mut self, on: bool) {
        self.refuse_fullnat = on;
    }

    /// The hello of the last accepted heartbeat that carried one, taken.
    pub fn take_hello(&mut self) -> Option<Hello> {
        self.hello.take()
    }

    /// Checks one datagram and delivers its records. With a key, a datagram without a
    /// valid MAC, or a replay, is counted by its reason and nothing of it is delivered;
    /// without one, a datagram carrying a trailer is counted as `auth_unexpected`.
    /// Returns the number of records of an accepted message (0: an empty one, a group's
    /// heartbeat), `None` for a refused or dropped one.
    pub fn process(
        &mut self,
        datagram: &[u8],
        stats: &Stats,
        deliver: &mut impl FnMut(SyncConn) -> bool,
    ) -> Option<usize> {
        let msg = match &mut self.verifier {
            Some(v) => match v.verify(datagram) {
                Ok(m) => m,
                Err(e) => {
                    let c = match e {
                        AuthError::Missing => &stats.auth_missing,
                        AuthError::BadMac => &stats.auth_bad_mac,
                        AuthError::Replayed => &stats.auth_replayed,
                        AuthError::TooOld => &stats.auth_too_old,
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            },
            None => {
                if auth::trailer(datagram).is_some() {
                    stats.auth_unexpected.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                datagram
            }
        };
        let n = process_message_with(
            msg,
            self.syncid,
            &mut self.recs,
            stats,
            self.refuse_fullnat,
            deliver,
        );
        if n == Some(0) {
            match wire::decode_hello(msg) {
                Ok(h) => self.hello = h,
                Err(_) => {
                    stats.bad_hello.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        n
    }
}

/// Checks and decodes one received message and delivers its records; what the backup
/// thread does per datagram. Returns the number of records the header announces
/// (`None`: the message was dropped).
pub fn process_message(
    msg: &[u8],
    syncid: u8,
    recs: &mut Vec<Record>,
    stats: &Stats,
    deliver: &mut impl FnMut(SyncConn) -> bool,
) -> Option<usize> {
    process_message_with(msg, syncid, recs, stats, false, deliver)
}

/// [`process_message`]; with `refuse_fullnat`, FULLNAT records (those with a local
/// address) are not delivered but counted as `peer_layout`.
pub fn process_message_with(
    msg: &[u8],
    syncid: u8,
    recs: &mut Vec<Record>,
    stats: &Stats,
    refuse_fullnat: bool,
    deliver: &mut impl FnMut(SyncConn) -> bool,
) -> Option<usize> {
    let nr = match wire::decode_header(msg) {
        Ok(h) if syncid == 0 || h.syncid == syncid => usize::from(h.nr_conns),
        _ => {
            stats.recv_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    if wire::decode(msg, recs).is_err() {
        // The records before the malformed one stand, as in the kernel.
        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
    }
    for r in recs.drain(..) {
        match r {
            Record::Conn(c) if refuse_fullnat && c.local.is_some() => {
                stats.peer_layout.fetch_add(1, Ordering::Relaxed);
            }
            Record::Conn(c) => {
                if deliver(c) {
                    stats.recv_conns.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Record::Skipped(_) => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Some(nr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Addr;
    use std::sync::Arc;

    fn conn(i: u16) -> SyncConn {
        crate::sync::test_conn(10000 + i)
    }

    #[test]
    fn syncid_filter_and_size_check() {
        let stats = Stats::default();
        let mut b = MessageBuilder::new(5, 1472);
        b.push(&conn(1));
        let mut got = Vec::new();
        let mut recs = Vec::new();
        process_message(b.bytes(), 6, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert!(got.is_empty());
        process_message(b.bytes(), 0, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        process_message(b.bytes(), 5, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert_eq!(got.len(), 2);
        process_message(&b.bytes()[..40], 0, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert_eq!(got.len(), 2);
        assert_eq!(stats.recv_dropped.load(Ordering::Relaxed), 2);
    }

    fn key(b: u8) -> SyncKey {
        SyncKey::new(&[b; 32]).unwrap()
    }

    fn delivered(rx: &mut Receiver, datagram: &[u8], stats: &Stats) -> Vec<u16> {
        let mut got = Vec::new();
        rx.process(datagram, stats, &mut |c| {
            got.push(c.cport);
            true
        });
        got
    }

    #[test]
    fn a_backup_with_a_key_counts_each_refusal_and_installs_nothing_from_it() {
        let cfg = SyncNetConfig {
            key: Some(key(1)),
            ..SyncNetConfig::default()
        };
        let stats = Stats::default();
        let mut rx = Receiver::new(&cfg);
        let mut b = MessageBuilder::new(0, 1472);
        b.push(&conn(1));
        let plain = b.bytes().to_vec();
        let mut s = Signer::new(&key(1), 9, 1_000_000);
        let good = s.sign(&plain).to_vec();
        let forged = Signer::new(&key(2), 9, 2_000_000).sign(&plain).to_vec();
        let old = Signer::new(&key(1), 9, 10).sign(&plain).to_vec();
        assert!(delivered(&mut rx, &plain, &stats).is_empty());
        assert!(delivered(&mut rx, &forged, &stats).is_empty());
        assert_eq!(delivered(&mut rx, &good, &stats), [10001]);
        assert!(delivered(&mut rx, &good, &stats).is_empty());
        assert!(delivered(&mut rx, &old, &stats).is_empty());
        let mut t = s.sign(&plain).to_vec();
        t[20] ^= 1;
        assert!(delivered(&mut rx, &t, &stats).is_empty());
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (
                l(&stats.auth_missing),
                l(&stats.auth_bad_mac),
                l(&stats.auth_replayed),
                l(&stats.auth_too_old),
                l(&stats.auth_unexpected),
                l(&stats.recv_conns),
                l(&stats.recv_dropped)
            ),
            (1, 2, 1, 1, 0, 1, 0)
        );
        // An authentic message of another sync id is still dropped by the syncid filter.
        let cfg5 = SyncNetConfig { syncid: 5, ..cfg };
        let mut rx5 = Receiver::new(&cfg5);
        assert!(delivered(&mut rx5, s.sign(&plain), &stats).is_empty());
        assert_eq!(l(&stats.recv_dropped), 1);
    }

    #[test]
    fn a_backup_without_a_key_refuses_signed_messages_and_takes_plain_ones() {
        let stats = Stats::default();
        let mut rx = Receiver::new(&SyncNetConfig::default());
        let mut b = MessageBuilder::new(0, 1472);
        b.push(&conn(1));
        let signed = Signer::new(&key(1), 9, 1).sign(b.bytes()).to_vec();
        assert!(delivered(&mut rx, &signed, &stats).is_empty());
        assert_eq!(stats.auth_unexpected.load(Ordering::Relaxed), 1);
        assert_eq!(stats.recv_dropped.load(Ordering::Relaxed), 0);
        // As the kernel sees it: the header's size is not the datagram's length.
        assert!(matches!(
            wire::decode_header(&signed),
            Err(wire::DecodeError::SizeMismatch {
                header: 44,
                actual: 76
            })
        ));
        assert_eq!(delivered(&mut rx, b.bytes(), &stats), [10001]);
        // Garbage of a trailer's length is not taken for one.
        let mut junk = b.bytes().to_vec();
        junk.extend_from_slice(&[0; auth::TRAILER_LEN]);
        assert!(delivered(&mut rx, &junk, &stats).is_empty());
        assert_eq!(stats.recv_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(stats.auth_unexpected.load(Ordering::Relaxed), 1);
    }

    /// A master with a key over loopback to a plain socket: every datagram is a message
    /// and its trailer within `maxlen`, which a kernel backup would drop (size mismatch).
    #[test]
    fn a_keyed_master_sends_trailers_within_maxlen() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = rx.local_addr().unwrap().port();
        let cfg = SyncNetConfig {
            port,
            peer: Some(Ipv4Addr::LOCALHOST),
            iface: Some(Ipv4Addr::LOCALHOST),
            key: Some(key(3)),
            ..SyncNetConfig::default()
        };
        let (tx, dest) = master_socket(&cfg).unwrap();
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> = Arc::new(vec![ArrayQueue::new(1024)]);
        for i in 0..100u16 {
            queues[0].push(conn(i)).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let (q2, s2, st2) = (queues.clone(), stop.clone(), stats.clone());
        let m = std::thread::spawn(move || run_master(&tx, &[dest], &cfg, &q2, &s2, &st2, None));
        let mut v = Verifier::new(&key(3));
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while n < 100 {
            let len = rx.recv(&mut buf).expect("a message");
            let d = &buf[..len];
            assert!(len <= 1472, "{len} bytes");
            assert!(wire::decode_header(d).is_err(), "a kernel drops it");
            let t = auth::trailer(d).expect("a trailer");
            assert_eq!(t.sender, u32::from(Ipv4Addr::LOCALHOST));
            let msg = v.verify(d).expect("verifies");
            n += usize::from(wire::decode_header(msg).unwrap().nr_conns);
        }
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        assert_eq!(n, 100);
        assert_eq!(
            stats.sent_msgs.load(Ordering::Relaxed),
            3,
            "39 + 39 + 22 records"
        );
    }

    /// Master and backup threads with a key over loopback, and a forger sending to the
    /// backup's port: the master's records all arrive; a plain message, one signed with
    /// another key, an altered one, a replay and an old one install nothing and are
    /// counted.
    #[test]
    fn keyed_master_to_keyed_backup_over_loopback_refuses_forgeries() {
        let port = 20000 + ((std::process::id() + 7919) % 20000) as u16;
        let cfg = SyncNetConfig {
            syncid: 3,
            port,
            peer: Some(Ipv4Addr::LOCALHOST),
            iface: Some(Ipv4Addr::LOCALHOST),
            key: Some(key(4)),
            ..SyncNetConfig::default()
        };
        let rx = backup_socket(&cfg, false).expect("backup socket");
        let (tx, dest) = master_socket(&cfg).expect("master socket");
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> =
            Arc::new((0..2).map(|_| ArrayQueue::new(4096)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let rstats = Arc::new(Stats::default());
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (g2, s3, rs2) = (got.clone(), stop.clone(), rstats.clone());
        let b = std::thread::spawn(move || {
            run_backup(&rx, &cfg, None, &s3, &rs2, |c| {
                g2.lock().unwrap().push(c.cport);
                true
            })
        });
        // The forger: messages of the right format for sessions the master never had.
        let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fake = |cport: u16| {
            let mut b = MessageBuilder::new(3, 1472);
            let mut c = conn(0);
            c.cport = cport;
            c.caddr = Addr::v4(192, 0, 2, 66);
            b.push(&c);
            b.bytes().to_vec()
        };
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        forger.send_to(&fake(60001), to).unwrap();
        let wrong = Signer::new(&key(5), 1, auth::first_seq())
            .sign(&fake(60002))
            .to_vec();
        forger.send_to(&wrong, to).unwrap();
        let mut holder = Signer::new(&key(4), 77, 5_000);
        let once = holder.sign(&fake(60003)).to_vec();
        forger.send_to(&once, to).unwrap();
        let mut altered = holder.sign(&fake(60004)).to_vec();
        altered[8 + 24] ^= 1; // the client address
        forger.send_to(&altered, to).unwrap();
        let old = Signer::new(&key(4), 77, 5_000 - auth::WINDOW - 1)
            .sign(&fake(60005))
            .to_vec();
        forger.send_to(&old, to).unwrap();
        forger.send_to(&once, to).unwrap();

        let (q2, s2, st2) = (queues.clone(), stop.clone(), stats.clone());
        let m = std::thread::spawn(move || run_master(&tx, &[dest], &cfg, &q2, &s2, &st2, None));
        for i in 0..1000u16 {
            queues[usize::from(i % 2)].push(conn(i)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().len() < 1001 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the forger sent last has arrived before the master's last message.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        b.join().unwrap();
        let v = got.lock().unwrap().clone();
        let real: std::collections::BTreeSet<u16> =
            v.iter().copied().filter(|&p| p < 60000).collect();
        assert_eq!(real.len(), 1000, "every record of the master");
        let forged: Vec<u16> = v.iter().copied().filter(|&p| p >= 60000).collect();
        assert_eq!(forged, [60003], "only the key holder's message, once");
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (
                l(&rstats.auth_missing),
                l(&rstats.auth_bad_mac),
                l(&rstats.auth_replayed),
                l(&rstats.auth_too_old)
            ),
            (1, 2, 1, 1)
        );
        assert_eq!(l(&rstats.recv_msgs), l(&stats.sent_msgs) + 6);
    }

    /// A group member's backup daemon on `own`:`port` over loopback, in a thread: the
    /// thread, its stop flag, its counters and the client ports of the records it took.
    #[allow(clippy::type_complexity)]
    fn group_backup(
        port: u16,
        own: Ipv4Addr,
        group: &Arc<PeerTable>,
    ) -> (
        std::thread::JoinHandle<()>,
        Arc<AtomicBool>,
        Arc<Stats>,
        Arc<std::sync::Mutex<Vec<u16>>>,
    ) {
        let cfg = SyncNetConfig {
            port,
            iface: Some(own),
            ..SyncNetConfig::default()
        };
        let rx = backup_socket(&cfg, true).expect("backup socket");
        let stop = Arc::new(AtomicBool::new(false));
        let rstats = Arc::new(Stats::default());
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (g2, s3, rs2, gr) = (got.clone(), stop.clone(), rstats.clone(), group.clone());
        let b = std::thread::spawn(move || {
            run_backup(&rx, &cfg, Some(&gr), &s3, &rs2, |c| {
                g2.lock().unwrap().push(c.cport);
                true
            })
        });
        (b, stop, rstats, got)
    }

    /// A group member's receiving thread over loopback: a peer's master (127.0.0.2)
    /// delivers its records and heartbeats, counted in its entry; a sender not in the list
    /// (127.0.0.3) and one with this director's own address (127.0.0.1) deliver nothing
    /// and are counted.
    #[test]
    fn a_group_member_takes_its_peers_messages_only() {
        let port = 20000 + ((std::process::id() + 3571) % 20000) as u16;
        let own = Ipv4Addr::LOCALHOST;
        let peer = Ipv4Addr::new(127, 0, 0, 2);
        let group = Arc::new(PeerTable::new(own, &[own, peer]));
        let (b, stop, rstats, got) = group_backup(port, own, &group);
        let mut m = MessageBuilder::new(0, 1472);
        m.push(&conn(1));
        let to = SocketAddr::from((own, port));
        for from in [Ipv4Addr::new(127, 0, 0, 3), own] {
            let s = UdpSocket::bind((from, 0)).unwrap();
            s.send_to(m.bytes(), to).unwrap();
        }
        let mcfg = SyncNetConfig {
            port,
            iface: Some(peer),
            ..SyncNetConfig::default()
        };
        let (tx, _) = master_socket(&mcfg).unwrap();
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> = Arc::new(vec![ArrayQueue::new(64)]);
        for i in 0..10u16 {
            queues[0].push(conn(i)).unwrap();
        }
        let mstats = Arc::new(Stats::default());
        let (q2, s2, st2) = (queues.clone(), stop.clone(), mstats.clone());
        let beat = Some(Duration::from_millis(100));
        let m = std::thread::spawn(move || run_master(&tx, &[to], &mcfg, &q2, &s2, &st2, beat));
        let p = &group.peers()[0];
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.heartbeats.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        b.join().unwrap();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v = got.lock().unwrap().clone();
        v.sort_unstable();
        assert_eq!(v, (10000..10010).collect::<Vec<u16>>());
        assert_eq!((l(&rstats.peer_unknown), l(&rstats.peer_own)), (1, 1));
        let r = p.report(unix_ms(std::time::SystemTime::now()), &Hello::default());
        assert_eq!(
            (r.addr, r.up, r.msgs, r.conns, r.refused),
            (peer, true, 1, 10, 0)
        );
        assert!(r.heartbeats >= 2);
        assert_eq!(
            l(&mstats.sent_msgs),
            1,
            "heartbeats are not counted as messages"
        );
        assert!(l(&mstats.heartbeats_sent) >= 2);
    }

    /// A group member's heartbeats carry its hello over loopback: the receiver learns
    /// the peer's LIPs and layout; the peer has 4 workers where this director has 2, so
    /// its FULLNAT records are refused and counted (per peer and as `peer_layout`) while
    /// its other records are delivered.
    #[test]
    fn heartbeats_carry_the_hello_and_another_layouts_fullnat_records_are_refused() {
        let port = 20000 + ((std::process::id() + 12011) % 20000) as u16;
        let own = Ipv4Addr::LOCALHOST;
        let peer = Ipv4Addr::new(127, 0, 0, 2);
        let group = Arc::new(PeerTable::new(own, &[own, peer]));
        let layout = Hello {
            workers: 2,
            lport_range: (1025, 65535),
            ..Hello::default()
        };
        group.set_local(layout.clone());
        let theirs = Arc::new(PeerTable::new(peer, &[own, peer]));
        let peer_lips = vec![Ipv4Addr::new(10, 20, 0, 210), Ipv4Addr::new(10, 20, 0, 211)];
        theirs.set_local(Hello {
            workers: 4,
            lips: peer_lips.clone(),
            ..layout
        });
        let (b, stop, rstats, got) = group_backup(port, own, &group);
        let mcfg = SyncNetConfig {
            port,
            iface: Some(peer),
            ..SyncNetConfig::default()
        };
        let (tx, _) = master_socket(&mcfg).unwrap();
        let to = SocketAddr::from((own, port));
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> = Arc::new(vec![ArrayQueue::new(64)]);
        let mstats = Arc::new(Stats::default());
        let (q2, s2, st2, th) = (queues.clone(), stop.clone(), mstats.clone(), theirs.clone());
        let beat = Some(Duration::from_millis(50));
        let m = std::thread::spawn(move || {
            run_master_signed(&tx, &[to], &mcfg, &q2, &s2, &st2, beat, None, Some(&th))
        });
        let p = &group.peers()[0];
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.hello().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let h = p.hello().expect("the peer's hello arrived");
        assert_eq!((h.workers, h.lips.clone()), (4, peer_lips));
        assert!(group.refuses_fullnat_of(p));
        for i in 0..10u16 {
            let mut c = conn(i);
            if i % 2 == 1 {
                c.flags = 5;
                c.local = Some((crate::flow::Addr::v4(10, 20, 0, 210), 2000 + i));
            }
            queues[0].push(c).unwrap();
        }
        while p.msgs.load(Ordering::Relaxed) < 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        b.join().unwrap();
        let mut v = got.lock().unwrap().clone();
        v.sort_unstable();
        assert_eq!(v, [10000, 10002, 10004, 10006, 10008]);
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(l(&rstats.peer_layout), 5);
        assert_eq!(l(&p.refused_layout), 5);
        assert_eq!(l(&rstats.bad_hello), 0);
        let r = &group.report(unix_ms(std::time::SystemTime::now()))[0];
        assert_eq!(
            (r.layout, r.refused_layout, r.conns),
            (Some("workers"), 5, 5)
        );
    }

    /// Master and backup threads over loopback (unicast): every record arrives, in
    /// MTU-sized messages.
    #[test]
    fn master_to_backup_over_loopback() {
        let port = 20000 + (std::process::id() % 20000) as u16;
        let cfg = SyncNetConfig {
            syncid: 3,
            port,
            peer: Some(Ipv4Addr::LOCALHOST),
            iface: Some(Ipv4Addr::LOCALHOST),
            ..SyncNetConfig::default()
        };
        let rx = backup_socket(&cfg, false).expect("backup socket");
        let (tx, dest) = master_socket(&cfg).expect("master socket");
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> =
            Arc::new((0..2).map(|_| ArrayQueue::new(4096)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let rstats = Arc::new(Stats::default());
        let (q2, s2, st2) = (queues.clone(), stop.clone(), stats.clone());
        let m = std::thread::spawn(move || run_master(&tx, &[dest], &cfg, &q2, &s2, &st2, None));
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (g2, s3, rs2) = (got.clone(), stop.clone(), rstats.clone());
        let b = std::thread::spawn(move || {
            run_backup(&rx, &cfg, None, &s3, &rs2, |c| {
                g2.lock().unwrap().push(c.cport);
                true
            })
        });
        for i in 0..1000u16 {
            queues[usize::from(i % 2)].push(conn(i)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().len() < 1000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        b.join().unwrap();
        let mut v = got.lock().unwrap().clone();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 1000);
        let msgs = stats.sent_msgs.load(Ordering::Relaxed);
        assert!(
            (1000 / 40..=1000 / 40 + 4).contains(&msgs),
            "{msgs} messages"
        );
    }
    /// A bulk sync over loopback, with a key and a master's signer shared with it: every
    /// record of two workers' tables arrives once, in messages to the one peer, each
    /// verifying in sequence with the master's; the pacing spreads them over time; a
    /// worker that does not answer leaves the sync incomplete.
    #[test]
    fn a_bulk_sync_sends_every_record_paced_and_signed_in_sequence() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let dest = rx.local_addr().unwrap();
        let cfg = SyncNetConfig {
            port: dest.port(),
            iface: Some(Ipv4Addr::LOCALHOST),
            key: Some(key(6)),
            ..SyncNetConfig::default()
        };
        let (tx, _) = master_socket(&cfg).unwrap();
        let signer = shared_signer(&cfg).unwrap();
        let first = signer.lock().unwrap().next_seq();
        // Two workers' tables, walked 7 records at a time.
        let tables: Vec<Vec<SyncConn>> = vec![
            (0..600u16).map(conn).collect(),
            (600..1000u16).map(conn).collect(),
        ];
        let mut calls = 0;
        let fetch = |w: usize, cursor: u32, out: &mut Vec<SyncConn>| {
            calls += 1;
            let t = &tables[w];
            let end = (cursor as usize + 7).min(t.len());
            out.extend_from_slice(&t[cursor as usize..end]);
            Some((end < t.len()).then_some(end as u32))
        };
        let stats = Stats::default();
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let out = run_bulk(&tx, dest, &cfg, Some(&signer), 2, fetch, &stop, &stats, 1);
        let took = t0.elapsed();
        assert!(out.complete);
        assert_eq!(out.records, 1000);
        assert_eq!(calls, 86 + 58);
        // 1000 records of 40-odd per message, one message per millisecond at most.
        let msgs = out.messages;
        assert!(
            (1000 / 40..=1000 / 36 + 2).contains(&msgs),
            "{msgs} messages"
        );
        assert!(took >= Duration::from_millis(msgs - 1), "{took:?}");
        assert_eq!(
            (
                stats.bulk_msgs.load(Ordering::Relaxed),
                stats.bulk_conns.load(Ordering::Relaxed),
                stats.sent_msgs.load(Ordering::Relaxed)
            ),
            (msgs, 1000, 0),
            "bulk messages are counted apart"
        );
        assert_eq!(signer.lock().unwrap().next_seq(), first + msgs);
        let mut v = Verifier::new(&key(6));
        let mut ports = Vec::new();
        let mut buf = [0u8; 2048];
        for i in 0..msgs {
            let len = rx.recv(&mut buf).expect("a message");
            let t = auth::trailer(&buf[..len]).expect("signed");
            assert_eq!(t.seq, first + i, "in sequence");
            let msg = v.verify(&buf[..len]).expect("verifies");
            let stats = Stats::default();
            let mut rx = Receiver::new(&SyncNetConfig::default());
            rx.process(msg, &stats, &mut |c| {
                ports.push(c.cport);
                true
            });
        }
        ports.sort_unstable();
        assert_eq!(ports, (10000..11000).collect::<Vec<u16>>());
        // A worker that does not answer: the others are still sent, the sync incomplete.
        let lost = run_bulk(
            &tx,
            dest,
            &cfg,
            Some(&signer),
            2,
            |w, c, out| {
                if w == 0 {
                    return None;
                }
                out.extend_from_slice(&tables[1][c as usize..]);
                Some(None)
            },
            &stop,
            &stats,
            100,
        );
        assert_eq!((lost.complete, lost.records), (false, 400));
        // Stopped: nothing more is fetched.
        stop.store(true, Ordering::Release);
        let stopped = run_bulk(
            &tx,
            dest,
            &cfg,
            None,
            2,
            |_, _, _| unreachable!(),
            &stop,
            &stats,
            1,
        );
        assert_eq!((stopped.complete, stopped.records), (false, 0));
    }
}
